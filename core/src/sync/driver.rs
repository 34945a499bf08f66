//! Drivers: the glue between a session state machine and a [`Store`]. They answer the session's
//! requests from the store and return the messages to send. Transports (in-process, QUIC) move
//! those messages; the drivers never touch a socket.

use super::child::{ChildAction, ChildSession, ChildStart};
use super::message::{ErrorCode, Grant, Message, ScopeChange, WireChange};
use super::parent::{ParentAction, ParentSession};
use super::storage::ParentStorage;
use crate::store::{ApplyReport, ChildPush, IncomingChange, StoredChange};
use crate::{Error, PatientId, PeerCursor, Result, Store};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the sessions this process starts, from 1. A session's number must differ from the
/// others on its connection, and a connection lives in one process: counting never repeats one,
/// and a small number is one or two bytes in the hello and the bulk stream's first message
/// (a random 64-bit number took ten in each, 18 of an idle sync's 118 bytes).
pub fn next_session_number() -> u64 {
    static SESSIONS: AtomicU64 = AtomicU64::new(1);
    SESSIONS.fetch_add(1, Ordering::Relaxed)
}

/// Changes per batch. About 500 B each raw, ~165 B compressed: a batch frame of ~80 KB.
pub const BATCH_CHANGES: usize = 500;

fn wire(c: StoredChange) -> WireChange {
    WireChange { seq: c.seq, doc: *c.doc_id.0.as_bytes(), bytes: c.bytes, signature: c.signature }
}

fn incoming(c: WireChange) -> IncomingChange {
    IncomingChange { doc_id: PatientId(uuid::Uuid::from_bytes(c.doc)), bytes: c.bytes, signature: c.signature }
}

/// How a session ended or stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOutcome {
    /// Everything exchanged as of the session start (and acknowledged durably by the parent).
    pub synced: bool,
    /// Changes sent (child: pushed; parent: pulled by the child).
    pub sent: usize,
    /// Changes received and stored.
    pub received: usize,
    /// Bytes of the changes sent and received (uncompressed automerge bytes).
    pub change_bytes: u64,
    /// Documents received whole (they entered the scope).
    pub snapshots: usize,
    /// Changes the peer refused, with the reasons.
    pub refused: Vec<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Documents changed by what was received (so a screen can refresh).
    pub changed: Vec<PatientId>,
    /// Documents deleted because they left the scope.
    pub purged: Vec<PatientId>,
    /// The session ended so that a new one starts at once (the child's log was found restored:
    /// the next hello says so).
    pub restart: bool,
}

/// A device (or edge hub) syncing with its parent.
pub struct ChildDriver<'a> {
    store: &'a Store,
    parent: String,
    session: ChildSession,
    /// Progress so far.
    pub outcome: SessionOutcome,
}

impl<'a> ChildDriver<'a> {
    /// Starts a session of `me` with `parent`; returns the driver and the messages to send.
    pub fn start(store: &'a Store, me: &str, parent: &str) -> Result<(ChildDriver<'a>, Vec<Message>)> {
        ChildDriver::start_session(store, me, parent, next_session_number())
    }

    /// [`ChildDriver::start`] with the session's number given (a simulation picks it from its
    /// seed); a session's number should not repeat on one connection.
    pub fn start_session(
        store: &'a Store,
        me: &str,
        parent: &str,
        session: u64,
    ) -> Result<(ChildDriver<'a>, Vec<Message>)> {
        let start = ChildStart {
            peer: me.to_string(),
            log_id: store.peer_log_id(parent)?,
            read_seq: store.peer_cursor(parent)?.read_seq,
            grant_seq: store.peer_grant_seq(parent)?,
            local_head: store.last_local_seq()?,
            catch_up: store.peer_catch_up(parent)?,
            session,
            restored: store.peer_restored(parent)?,
        };
        let (session, hello) = ChildSession::start(start);
        let mut driver = ChildDriver { store, parent: parent.to_string(), session, outcome: SessionOutcome::default() };
        let out = driver.run(vec![hello])?;
        Ok((driver, out))
    }

    /// Handles a message from the parent; returns the messages to send.
    pub fn on_message(&mut self, message: Message) -> Result<Vec<Message>> {
        let actions = self.session.on_message(message);
        self.run(actions)
    }

    /// The underlying session (progress, state).
    pub fn session(&self) -> &ChildSession {
        &self.session
    }

