//! The green channel's alerts: `GET /v1/organizations/{organization}/alerts`, a server-sent
//! events stream of the urgent and emergency referrals addressed to an organization that are
//! still open (requested, received, accepted, in progress, on hold). A referral desk's page or a
//! hospital system follows it and is told at once, instead of finding a green-channel referral
//! at its next refresh.
//!
//! The stream says what is open, not a log of what happened: on connect it sends every open
//! urgent referral (`event: urgent-referral`), then, at each commit of the relay, the new ones,
//! the ones whose status moved (`event: referral-status`) and the ones that closed (`event:
//! referral-closed`). A follower that lost its connection connects again and is sent the whole
//! open set again, so nothing is missed across a reconnect; each event's data is the worklist
//! line (JSON) and its id names the referral and its status.

use super::referrals::known_organization;
use crate::request::{AppError, AppState, Operator, READERS, blocking, name_for};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use yilian_core::ReferralId;
use yilian_core::model::{TaskStatus, Urgency};
use yilian_core::store::{WorklistFilter, WorklistItem, WorklistSide};

/// The statuses in which a referral still needs the receiving organization.
const OPEN: [TaskStatus; 5] =
    [TaskStatus::Requested, TaskStatus::Received, TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::OnHold];

/// What a connection has sent so far and what it still has to send.
struct Follower {
    state: AppState,
    operator: Operator,
    organization: String,
    commits: tokio::sync::watch::Receiver<yilian_core::StoreEvents>,
    /// Each open urgent referral sent, with the status it was sent with.
    sent: BTreeMap<ReferralId, TaskStatus>,
    queue: VecDeque<Event>,
    first: bool,
}

impl Follower {
    /// Reads the open urgent referrals and queues what changed since the last read.
    async fn look(&mut self) -> Result<(), AppError> {
        let (storage, organization) = (self.state.storage.clone(), self.organization.clone());
        let filter = WorklistFilter {
            side: Some(WorklistSide::Incoming),
            statuses: OPEN.to_vec(),
            limit: 1000,
            ..Default::default()
        };
        let items: Vec<WorklistItem> = blocking(move || storage.referral_worklist(&organization, &filter))
            .await?
            .into_iter()
            .filter(|i| i.referral.urgency != Urgency::Routine)
            .collect();
        let mut now = BTreeMap::new();
        for mut item in items {
            item.referral.patient_name = name_for(&self.operator, &item.referral.patient_name);
            let (id, status) = (item.referral.referral_id, item.referral.status);
            now.insert(id, status);
            let kind = match self.sent.get(&id) {
                None => "urgent-referral",
                Some(before) if *before != status => "referral-status",
                Some(_) => continue,
            };
            self.queue.push_back(event(kind, &item));
        }
        for (id, status) in &self.sent {
            if !now.contains_key(id) {
                let data = serde_json::json!({ "referral_id": id, "last_open_status": status });
                self.queue.push_back(
                    Event::default().event("referral-closed").id(format!("{id}/closed")).data(data.to_string()),
                );
            }
        }
        self.sent = now;
        Ok(())
    }
}

fn event(kind: &str, item: &WorklistItem) -> Event {
    let data = serde_json::to_string(item).unwrap_or_default();
    Event::default().event(kind).id(format!("{}/{}", item.referral.referral_id, item.referral.status)).data(data)
}

#[utoipa::path(
    get,
    path = "/organizations/{organization}/alerts",
    tag = "referrals",
    params(("organization" = String, Path, description = "organization id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "server-sent events: urgent-referral, referral-status, referral-closed; each data a worklist line", content_type = "text/event-stream", body = WorklistItem),
        (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody)
    )
)]
pub(crate) async fn alerts(
    operator: Operator,
    State(s): State<AppState>,
    Path(organization): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    operator.allow(READERS)?;
    operator.allow_organization(&[&organization])?;
    known_organization(&s, &organization).await?;
    // Subscribed before the first read: a commit between the read and the wait still wakes it.
    let commits = s.storage.watch();
    let follower = Follower {
        state: s,
        operator,
        organization,
        commits,
        sent: BTreeMap::new(),
        queue: VecDeque::new(),
        first: true,
    };
    let events = stream::unfold(follower, |mut f| async move {
        loop {
            if let Some(event) = f.queue.pop_front() {
                return Some((Ok(event), f));
            }
            if !std::mem::take(&mut f.first) && f.commits.changed().await.is_err() {
                return None; // the relay is stopping
            }
            if let Err(e) = f.look().await {
                let (_, message) = e.status_and_message();
                return Some((Ok(Event::default().event("error").data(message)), f));
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
