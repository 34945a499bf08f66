//! Two-way referral statistics of an organization over a period:
//! `GET /v1/organizations/{organization}/statistics?from=YYYY-MM-DD&to=YYYY-MM-DD` (default: the
//! last six calendar months up to today). See [`yilian_core::care::referral_statistics`].

use super::referrals::known_organization;
use super::{AppError, AppState, Operator, Params, blocking};
use crate::request::READERS;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{Datelike, Months, NaiveDate};
use serde::Deserialize;
use utoipa::IntoParams;
use yilian_core::care::{Period, ReferralStatistics};

/// The period (consortium calendar days, both included).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatisticsQuery {
    /// First day (default: the first of the month five months ago).
    pub from: Option<NaiveDate>,
    /// Last day (default: today).
    pub to: Option<NaiveDate>,
}

/// `GET /v1/organizations/{organization}/statistics`.
#[utoipa::path(
    get,
    path = "/organizations/{organization}/statistics",
    tag = "statistics",
    params(("organization" = String, Path, description = "organization id"), StatisticsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "referrals, acceptance times, the closed loop by month, overdue follow-ups per team", body = ReferralStatistics), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub async fn statistics(
    operator: Operator,
    State(s): State<AppState>,
    Path(organization): Path<String>,
    Params(q): Params<StatisticsQuery>,
) -> Result<Json<ReferralStatistics>, AppError> {
    operator.allow(READERS)?;
    operator.allow_organization(&[&organization])?;
    known_organization(&s, &organization).await?;
    let today = s.storage.clock().today();
    let to = q.to.unwrap_or(today);
    let from = q.from.unwrap_or_else(|| {
        let first = to.with_day(1).unwrap_or(to);
        first.checked_sub_months(Months::new(5)).unwrap_or(first)
    });
    let period = Period::new(from, to)?;
    Ok(Json(blocking(move || s.storage.referral_statistics(&organization, period, today)).await?))
}