    /// New local edits while connected: push them.
    pub fn local_changed(&mut self) -> Result<Vec<Message>> {
        let head = self.store.last_local_seq()?;
        let actions = self.session.local_changed(head);
        self.run(actions)
    }

    fn run(&mut self, actions: Vec<ChildAction>) -> Result<Vec<Message>> {
        let mut queue: VecDeque<ChildAction> = actions.into();
        let mut send = Vec::new();
        while let Some(action) = queue.pop_front() {
            let next = match action {
                ChildAction::Send(m) => {
                    send.push(m);
                    continue;
                }
                ChildAction::ReportHoldings => {
                    let docs = self.store.patient_ids()?.into_iter().map(|d| *d.0.as_bytes()).collect();
                    send.push(Message::Holdings { docs });
                    continue;
                }
                ChildAction::CheckLog(mark) => {
                    let holds = self.store.local_change_hash(mark.seq)? == Some(mark.hash);
                    self.session.log_checked(holds)
                }
                ChildAction::Restored(why) => {
                    tracing::warn!(parent = %self.parent, "{why}");
                    self.store.set_peer_restored(&self.parent, true)?;
                    self.outcome.restart = true;
                    self.outcome.error = Some(why);
                    Vec::new()
                }
                ChildAction::RestoreTaken => {
                    self.store.set_peer_restored(&self.parent, false)?;
                    Vec::new()
                }
                ChildAction::ReadLocal { after_seq } => {
                    // The batch and how far it covers, read together: an edit committed between
                    // two separate reads would be covered (and acknowledged) without being sent.
                    let (changes, up_to) = self.store.local_batch(after_seq, BATCH_CHANGES)?;
                    self.outcome.sent += changes.len();
                    self.outcome.change_bytes += changes.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
                    self.session.push(changes.into_iter().map(wire).collect(), up_to)
                }
                ChildAction::ResetCursor { log_id } => {
                    self.store.reset_peer_read_cursor(&self.parent, &log_id)?;
                    Vec::new()
                }
                ChildAction::Apply { items, up_to, log_id } => {
                    self.outcome.change_bytes += items.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
                    let report = self.store.apply_changes_from(
                        Some(&self.parent),
                        items.into_iter().map(incoming).collect(),
                        Some((up_to, &log_id)),
                    )?;
                    self.outcome.received += report.applied;
                    for r in &report.rejected {
                        tracing::warn!(parent = %self.parent, reason = %r.reason, "refused a change from the parent");
                    }
                    self.outcome.changed.extend(report.changed);
                    self.session.applied(up_to)
                }
                ChildAction::ApplyDocuments { page, log_id } => {
                    let report = self.store.apply_documents_from(&self.parent, &page, &log_id)?;
                    self.outcome.received += report.applied;
                    self.outcome.snapshots += page.docs.len();
                    self.outcome.changed.extend(report.changed);
                    self.session.documents_applied(page.done, page.grant)
                }
                ChildAction::ApplySnapshot(grant) => {
                    let doc = grant.doc.map(|d| PatientId(uuid::Uuid::from_bytes(d)));
                    let report = self.store.apply_snapshot_from(
                        &self.parent,
                        grant.grant,
                        doc,
                        &grant.bytes,
                        &grant.signatures,
                        &grant.waiting,
                    )?;
                    self.outcome.received += report.applied;
                    self.outcome.snapshots += usize::from(doc.is_some());
                    self.outcome.changed.extend(report.changed);
                    self.session.snapshot_applied(grant.grant)
                }
                ChildAction::Purge { grant, doc } => {
                    let doc = PatientId(uuid::Uuid::from_bytes(doc));
                    self.store.purge_document_from(&self.parent, grant, doc)?;
                    self.outcome.purged.push(doc);
                    self.session.snapshot_applied(grant)
                }
                ChildAction::Welcomed { up_to } => {
                    self.store.set_peer_acked(&self.parent, up_to)?;
                    Vec::new()
                }
                ChildAction::Acked { up_to } => {
                    self.store.set_peer_cursor(&self.parent, PeerCursor { acked_seq: up_to, read_seq: 0 })?;
                    Vec::new()
                }
                ChildAction::Synced => {
                    self.outcome.synced = true;
                    Vec::new()
                }
                ChildAction::Failed(why) => {
                    self.outcome.error = Some(why);
                    Vec::new()
                }
                ChildAction::Refused(reasons) => {
                    self.outcome.refused.extend(reasons);
                    Vec::new()
                }
            };
            queue.extend(next);
        }
        Ok(send)
    }
}

