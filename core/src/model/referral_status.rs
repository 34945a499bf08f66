//! Folding a referral's events into its status.
//!
//! Precedence rule (the same on every replica, whatever the arrival order): events are taken in
//! order of their hybrid-logical-clock stamp, ties broken by event id. Each event applies if the
//! workflow allows its transition from the status the earlier events produced; otherwise it is
//! *superseded*: kept in the history, marked as not applied, and the status does not move. So of
//! two concurrent decisions (one desk accepts while another rejects), the earlier-stamped wins,
//! and the later one stays visible to both sides. Terminal statuses stay terminal.

use super::referral::{Referral, ReferralEvent, TaskStatus};
use crate::EventId;
use crate::time::Hlc;
use serde::{Deserialize, Serialize};

/// An event of the history with the outcome of the fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FoldedEvent {
    /// Event id.
    pub id: EventId,
    /// The event.
    #[serde(flatten)]
    pub event: ReferralEvent,
    /// Whether it moved the status (false: superseded by an earlier concurrent event).
    pub applied: bool,
}

/// A referral's current status with its history in fold order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferralStatus {
    /// Current status.
    pub status: TaskStatus,
    /// When the status last moved (None: still as requested).
    pub changed_at: Option<Hlc>,
    /// Every event, in fold order.
    pub history: Vec<FoldedEvent>,
}

/// Folds the events of a referral into its status (see the module docs for the rule).
pub fn fold(referral: &Referral) -> ReferralStatus {
    let mut events: Vec<(&EventId, &ReferralEvent)> = referral.events.iter().collect();
    events.sort_by(|a, b| (a.1.at, a.0).cmp(&(b.1.at, b.0)));
    let mut status = TaskStatus::Requested;
    let mut changed_at = None;
    let history = events
        .into_iter()
        .map(|(id, event)| {
            let applied = status.can_become(event.status);
            if applied {
                status = event.status;
                changed_at = Some(event.at);
            }
            FoldedEvent { id: *id, event: event.clone(), applied }
        })
        .collect();
    ReferralStatus { status, changed_at, history }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReferralId;
    use crate::model::{Direction, Urgency};
    use std::collections::BTreeMap;

    fn event(status: TaskStatus, at: i64) -> ReferralEvent {
        ReferralEvent {
            status,
            by_practitioner_id: "dr".into(),
            by_organization_id: "org".into(),
            at: Hlc(at),
            note: "n".into(),
            discharge_summary: None,
        }
    }

    fn referral(events: Vec<(EventId, ReferralEvent)>) -> Referral {
        Referral {
            id: ReferralId::new(),
            direction: Direction::Upward,
            from_organization_id: "a".into(),
            from_practitioner_id: "dr".into(),
            to_organization_id: "b".into(),
            reason: "r".into(),
            urgency: Urgency::Routine,
            clinical_summary: String::new(),
            in_response_to: None,
            created_at: 0,
            events: events.into_iter().collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn the_workflow_in_order() {
        let r = referral(vec![
            (EventId::new(), event(TaskStatus::Received, 1)),
            (EventId::new(), event(TaskStatus::Accepted, 2)),
            (EventId::new(), event(TaskStatus::InProgress, 3)),
            (EventId::new(), event(TaskStatus::OnHold, 4)),
            (EventId::new(), event(TaskStatus::InProgress, 5)),
            (EventId::new(), event(TaskStatus::Completed, 6)),
        ]);
        let s = fold(&r);
        assert_eq!(s.status, TaskStatus::Completed);
        assert_eq!(s.changed_at, Some(Hlc(6)));
        assert!(s.history.iter().all(|e| e.applied));
    }

    #[test]
    fn concurrent_accept_and_reject_fold_the_same_way_in_any_order() {
        let accept = (EventId::new(), event(TaskStatus::Accepted, 10));
        let reject = (EventId::new(), event(TaskStatus::Rejected, 11));
        let a = fold(&referral(vec![accept.clone(), reject.clone()]));
        let b = fold(&referral(vec![reject.clone(), accept.clone()]));
        assert_eq!(a, b);
        assert_eq!(a.status, TaskStatus::Accepted);
        let superseded: Vec<_> = a.history.iter().filter(|e| !e.applied).collect();
        assert_eq!(superseded.len(), 1);
        assert_eq!(superseded[0].event.status, TaskStatus::Rejected);
    }

    #[test]
    fn equal_stamps_are_ordered_by_event_id() {
        let first = EventId::new();
        let second = EventId::new();
        assert!(first < second);
        let s =
            fold(&referral(vec![(second, event(TaskStatus::Rejected, 7)), (first, event(TaskStatus::Cancelled, 7))]));
        assert_eq!(s.status, TaskStatus::Cancelled);
        assert_eq!(s.history[0].id, first);
        assert!(!s.history[1].applied);
    }

    #[test]
    fn terminal_stays_terminal() {
        let s = fold(&referral(vec![
            (EventId::new(), event(TaskStatus::Cancelled, 1)),
            (EventId::new(), event(TaskStatus::Accepted, 2)),
            (EventId::new(), event(TaskStatus::InProgress, 3)),
        ]));
        assert_eq!(s.status, TaskStatus::Cancelled);
        assert_eq!(s.history.iter().filter(|e| e.applied).count(), 1);
    }
}
