//! Two-way referral statistics of an organization over a period: referrals by direction and
//! status, time to acceptance, and the closed-loop rate — the policy's key indicator of whether
//! two-way referral works.
//!
//! An upward referral is *closed* when, within [`TWO_WEEKS_DAYS`] of its completion (discharge),
//! a downward referral answering it was created and the resident had a face-to-face visit. One
//! whose two weeks have not run out yet and is not closed is *awaiting*; the rate counts only
//! referrals whose window is over: `closed / (completed - awaiting)`.

use super::TWO_WEEKS_DAYS;
use crate::model::{Direction, PatientRecord, ReferralView, TaskStatus};
use crate::time::{date_of, start_of};
use crate::{Error, ReferralId, Result};
use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

/// Consortium calendar days (UTC+8), both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

/// The longest period one statistics request covers (about five years).
pub const MAX_PERIOD_DAYS: i64 = 5 * 366;

impl Period {
    /// A period, refused when it ends before it starts or spans more than [`MAX_PERIOD_DAYS`].
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period> {
        if from > to {
            return Err(Error::invalid("period.from", format!("{from} is after period.to {to}")));
        }
        if (to - from).num_days() > MAX_PERIOD_DAYS {
            return Err(Error::invalid("period.to", format!("the period spans more than {MAX_PERIOD_DAYS} days")));
        }
        Ok(Period { from, to })
    }

    /// The first instant after its last day (ms): an exclusive upper bound for queries.
    pub fn end_ms(&self) -> i64 {
        start_of(self.to) + DAY_MS
    }

    /// Whether the instant `ms` falls on one of its days.
    pub fn contains_ms(&self, ms: i64) -> bool {
        (self.from..=self.to).contains(&date_of(ms))
    }

    /// Its calendar months, each cut to the period.
    pub fn months(&self) -> Vec<Period> {
        let mut out = Vec::new();
        let mut start = self.from;
        while start <= self.to {
            let next_month = if start.month() == 12 {
                NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
            };
            let Some(next_month) = next_month else { break };
            let end = next_month.pred_opt().unwrap_or(next_month).min(self.to);
            out.push(Period { from: start, to: end });
            start = next_month;
        }
        out
    }
}

/// How long the receiving side took to accept referrals requested in the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptanceTimes {
    /// Referrals to the organization that were accepted.
    pub accepted: u64,
    /// Median hours from request to acceptance.
    pub median_hours: Option<f64>,
    /// Mean hours.
    pub mean_hours: Option<f64>,
    /// Longest wait in hours.
    pub max_hours: Option<f64>,
}

/// The closed-loop indicator over upward referrals completed in a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClosedLoop {
    /// Upward referrals completed (discharged) in the period.
    pub completed_upward: u64,
    /// Of those, closed: a downward referral and a face-to-face visit within two weeks.
    pub closed: u64,
    /// Not closed yet, but their two weeks are not over.
    pub awaiting: u64,
    /// `closed / (completed_upward - awaiting)`; none when nothing is decided yet.
    pub rate: Option<f64>,
    /// The referrals whose loop stayed open (two weeks over, not closed): what to chase.
    pub open_loops: Vec<ReferralId>,
}

/// The closed-loop indicator of one month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthlyClosedLoop {
    /// `YYYY-MM`.
    pub month: String,
    /// The month's figures.
    #[serde(flatten)]
    pub closed_loop: ClosedLoop,
}

/// Residents of a team whose follow-up is overdue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamOverdue {
    /// The family-doctor team.
    pub team_id: String,
    /// Its name.
    pub team_name: String,
    /// Contracted residents whose next follow-up is past due.
    pub overdue: u64,
    /// Of those, overdue by more than 30 days.
    pub overdue_over_30_days: u64,
}

/// The two-way referral statistics of an organization over a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferralStatistics {
    /// The organization (as sender or receiver).
    pub organization_id: String,
    /// The period.
    pub period: Period,
    /// Referrals requested in the period, by direction then status.
    pub referrals: BTreeMap<Direction, BTreeMap<TaskStatus, u64>>,
    /// Time to acceptance of referrals the organization received.
    pub acceptance: AcceptanceTimes,
    /// The closed-loop indicator over the whole period.
    pub closed_loop: ClosedLoop,
    /// The same, month by month (for a chart).
    pub months: Vec<MonthlyClosedLoop>,
    /// Overdue follow-ups per family-doctor team of the organization and the organizations that
    /// are part of it.
    pub overdue_follow_ups: Vec<TeamOverdue>,
}

/// What became of one completed upward referral.
struct Completion {
    referral: ReferralId,
    completed_ms: i64,
    closed: bool,
    awaiting: bool,
}

/// The applied event that moved a referral to `status`, as a wall-clock instant.
fn reached(view: &ReferralView, status: TaskStatus) -> Option<i64> {
    view.status.history.iter().find(|e| e.applied && e.event.status == status).map(|e| e.event.at.wall_ms())
}