/// The relay (or an edge hub) serving one child.
pub struct ParentDriver<'a> {
    store: &'a dyn ParentStorage,
    me: String,
    session: ParentSession,
    /// A push handed to the caller to store ([`ParentStep::Store`]), and what follows it.
    held: Option<HeldPush>,
    /// The child's key, when it is a phone (read at its hello): its pushes are checked ahead.
    phone_key: Option<Vec<u8>>,
    /// Progress so far.
    pub outcome: SessionOutcome,
}

/// What handling a message asks of the caller of [`ParentDriver::begin`].
#[derive(Debug)]
pub enum ParentStep {
    /// Send these messages; the message is handled.
    Send(Vec<Message>),
    /// Store this push (with other sessions' pushes, in one transaction: see
    /// [`ParentStorage::ingest_group`]), then hand the result to [`ParentDriver::stored`].
    Store(ChildPush),
}

/// The position in the child's log of the last item of the push out for storing.
fn held_last_seq(held: &Option<HeldPush>) -> Option<i64> {
    held.as_ref().and_then(|h| h.seqs.last().copied())
}

/// A push out for storing: the positions of its changes in the child's log (refusals name
/// them), and the actions and messages that wait for it.
struct HeldPush {
    seqs: Vec<i64>,
    up_to: i64,
    queue: VecDeque<ParentAction>,
    send: Vec<Message>,
}

