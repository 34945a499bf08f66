//! The changes feed a hospital information system follows to ingest every synced record:
//! `GET /v1/changes?since=<seq>&limit=<n>&wait=<seconds>`.
//!
//! Each page lists the records changed after `since`, each once, with the record as it is now
//! and the sequence number of its newest change, oldest first; `next` is the `since` of the next
//! page. A record changed again later comes again. With `wait`, an empty page is held open until
//! something changes or the wait runs out (long poll, at most 60 s). Every record served is logged
//! as a read by the operator.

use super::{AppError, AppState, Operator, Params, blocking};
use crate::request::{READERS, masked_for};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use yilian_core::PatientId;
use yilian_core::model::PatientRecord;

/// The most records on one page.
pub const MAX_PAGE: usize = 500;
/// The longest a request waits for a change.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// Where to read from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// The `next` of the previous page (0 from the start).
    #[serde(default)]
    pub since: i64,
    /// Records per page (default 100, at most 500).
    pub limit: Option<usize>,
    /// Seconds to hold an empty page open waiting for a change (default 0, at most 60).
    #[serde(default)]
    pub wait: u64,
}

/// One changed record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangedRecord {
    /// The sequence number of the record's newest change.
    pub seq: i64,
    /// The resident.
    pub patient_id: PatientId,
    /// The record as it is now.
    pub record: PatientRecord,
}

/// A page of the feed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangesPage {
    /// Changed records, oldest change first.
    pub changes: Vec<ChangedRecord>,
    /// Where the next page starts (`since` of the next request).
    pub next: i64,
    /// Whether more records are waiting (ask again at once).
    pub more: bool,
}

/// `GET /v1/changes`.
#[utoipa::path(
    get,
    path = "/changes",
    tag = "changes feed",
    params(ChangesQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "records changed after `since`, each once, oldest change first", body = ChangesPage), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub async fn changes(
    operator: Operator,
    State(s): State<AppState>,
    Params(q): Params<ChangesQuery>,
) -> Result<Json<ChangesPage>, AppError> {
    operator.allow(READERS)?;
    if let Some(own) = &operator.organization_id {
        return Err(AppError::Forbidden(format!(
            "token {} acts for {own}; the changes feed is consortium-wide",
            operator.name
        )));
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::BadRequest(format!("limit: {limit} is outside 1..={MAX_PAGE}")));
    }
    if q.since < 0 {
        return Err(AppError::BadRequest(format!("since: {} is negative", q.since)));
    }
    if q.wait > MAX_WAIT_SECONDS {
        return Err(AppError::BadRequest(format!("wait: {} is more than {MAX_WAIT_SECONDS} seconds", q.wait)));
    }
    // Subscribed before the first read: a commit between the read and the wait still wakes us.
    let mut commits = s.storage.watch();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait);
    loop {
        let storage = s.storage.clone();
        let (since, reader, viewer) = (q.since, operator.name.clone(), operator.clone());
        let page = blocking(move || {
            let ids = storage.changed_records_page(since, limit + 1)?;
            let more = ids.len() > limit;
            let mut changes = Vec::new();
            for (patient_id, seq) in ids.into_iter().take(limit) {
                changes.push(ChangedRecord {
                    seq,
                    patient_id,
                    record: masked_for(&viewer, storage.record(patient_id)?),
                });
            }
            let served: Vec<String> = changes.iter().map(|c| c.patient_id.to_string()).collect();
            storage.log_record_reads(
                &reader,
                &served.iter().map(String::as_str).collect::<Vec<_>>(),
                "changes-feed",
            )?;
            let next = changes.last().map_or(since, |c| c.seq);
            Ok(ChangesPage { changes, next, more })
        })
        .await?;
        if !page.changes.is_empty() {
            return Ok(Json(page));
        }
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => continue,
            // The wait ran out, or the store is closing: answer the empty page.
            Ok(Err(_)) | Err(_) => return Ok(Json(page)),
        }
    }
}
