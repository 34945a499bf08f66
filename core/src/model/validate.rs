//! Input checks shared by the typed API. Every failure names the field and the rule.

use crate::time::Millis;
use crate::{Error, Result};
use chrono::NaiveDate;
use std::fmt::Display;
use std::ops::RangeInclusive;

/// How far in the future a timestamp may be before it is refused: phones' clocks drift.
pub const CLOCK_SKEW_MS: Millis = 10 * 60 * 1000;

/// Earliest date the engine accepts for anything clinical.
pub fn earliest_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).expect("1900-01-01 is a valid date")
}

/// A value must lie in `range`.
pub fn in_range<T: PartialOrd + Display>(field: &str, value: T, range: RangeInclusive<T>) -> Result<T> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(field, format!("{value} is outside {}..={}", range.start(), range.end())))
    }
}

/// An optional float must be finite and in range.
pub fn opt_f64(field: &str, value: Option<f64>, range: RangeInclusive<f64>) -> Result<Option<f64>> {
    match value {
        None => Ok(None),
        Some(v) if !v.is_finite() => Err(Error::invalid(field, "must be a finite number")),
        Some(v) => in_range(field, v, range).map(Some),
    }
}

/// An optional integer must be in range.
pub fn opt_int<T: PartialOrd + Display + Copy>(
    field: &str,
    value: Option<T>,
    range: RangeInclusive<T>,
) -> Result<Option<T>> {
    value.map(|v| in_range(field, v, range)).transpose()
}

/// Required free text: trimmed, not empty, at most `max` characters, no control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    optional_text(field, trimmed, max)
}

/// Optional free text (may be empty): at most `max` characters, no control characters but newlines.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String> {
    let count = value.chars().count();
    if count > max {
        return Err(Error::invalid(field, format!("is {count} characters, at most {max} allowed")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(value.to_string())
}

/// A registry code (practitioner, organization, team): 1-64 of `A-Z a-z 0-9 - _ . :`.
pub fn code(field: &str, value: &str) -> Result<String> {
    if value.is_empty() || value.len() > 64 {
        return Err(Error::invalid(field, "must be 1 to 64 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
        return Err(Error::invalid(field, format!("{value:?} may only contain A-Z, a-z, 0-9, '-', '_', '.', ':'")));
    }
    Ok(value.to_string())
}

/// A clinical instant: not in the future beyond clock skew of `now`, not before 1900.
pub fn instant(field: &str, at: Millis, now: Millis) -> Result<Millis> {
    if at > now + CLOCK_SKEW_MS {
        return Err(Error::invalid(field, "is in the future"));
    }
    if at < crate::time::start_of(earliest_date()) {
        return Err(Error::invalid(field, "is before 1900-01-01"));
    }
    Ok(at)
}

/// A date that must not be in the future of `now` (birth dates, diagnosis dates).
pub fn past_date(field: &str, date: NaiveDate, now: Millis) -> Result<NaiveDate> {
    if date > crate::time::date_of(now + CLOCK_SKEW_MS) {
        return Err(Error::invalid(field, format!("{date} is in the future")));
    }
    if date < earliest_date() {
        return Err(Error::invalid(field, format!("{date} is before 1900-01-01")));
    }
    Ok(date)
}

/// An ICD-10 code's shape: a letter, two digits, optionally a dot and one to two more characters.
pub fn icd10(field: &str, value: &str) -> Result<String> {
    let code = value.trim().to_ascii_uppercase();
    let b = code.as_bytes();
    let head_ok = b.len() >= 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit();
    let tail_ok = match b.len() {
        3 => true,
        5 | 6 => b[3] == b'.' && b[4..].iter().all(|c| c.is_ascii_alphanumeric()),
        _ => false,
    };
    if head_ok && tail_ok {
        Ok(code)
    } else {
        Err(Error::invalid(field, format!("{value:?} is not an ICD-10 code (like I10 or E11.9)")))
    }
}

/// A mainland China resident identity number (GB 11643-1999): 17 digits and a check character.
pub fn resident_id(field: &str, value: &str) -> Result<String> {
    let id = value.trim().to_ascii_uppercase();
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return Err(Error::invalid(field, "must be 18 characters: 17 digits and a check digit"));
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let expected = CHECK[(sum % 11) as usize];
    if b[17] != expected {
        return Err(Error::invalid(field, format!("check digit is {}, expected {}", b[17] as char, expected as char)));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_checksum() {
        // The standard's own example number.
        assert!(resident_id("id", "11010519491231002X").is_ok());
        let err = resident_id("patient.national_id", "110105194912310021").unwrap_err();
        assert_eq!(err.to_string(), "patient.national_id: check digit is 1, expected X");
        assert!(resident_id("id", "1101051949").is_err());
    }

    #[test]
    fn icd10_shapes() {
        assert_eq!(icd10("c", "i10").unwrap(), "I10");
        assert_eq!(icd10("c", "E11.9").unwrap(), "E11.9");
        assert!(icd10("c", "E1").is_err());
        assert!(icd10("c", "11.9").is_err());
        assert!(icd10("c", "E11-9").is_err());
    }

    #[test]
    fn ranges_name_field_and_rule() {
        let err = in_range("visit.vitals.systolic_mmhg", 400, 40..=300).unwrap_err();
        assert_eq!(err.to_string(), "visit.vitals.systolic_mmhg: 400 is outside 40..=300");
        assert!(opt_f64("g", Some(f64::NAN), 1.0..=35.0).is_err());
        assert!(text("name", "   ", 10).is_err());
        assert!(code("org", "village clinic").is_err());
    }
}
