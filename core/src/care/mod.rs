//! Care rules of the national basic public health service for chronic disease management, as pure
//! functions over a [`PatientRecord`](crate::model::PatientRecord).
//!
//! - Hypertension and type 2 diabetes patients get at least four face-to-face follow-ups a year:
//!   the next is due 90 days after the last face-to-face visit.
//! - An uncontrolled reading (blood pressure >= 140/90 mmHg; fasting glucose >= 7.0 mmol/L) brings
//!   the next follow-up forward to 14 days after that visit.
//! - Danger values (systolic >= 180 or diastolic >= 110 mmHg; glucose >= 16.7 or <= 3.9 mmol/L)
//!   call for an urgent upward referral.
//! - Two consecutive uncontrolled follow-ups of a program suggest an upward referral.
//! - A completed upward referral expects a downward referral and a face-to-face follow-up within
//!   14 days of completion (the closed loop).
//! - A follow-up the doctor booked is due on its day until a face-to-face visit happens after it
//!   was booked.
//!
//! COPD, stroke and coronary heart disease have no quarterly rule in the standard; they are due
//! only through bookings and the closed loop.

mod closed_loop;
mod follow_up;
mod readings;
mod suggestions;

pub use closed_loop::{
    AcceptanceTimes, ClosedLoop, MAX_PERIOD_DAYS, MonthlyClosedLoop, Period, ReferralStatistics, TeamOverdue,
    referral_statistics,
};
pub use follow_up::{DueFollowUp, DueReason, FollowUpDue, next_follow_up};
pub use readings::{Control, blood_pressure_control, danger_values, glucose_control};
pub use suggestions::{ReferralSuggestion, SuggestionKind, referral_suggestions};

/// Days between quarterly follow-ups (four a year).
pub const QUARTERLY_DAYS: i64 = 90;
/// Days to the next follow-up after an uncontrolled reading, and after a completed upward referral.
pub const TWO_WEEKS_DAYS: i64 = 14;

#[cfg(test)]
pub(crate) mod test_records;
