//! Group commit of the children's pushes on a parent: pushes that arrive while a group is being
//! stored wait, and the next group stores all of them in one transaction, each with its own
//! answer.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use std::sync::{Arc, Mutex, mpsc};
use yilian_core::net::IngestQueue;
use yilian_core::store::{ApplyReport, ChildPush, IncomingChange, ScopeGrant, StoredChange};
use yilian_core::sync::{DocumentCopy, LogMark, ParentStorage, ScopeChange};
use yilian_core::{Result, Store, StoreEvents};

/// How long the test waits for sessions to reach a point before it fails (they take
/// milliseconds).
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A relay store whose first group waits for the test to open a gate, and which records the
/// size of every group it stores.
struct Gated {
    store: Store,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
    groups: Mutex<Vec<usize>>,
}

impl ParentStorage for Gated {
    fn log_id(&self) -> Result<String> {
        ParentStorage::log_id(&self.store)
    }
    fn head(&self) -> Result<i64> {
        ParentStorage::head(&self.store)
    }
    fn child_acked(&self, child: &str) -> Result<(i64, Option<LogMark>)> {
        ParentStorage::child_acked(&self.store, child)
    }
    fn forget_child_log(&self, child: &str) -> Result<()> {
        ParentStorage::forget_child_log(&self.store, child)
    }
    fn pending_for(&self, child: &str, after_seq: i64) -> Result<(u64, u64)> {
        self.store.pending_for(child, after_seq)
    }
    fn changes_for(&self, child: &str, after_seq: i64, limit: usize) -> Result<(Vec<StoredChange>, i64)> {
        self.store.changes_for(child, after_seq, limit)
    }
    fn documents_for(
        &self,
        child: &str,
        after: Option<[u8; 16]>,
    ) -> Result<(Vec<DocumentCopy>, Option<[u8; 16]>, bool)> {
        self.store.documents_for(child, after)
    }
    fn grant_head(&self, child: &str) -> Result<i64> {
        self.store.grant_head(child)
    }
    fn grants_for(&self, child: &str, after: i64) -> Result<(Vec<ScopeChange>, bool)> {
        self.store.grants_for(child, after)
    }
    fn ingest(&self, push: ChildPush) -> Result<ApplyReport> {
        ParentStorage::ingest(&self.store, push)
    }
    fn ingest_group(&self, pushes: Vec<ChildPush>) -> Vec<Result<ApplyReport>> {
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.recv().unwrap();
        }
        self.groups.lock().unwrap().push(pushes.len());
        self.store.ingest_group(pushes)
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<StoreEvents> {
        ParentStorage::watch(&self.store)
    }
    fn note_child_read(&self, child: &str, read_seq: i64) -> Result<()> {
        self.store.note_child_read(child, read_seq)
    }
    fn child_read(&self, child: &str) -> Result<i64> {
        self.store.child_read(child)
    }
    fn grant_lost(&self, grant_seq: i64) -> Result<bool> {
        self.store.grant_lost(grant_seq)
    }
    fn record_holdings(&self, child: &str, docs: &[yilian_core::PatientId], heard: i64) -> Result<usize> {
        self.store.record_holdings(child, docs, heard)
    }
}

/// A phone's first push: one resident registered with two visits.
fn phone_push(device: &str) -> (ChildPush, usize) {
    let phone = memory_store();
    let p = registered(&phone, device);
    phone.record_visit(p, visit(140, 90)).unwrap();
    phone.record_visit(p, visit(135, 85)).unwrap();
    let changes = phone.local_changes_since(0, usize::MAX).unwrap();
    let up_to = changes.last().unwrap().seq;
    let items: Vec<IncomingChange> = changes
        .into_iter()
        .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    let count = items.len();
    (ChildPush::new(device, items, up_to), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_that_arrive_while_a_group_is_stored_are_stored_together_each_with_its_answer() {
    let devices: Vec<String> = (0..12).map(|i| format!("phone-{i}")).collect();
    let store = memory_store();
    for device in &devices {
        store.grant_scope(device, ScopeGrant::Everything).unwrap();
    }
    let (open, gate) = mpsc::channel();
    let storage = Arc::new(Gated { store, gate: Mutex::new(Some(gate)), groups: Mutex::new(Vec::new()) });
    let queue = Arc::new(IngestQueue::default());
    let pushes: Vec<(ChildPush, usize)> = devices.iter().map(|d| phone_push(d)).collect();
    let expected: Vec<usize> = pushes.iter().map(|(_, n)| *n).collect();

    let mut sessions = Vec::new();
    let mut pushes = pushes.into_iter();
    let mut start = |(push, _): (ChildPush, usize)| {
        let (storage, queue) = (storage.clone(), queue.clone());
        sessions.push(tokio::spawn(async move { queue.ingest(storage.as_ref(), push).await }));
    };
    // The first session stores its push alone and stops at the gate; the others queue behind it.
    start(pushes.next().unwrap());
    let waited = tokio::time::timeout(WAIT, async {
        while storage.gate.lock().unwrap().is_some() {
            tokio::task::yield_now().await;
        }
    });
    waited.await.expect("the first push reached the store");
    pushes.for_each(&mut start);
    let waited = tokio::time::timeout(WAIT, async {
        while queue.queued() < devices.len() - 1 {
            tokio::task::yield_now().await;
        }
    });
    waited.await.expect("the other pushes queued behind it");
    open.send(()).unwrap();

    for (session, expected) in sessions.into_iter().zip(expected) {
        let report = session.await.unwrap().unwrap();
        assert_eq!((report.applied, report.rejected.len(), report.changed.len()), (expected, 0, 1));
    }
    assert_eq!(*storage.groups.lock().unwrap(), vec![1, devices.len() - 1]);
    assert_eq!(queue.figures(), (2, devices.len() as u64));
    assert_eq!(storage.store.patient_ids().unwrap().len(), devices.len());
    for device in &devices {
        assert!(storage.store.child_acked(device).unwrap().0 > 0, "{device}'s cursor moved with its push");
    }
}

#[test]
fn the_store_counts_where_storing_pushes_spends_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("relay.db"), options()).unwrap();
    let pushes: Vec<ChildPush> = (0..3)
        .map(|i| {
            let device = format!("phone-{i}");
            store.grant_scope(&device, ScopeGrant::Everything).unwrap();
            phone_push(&device).0
        })
        .collect();
    let before = store.contention();
    assert_eq!(before.ingest, yilian_core::IngestTime::default(), "nothing ingested yet");
    let reports: Vec<ApplyReport> = store.ingest_group(pushes).into_iter().map(Result::unwrap).collect();
    assert!(reports.iter().all(|r| r.applied > 0), "{reports:?}");
    let after = store.contention();
    let ingest = after.ingest;
    assert!(ingest.applying > std::time::Duration::ZERO, "automerge's part: {ingest:?}");
    assert!(ingest.writing > std::time::Duration::ZERO, "the writes' part: {ingest:?}");
    assert!(ingest.committing > std::time::Duration::ZERO, "the fsynced commit: {ingest:?}");
    let held = after.held - before.held;
    assert!(ingest.applying + ingest.writing + ingest.committing <= held, "{ingest:?} within the {held:?} held");
    // A push that stores nothing new (its changes are duplicates) adds to the counts as well,
    // and they only grow.
    let again = phone_push("phone-0").0;
    store.ingest_group(vec![again]).pop().unwrap().unwrap();
    let later = store.contention().ingest;
    assert!(
        later.applying >= ingest.applying && later.writing > ingest.writing && later.committing > ingest.committing
    );
}
