//! Two-way referral statistics of an organization (see [`crate::care::referral_statistics`] for
//! the rules): the records come from the referral index, overdue follow-ups from the due index.

use super::Store;
use crate::care::{Period, ReferralStatistics, TeamOverdue, referral_statistics};
use crate::{PatientId, Result};
use chrono::{Days, NaiveDate};
use rusqlite::params;

impl Store {
    /// The referral statistics of `organization` over `period`, as of `today`, with the overdue
    /// follow-ups of the family-doctor teams of the organization and of those part of it.
    pub fn referral_statistics(
        &self,
        organization: &str,
        period: Period,
        today: NaiveDate,
    ) -> Result<ReferralStatistics> {
        let ids: Vec<PatientId> = {
            let inner = self.lock();
            let mut stmt = inner.conn.prepare_cached(
                "SELECT DISTINCT patient_id FROM referral_index
                 WHERE (from_org = ?1 OR to_org = ?1) AND created_at < ?2 ORDER BY patient_id",
            )?;
            let rows = stmt.query_map(params![organization, period.end_ms()], |r| r.get::<_, String>(0))?;
            rows.map(|id| id?.parse()).collect::<Result<_>>()?
        };
        let records = ids.into_iter().map(|id| self.patient(id)).collect::<Result<Vec<_>>>()?;
        let mut statistics = referral_statistics(organization, period, today, &records);
        statistics.overdue_follow_ups = self.overdue_by_team(organization, today)?;
        Ok(statistics)
    }

    fn overdue_by_team(&self, organization: &str, today: NaiveDate) -> Result<Vec<TeamOverdue>> {
        let month_ago = today.checked_sub_days(Days::new(30)).unwrap_or(today);
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "WITH RECURSIVE tree(id) AS (
                 SELECT ?1 UNION SELECT o.id FROM organizations o JOIN tree ON o.part_of = tree.id)
             SELECT t.id, t.name, count(d.patient_id), coalesce(sum(d.due < ?3), 0)
             FROM teams t
             LEFT JOIN patient_index p ON p.team_id = t.id AND p.contract_start <= ?2 AND p.contract_end >= ?2
             LEFT JOIN due_index d ON d.patient_id = p.patient_id AND d.due < ?2
             WHERE t.organization_id IN (SELECT id FROM tree)
             GROUP BY t.id ORDER BY t.id",
        )?;
        let rows = stmt.query_map(params![organization, today.to_string(), month_ago.to_string()], |r| {
            Ok(TeamOverdue {
                team_id: r.get(0)?,
                team_name: r.get(1)?,
                overdue: r.get::<_, i64>(2)?.max(0) as u64,
                overdue_over_30_days: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