impl<'a> ParentDriver<'a> {
    /// A driver waiting for a child's hello.
    pub fn new(store: &'a dyn ParentStorage, me: &str) -> ParentDriver<'a> {
        ParentDriver {
            store,
            me: me.to_string(),
            session: ParentSession::new(),
            held: None,
            phone_key: None,
            outcome: SessionOutcome::default(),
        }
    }

    /// The child's peer id once known.
    pub fn peer(&self) -> &str {
        self.session.peer()
    }

    /// Handles a message from the child; returns the messages to send. A push is stored here,
    /// on its own (a server with many children stores theirs together: [`ParentDriver::begin`]).
    pub fn on_message(&mut self, message: Message) -> Result<Vec<Message>> {
        let actions = self.session.on_message(message);
        self.run(actions)
    }

    /// Handles a message from the child, leaving a push for the caller to store: then the step is
    /// [`ParentStep::Store`], and nothing else happens in this session until [`ParentDriver::stored`].
    pub fn begin(&mut self, message: Message) -> Result<ParentStep> {
        let actions = self.session.on_message(message);
        self.step(actions.into(), Vec::new())
    }

    /// The push of the last [`ParentStep::Store`] was stored (or failed): acknowledges it and
    /// carries on with what waited for it.
    pub fn stored(&mut self, report: Result<ApplyReport>) -> Result<ParentStep> {
        let held = self.held.take().ok_or_else(|| Error::Sync { reason: "no push is out for storing".into() })?;
        let report = report?;
        self.outcome.received += report.applied;
        self.outcome.changed.extend(report.changed.iter().copied());
        let peer = self.session.peer().to_string();
        for r in &report.rejected {
            tracing::warn!(child = %peer, reason = %r.reason, "refused a change");
            self.outcome.refused.push(r.reason.clone());
        }
        let refused = report.rejected.into_iter().map(|r| (held.seqs[r.index], r.reason)).collect();
        let mut queue = held.queue;
        queue.extend(self.session.ingested(held.up_to, refused));
        self.step(queue, held.send)
    }

    /// Our log grew while the child is connected: stream the new changes (and, when
    /// `scope_changed`, the documents that entered or left its scope).
    pub fn log_grew(&mut self, scope_changed: bool) -> Result<Vec<Message>> {
        let head = self.store.head()?;
        let actions = self.session.log_grew(head, scope_changed);
        self.run(actions)
    }

    /// The transport has sent a pull batch: read further (reading never runs more than a few
    /// batches ahead of the network).
    pub fn pull_sent(&mut self) -> Result<Vec<Message>> {
        let actions = self.session.pull_sent();
        self.run(actions)
    }

    /// The session's state.
    pub fn session(&self) -> &ParentSession {
        &self.session
    }

    /// A message telling the child why the session ends here.
    pub fn internal_error(why: &str) -> Message {
        Message::Error { code: ErrorCode::Internal, message: why.to_string() }
    }

    /// Runs the session's actions, storing a push on the spot.
    fn run(&mut self, actions: Vec<ParentAction>) -> Result<Vec<Message>> {
        let mut step = self.step(actions.into(), Vec::new())?;
        loop {
            match step {
                ParentStep::Send(send) => return Ok(send),
                ParentStep::Store(push) => {
                    let report = self.store.ingest(push);
                    step = self.stored(report)?;
                }
            }
        }
    }

    /// Runs actions until they are done or a push is to be stored.
    fn step(&mut self, mut queue: VecDeque<ParentAction>, mut send: Vec<Message>) -> Result<ParentStep> {
        while let Some(action) = queue.pop_front() {
            let next = match action {
                ParentAction::Send(mut m) => {
                    if let Message::Welcome { peer, .. } = &mut m {
                        peer.clone_from(&self.me);
                    }
                    send.push(m);
                    continue;
                }
                ParentAction::Lookup { peer, read_seq, grant_seq } => {
                    let acked = self.store.child_acked(&peer)?;
                    let log_id = self.store.log_id()?;
                    let head = self.store.head()?;
                    let pending = self.store.pending_for(&peer, read_seq)?;
                    self.store.note_child_read(&peer, read_seq)?;
                    let grant_head = self.store.grant_head(&peer)?;
                    self.phone_key = self.store.phone_key(&peer)?;
                    let grant_lost = self.store.grant_lost(grant_seq)?;
                    self.session.welcome(acked, &log_id, head, grant_head, pending, grant_lost)
                }
                ParentAction::StoreHoldings { docs, heard } => {
                    let peer = self.session.peer().to_string();
                    let docs: Vec<PatientId> = docs.into_iter().map(|d| PatientId(uuid::Uuid::from_bytes(d))).collect();
                    let changed = self.store.record_holdings(&peer, &docs, heard)?;
                    tracing::warn!(child = %peer, held = docs.len(), changed, "a device reported its records after this relay was restored from a backup");
                    self.session.holdings_stored()
                }
                ParentAction::ReadLog { after_seq } => {
                    let (changes, up_to) = self.store.changes_for(self.session.peer(), after_seq, BATCH_CHANGES)?;
                    self.outcome.sent += changes.len();
                    self.outcome.change_bytes += changes.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
                    // Only a batch that carries something moves what an operator sees as the child's
                    // lag (which counts the changes for it after this point): a live session
                    // reading past other teams' changes must not write at every commit.
                    if up_to > after_seq && !changes.is_empty() {
                        self.store.note_child_read(self.session.peer(), up_to)?;
                    }
                    self.session.pull(changes.into_iter().map(wire).collect(), up_to)
                }
                ParentAction::ForgetChildLog { peer } => {
                    tracing::warn!(child = %peer, "the device's log went back (restored from a backup?): taking it all again");
                    self.store.forget_child_log(&peer)?;
                    Vec::new()
                }
                ParentAction::ReadDocuments { after } => {
                    let (docs, last, done) = self.store.documents_for(self.session.peer(), after)?;
                    self.outcome.snapshots += docs.len();
                    let actions = self.session.documents(docs, last, done);
                    if done {
                        self.store.note_child_read(self.session.peer(), self.session.sent_to())?;
                    }
                    actions
                }
                ParentAction::ReadGrants { after } => {
                    let (grants, more) = self.store.grants_for(self.session.peer(), after)?;
                    self.outcome.snapshots +=
                        grants.iter().filter(|g| matches!(g, ScopeChange::Enter(Grant { doc: Some(_), .. }))).count();
                    self.session.granted(grants, more)
                }
                ParentAction::Ingest { items, up_to } => {
                    self.outcome.change_bytes += items.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
                    let seqs: Vec<i64> = items.iter().map(|c| c.seq).collect();
                    let peer = self.session.peer().to_string();
                    self.held = Some(HeldPush { seqs, up_to, queue, send });
                    let push = ChildPush::new(&peer, items.into_iter().map(incoming).collect(), up_to)
                        .with_last_seq(held_last_seq(&self.held));
                    return Ok(ParentStep::Store(push.from_phone(self.phone_key.clone())));
                }
                ParentAction::Failed(why) => {
                    self.outcome.error = Some(why);
                    Vec::new()
                }
            };
            queue.extend(next);
        }
        Ok(ParentStep::Send(send))
    }
}
