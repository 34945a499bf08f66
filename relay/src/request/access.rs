//! Who may read a resident's record through the API and FHIR: readers only, and a referral desk
//! only when a referral of the resident concerns its organization. Every read is logged. An
//! analyst (a quality officer counting, not treating) reads records with the resident's identity
//! masked, as PIPL's minimum-necessary principle asks: 刘*兰, 110105********002X, 138****5678.

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
    Ok(masked_for(operator, record))
}

/// The record as `operator` may see it: an analyst's with the resident's identity masked.
pub fn masked_for(operator: &Operator, mut record: PatientRecord) -> PatientRecord {
    if operator.role == OperatorRole::Analyst {
        let d = &mut record.patient.demographics;
        d.name = mask_name(&d.name);
        d.national_id = d.national_id.as_deref().map(|v| mask_middle(v, 6, 4));
        d.phone = d.phone.as_deref().map(|v| mask_middle(v, 3, 4));
        d.address = None;
    }
    record
}

/// A name as `operator` may see it (see [`masked_for`]).
pub fn name_for(operator: &Operator, name: &str) -> String {
    if operator.role == OperatorRole::Analyst { mask_name(name) } else { name.to_string() }
}

/// A name with all but its first character (the surname) and, from three characters on, its last
/// masked: 刘桂兰 → 刘*兰, 王芳 → 王*.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.len() {
        0 | 1 => name.to_string(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// `value` with all but its first `head` and last `tail` characters masked.
fn mask_middle(value: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let (start, end) = (&chars[..head], &chars[chars.len() - tail..]);
    format!(
        "{}{}{}",
        start.iter().collect::<String>(),
        "*".repeat(chars.len() - head - tail),
        end.iter().collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_masked_as_the_minimum_necessary_asks() {
        assert_eq!(mask_name("刘桂兰"), "刘*兰");
        assert_eq!(mask_name("王芳"), "王*");
        assert_eq!(mask_name("欧阳娜娜"), "欧**娜");
        assert_eq!(mask_middle("11010519491231002X", 6, 4), "110105********002X");
        assert_eq!(mask_middle("13812345678", 3, 4), "138****5678");
        assert_eq!(mask_middle("12", 3, 4), "**");
    }
}