fn completion(record: &PatientRecord, view: &ReferralView, today: NaiveDate) -> Option<Completion> {
    let r = &view.referral;
    if r.direction != Direction::Upward || view.status.status != TaskStatus::Completed {
        return None;
    }
    let completed_ms = reached(view, TaskStatus::Completed)?;
    let deadline = completed_ms + TWO_WEEKS_DAYS * DAY_MS;
    let answered = record.referrals.iter().any(|down| {
        down.referral.in_response_to == Some(r.id)
            && down.referral.direction == Direction::Downward
            && down.referral.created_at <= deadline
    });
    let seen = record.visits.iter().any(|v| v.kind.is_face_to_face() && (completed_ms..=deadline).contains(&v.at));
    let closed = answered && seen;
    let window_ends = date_of(completed_ms).checked_add_days(Days::new(TWO_WEEKS_DAYS as u64));
    let awaiting = !closed && window_ends.is_none_or(|end| today <= end);
    Some(Completion { referral: r.id, completed_ms, closed, awaiting })
}

fn closed_loop_of<'a>(completions: impl Iterator<Item = &'a Completion>) -> ClosedLoop {
    let mut out = ClosedLoop::default();
    for c in completions {
        out.completed_upward += 1;
        if c.closed {
            out.closed += 1;
        } else if c.awaiting {
            out.awaiting += 1;
        } else {
            out.open_loops.push(c.referral);
        }
    }
    let decided = out.completed_upward - out.awaiting;
    out.rate = (decided > 0).then(|| out.closed as f64 / decided as f64);
    out
}

fn hours(ms: i64) -> f64 {
    (ms as f64 / 3_600_000.0 * 10.0).round() / 10.0
}

fn acceptance_of(mut waits: Vec<i64>) -> AcceptanceTimes {
    if waits.is_empty() {
        return AcceptanceTimes::default();
    }
    waits.sort_unstable();
    let n = waits.len();
    let median = if n % 2 == 1 { waits[n / 2] as f64 } else { (waits[n / 2 - 1] + waits[n / 2]) as f64 / 2.0 };
    AcceptanceTimes {
        accepted: n as u64,
        median_hours: Some(hours(median as i64)),
        mean_hours: Some(hours(waits.iter().sum::<i64>() / n as i64)),
        max_hours: waits.last().map(|w| hours(*w)),
    }
}

