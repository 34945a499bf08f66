//! Who may read a resident's record through the API and FHIR: readers only, and a referral desk
//! only when a referral of the resident concerns its organization. Every read is logged.

use super::{AppError, AppState, Operator, blocking};
use yilian_core::PatientId;
use yilian_core::model::PatientRecord;
use yilian_core::store::OperatorRole;

/// Roles that may read worklists, referrals and records.
pub const READERS: &[OperatorRole] = &[OperatorRole::Admin, OperatorRole::ReferralDesk, OperatorRole::Analyst];

/// A resident's record for `operator`, its read logged as `what`: readers only, and a desk only
/// when a referral of the resident concerns its organization.
pub async fn readable_record(
    s: &AppState,
    operator: &Operator,
    raw: &str,
    what: &'static str,
) -> Result<PatientRecord, AppError> {
    operator.allow(READERS)?;
    let id: PatientId =
        raw.parse().map_err(|_| AppError::BadRequest(format!("patient: {raw:?} is not a patient id")))?;
    let storage = s.storage.clone();
    let record = blocking(move || storage.record(id)).await?;
    if let Some(own) = &operator.organization_id {
        let involved = record
            .referrals
            .iter()
            .any(|v| &v.referral.from_organization_id == own || &v.referral.to_organization_id == own);
        if !involved {
            return Err(AppError::Forbidden(format!(
                "token {} acts for {own}; no referral of this resident concerns it",
                operator.name
            )));
        }
    }
    let (storage, who) = (s.storage.clone(), operator.name.clone());
    blocking(move || storage.log_record_read(&who, &id.to_string(), what)).await?;
    Ok(record)
}
