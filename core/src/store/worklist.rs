//! An organization's referral worklist: the referrals it received (incoming) and sent
//! (outgoing), filtered the way a hospital's referral desk works through them. Read from the
//! referral index only, never by loading every record.

use super::Store;
use super::index::as_code;
use super::index::{REFERRAL_SUMMARY_COLUMNS, ReferralSummary, referral_summary};
use crate::model::{Direction, TaskStatus, Urgency};
use crate::time::start_of;
use crate::{Error, Result};
use chrono::{Days, NaiveDate};
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

/// Which side of a referral the organization is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorklistSide {
    /// Sent to the organization: its desk acts on them.
    Incoming,
    /// Sent by the organization: it waits for the other side.
    Outgoing,
}

/// What to list. Every filter is optional; dates are consortium calendar days (UTC+8) of the
/// referral's request, both ends included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorklistFilter {
    /// Only incoming or only outgoing referrals.
    #[serde(default)]
    pub side: Option<WorklistSide>,
    /// Only these statuses (any of them).
    #[serde(default)]
    pub statuses: Vec<TaskStatus>,
    /// Only this urgency.
    #[serde(default)]
    pub urgency: Option<Urgency>,
    /// Only upward or only downward referrals.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Requested on or after this day.
    #[serde(default)]
    pub from: Option<NaiveDate>,
    /// Requested on or before this day.
    #[serde(default)]
    pub to: Option<NaiveDate>,
    /// At most this many lines (0: the default, 200).
    #[serde(default)]
    pub limit: usize,
}

/// The most lines one worklist request returns.
pub const MAX_WORKLIST_LINES: usize = 1000;

/// One line of a worklist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorklistItem {
    /// The referral.
    #[serde(flatten)]
    pub referral: ReferralSummary,
    /// Whether the organization received or sent it.
    pub side: WorklistSide,
    /// When its status last moved (ms; none while still as requested).
    pub status_changed_at: Option<i64>,
}

impl Store {
    /// The referral worklist of `organization`: most urgent first, then oldest first.
    pub fn referral_worklist(&self, organization: &str, filter: &WorklistFilter) -> Result<Vec<WorklistItem>> {
        let limit = match filter.limit {
            0 => 200,
            n if n > MAX_WORKLIST_LINES => {
                return Err(Error::invalid("worklist.limit", format!("{n} is more than {MAX_WORKLIST_LINES}")));
            }
            n => n,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(Error::invalid("worklist.from", format!("{from} is after worklist.to {to}")));
        }
        let mut sql = format!("SELECT {REFERRAL_SUMMARY_COLUMNS} WHERE ");
        let mut args: Vec<Value> = vec![organization.to_string().into()];
        sql.push_str(match filter.side {
            Some(WorklistSide::Incoming) => "r.to_org = ?1",
            Some(WorklistSide::Outgoing) => "r.from_org = ?1",
            None => "(r.to_org = ?1 OR r.from_org = ?1)",
        });
        let mut and = |clause: &str, value: Value| {
            args.push(value);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(urgency) = filter.urgency {
            and("r.urgency =", as_code(&urgency).into());
        }
        if let Some(direction) = filter.direction {
            and("r.direction =", as_code(&direction).into());
        }
        if let Some(from) = filter.from {
            and("r.created_at >=", start_of(from).into());
        }
        if let Some(to) = filter.to {
            let next = to.checked_add_days(Days::new(1)).unwrap_or(to);
            and("r.created_at <", start_of(next).into());
        }
        if !filter.statuses.is_empty() {
            let codes: Vec<String> = filter.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
            // The codes come from the closed TaskStatus enum, never from the request text.
            sql.push_str(&format!(" AND r.status IN ({})", codes.join(", ")));
        }
        sql.push_str(
            " ORDER BY CASE r.urgency WHEN 'emergency' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END, r.created_at, r.referral_id",
        );
        args.push((limit as i64).into());
        sql.push_str(&format!(" LIMIT ?{}", args.len()));

        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let (referral, status_changed_at) = referral_summary(row)?;
            let side = if referral.to_organization_id == organization {
                WorklistSide::Incoming
            } else {
                WorklistSide::Outgoing
            };
            out.push(WorklistItem { referral, side, status_changed_at });
        }
        Ok(out)
    }
}