/// The statistics of `organization` over `period`, from the records of the residents it
/// referred or received (`overdue_follow_ups` is left empty: it comes from the follow-up index).
/// `today` decides which two-week windows are still running.
pub fn referral_statistics<'a>(
    organization: &str,
    period: Period,
    today: NaiveDate,
    records: impl IntoIterator<Item = &'a PatientRecord>,
) -> ReferralStatistics {
    let mut referrals: BTreeMap<Direction, BTreeMap<TaskStatus, u64>> = BTreeMap::new();
    let mut waits = Vec::new();
    let mut completions = Vec::new();
    for record in records {
        for view in &record.referrals {
            let r = &view.referral;
            let involved = r.from_organization_id == organization || r.to_organization_id == organization;
            if !involved {
                continue;
            }
            if period.contains_ms(r.created_at) {
                *referrals.entry(r.direction).or_default().entry(view.status.status).or_default() += 1;
                if r.to_organization_id == organization
                    && let Some(accepted) = reached(view, TaskStatus::Accepted)
                {
                    waits.push((accepted - r.created_at).max(0));
                }
            }
            if let Some(c) = completion(record, view, today)
                && period.contains_ms(c.completed_ms)
            {
                completions.push(c);
            }
        }
    }
    let months = period
        .months()
        .into_iter()
        .map(|month| MonthlyClosedLoop {
            month: month.from.format("%Y-%m").to_string(),
            closed_loop: closed_loop_of(completions.iter().filter(|c| month.contains_ms(c.completed_ms))),
        })
        .collect();
    ReferralStatistics {
        organization_id: organization.to_string(),
        period,
        referrals,
        acceptance: acceptance_of(waits),
        closed_loop: closed_loop_of(completions.iter()),
        months,
        overdue_follow_ups: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::care::test_records::*;
    use crate::model::VisitKind;

    fn november() -> Period {
        Period::new(day(2026, 11, 1), day(2026, 11, 30)).unwrap()
    }

    /// An upward referral requested on the 2nd, accepted on the 3rd, completed on the 10th.
    fn completed_upward(r: &mut PatientRecord) -> ReferralId {
        add_referral_created(
            r,
            Direction::Upward,
            day(2026, 11, 2),
            &[
                (TaskStatus::Accepted, day(2026, 11, 3)),
                (TaskStatus::InProgress, day(2026, 11, 4)),
                (TaskStatus::Completed, day(2026, 11, 10)),
            ],
        )
    }

    fn answer(r: &mut PatientRecord, up: ReferralId, on: NaiveDate) {
        let down = add_referral_created(r, Direction::Downward, on, &[]);
        let view = r.referrals.iter_mut().find(|v| v.referral.id == down).unwrap();
        view.referral.in_response_to = Some(up);
        view.referral.from_organization_id = "county".into();
        view.referral.to_organization_id = "village-1".into();
    }

    #[test]
    fn a_loop_closes_with_a_downward_referral_and_a_visit_within_two_weeks() {
        let mut r = record();
        let up = completed_upward(&mut r);
        let today = day(2026, 11, 30);
        let open = referral_statistics("county", november(), today, [&r]);
        assert_eq!(open.closed_loop.completed_upward, 1);
        assert_eq!((open.closed_loop.closed, open.closed_loop.awaiting), (0, 0));
        assert_eq!(open.closed_loop.open_loops, vec![up]);
        assert_eq!(open.closed_loop.rate, Some(0.0));

        // Still inside the two weeks: awaiting, not counted against the rate.
        let early = referral_statistics("county", november(), day(2026, 11, 20), [&r]);
        assert_eq!((early.closed_loop.awaiting, early.closed_loop.rate), (1, None));

        answer(&mut r, up, day(2026, 11, 11));
        let half = referral_statistics("county", november(), today, [&r]);
        assert_eq!(half.closed_loop.closed, 0, "a downward referral alone does not close the loop");

        add_visit_kind(&mut r, day(2026, 11, 20), bp(130, 80), VisitKind::FollowUp);
        let closed = referral_statistics("county", november(), today, [&r]);
        assert_eq!((closed.closed_loop.closed, closed.closed_loop.rate), (1, Some(1.0)));
        assert!(closed.closed_loop.open_loops.is_empty());
        // The village clinic that sent it sees the same loop.
        assert_eq!(referral_statistics("village-1", november(), today, [&r]).closed_loop.closed, 1);
        // An organization that took no part sees nothing.
        assert_eq!(referral_statistics("other", november(), today, [&r]).closed_loop.completed_upward, 0);
    }

    #[test]
    fn a_visit_after_two_weeks_or_by_phone_does_not_close_it() {
        let mut r = record();
        let up = completed_upward(&mut r);
        answer(&mut r, up, day(2026, 11, 11));
        add_visit_kind(&mut r, day(2026, 11, 12), bp(130, 80), VisitKind::Telemedicine);
        add_visit_kind(&mut r, day(2026, 11, 26), bp(130, 80), VisitKind::FollowUp);
        let stats = referral_statistics("county", november(), day(2026, 11, 30), [&r]);
        assert_eq!((stats.closed_loop.closed, stats.closed_loop.open_loops.len()), (0, 1));
    }

    #[test]
    fn counts_by_direction_and_status_and_acceptance_times() {
        let mut r = record();
        let up = completed_upward(&mut r);
        add_referral_created(&mut r, Direction::Upward, day(2026, 11, 5), &[]);
        add_referral_created(&mut r, Direction::Upward, day(2026, 11, 6), &[(TaskStatus::Accepted, day(2026, 11, 9))]);
        add_referral_created(&mut r, Direction::Upward, day(2026, 10, 6), &[]);
        answer(&mut r, up, day(2026, 11, 11));
        let stats = referral_statistics("county", november(), day(2026, 11, 30), [&r]);
        let up_counts = &stats.referrals[&Direction::Upward];
        assert_eq!(up_counts[&TaskStatus::Completed], 1);
        assert_eq!(up_counts[&TaskStatus::Requested], 1, "October's referral is outside the period");
        assert_eq!(up_counts[&TaskStatus::Accepted], 1);
        assert_eq!(stats.referrals[&Direction::Downward][&TaskStatus::Requested], 1);
        // Accepted after 1 day and after 3 days: the county received both.
        assert_eq!(stats.acceptance.accepted, 2);
        assert_eq!(stats.acceptance.median_hours, Some(48.0));
        assert_eq!(stats.acceptance.max_hours, Some(72.0));
        // The downward referral went to village-1: the county did not receive it.
        assert_eq!(referral_statistics("village-1", november(), day(2026, 11, 30), [&r]).acceptance.accepted, 0);
    }

    #[test]
    fn months_split_the_period() {
        let p = Period::new(day(2026, 10, 15), day(2027, 1, 3)).unwrap();
        let months: Vec<(NaiveDate, NaiveDate)> = p.months().iter().map(|m| (m.from, m.to)).collect();
        assert_eq!(
            months,
            vec![
                (day(2026, 10, 15), day(2026, 10, 31)),
                (day(2026, 11, 1), day(2026, 11, 30)),
                (day(2026, 12, 1), day(2026, 12, 31)),
                (day(2027, 1, 1), day(2027, 1, 3)),
            ]
        );
        let mut r = record();
        completed_upward(&mut r);
        let stats = referral_statistics("county", p, day(2027, 1, 3), [&r]);
        let completed: Vec<u64> = stats.months.iter().map(|m| m.closed_loop.completed_upward).collect();
        assert_eq!(completed, vec![0, 1, 0, 0]);
        assert_eq!(stats.months[1].month, "2026-11");
        assert_eq!(
            Period::new(day(2026, 2, 1), day(2026, 1, 1)).unwrap_err().to_string(),
            "period.from: 2026-02-01 is after period.to 2026-01-01"
        );
    }
}
