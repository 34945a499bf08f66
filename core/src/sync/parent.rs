//! The parent side of a sync session (the relay, or an edge hub towards its devices): a sans-IO
//! state machine.

use super::child::message_name as name;
use super::message::{CatchUp, DocumentCopy, DocumentPage, ErrorCode, LogMark, Message, ScopeChange, WireChange};

/// Pull batches allowed in flight (the child applies them in order; QUIC carries them in order).
const PULL_WINDOW: usize = 4;

/// What the parent session asks of its driver.
#[derive(Debug, PartialEq, Eq)]
pub enum ParentAction {
    /// Send this message to the child.
    Send(Message),
    /// A child said hello: look up how much of its log we hold and our head, then call
    /// [`ParentSession::welcome`].
    Lookup {
        /// The child's peer id.
        peer: String,
        /// The child's cursor in our log.
        read_seq: i64,
        /// How far the child has read our grants to it.
        grant_seq: i64,
    },
    /// The child reported the records it holds (we were restored from a backup): purge those
    /// outside its scope, grant again those inside it it lacks, then call
    /// [`ParentSession::holdings_stored`].
    StoreHoldings {
        /// The records the child holds.
        docs: Vec<[u8; 16]>,
        /// How far the child had read our grants (those up to here it is thought to hold).
        heard: i64,
    },
    /// Read our changes after `after_seq` that the child may see (not its own), then call
    /// [`ParentSession::pull`].
    ReadLog {
        /// Cursor to read after.
        after_seq: i64,
    },
    /// Read a page of the documents in the child's scope, whole, in id order after `after` (a
    /// catch-up), then call [`ParentSession::documents`].
    ReadDocuments {
        /// The page starts after this document (`None`: from the first).
        after: Option<[u8; 16]>,
    },
    /// Read the documents granted to the child after grant `after` (at most a few, each whole),
    /// then call [`ParentSession::granted`].
    ReadGrants {
        /// Grant cursor to read after.
        after: i64,
    },
    /// The child's log went back (it was restored from a backup): forget how much of it we hold,
    /// so that it pushes everything again (what we already have is a no-op by hash).
    ForgetChildLog {
        /// The child's peer id.
        peer: String,
    },
    /// Store the child's changes and move its cursor to `up_to` in one transaction, then call
    /// [`ParentSession::ingested`].
    Ingest {
        /// The changes.
        items: Vec<WireChange>,
        /// New cursor of the child's log.
        up_to: i64,
    },
    /// The session failed; close the connection.
    Failed(String),
}

/// A catch-up being sent: the child reads our log from the start, so the documents in its scope
/// go whole, in id order, and then the log after `head`.
#[derive(Debug)]
struct CatchUpRun {
    /// Our head when it started: every change up to here is in the documents read after it.
    head: i64,
    /// Grants up to here are covered: a document that entered the scope comes with the others.
    grant: i64,
    /// The last document sent.
    after: Option<[u8; 16]>,
    /// The grants up to `grant` have been read (the purges among them went first).
    grants_read: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitLookup,
    Running,
    Failed,
}

/// Parent side of one session.
pub struct ParentSession {
    state: State,
    peer: String,
    child_read: i64,
    child_log_id: String,
    child_head: i64,
    acked: i64,
    sent_to: i64,
    head: i64,
    in_flight: usize,
    reading: bool,
    caught_sent: bool,
    grant_sent: i64,
    /// The grant position the child holds once it has stored what this session sent (each grant
    /// message says which one it follows).
    grant_told: i64,
    grants_dirty: bool,
    /// Where the child stands in an unfinished catch-up, as its hello said.
    child_catch_up: Option<CatchUp>,
    catch_up: Option<CatchUpRun>,
    /// The session's number from the hello (its bulk stream carries it).
    session: u64,
    /// The child said its log was restored.
    child_restored: bool,
    /// The welcome asked the child for its holdings, which come before any push.
    awaiting_holdings: bool,
}

impl Default for ParentSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ParentSession {
    /// A session waiting for the child's hello.
    pub fn new() -> ParentSession {
        ParentSession {
            state: State::AwaitHello,
            peer: String::new(),
            child_read: 0,
            child_log_id: String::new(),
            child_head: 0,
            acked: 0,
            sent_to: 0,
            head: 0,
            in_flight: 0,
            reading: false,
            caught_sent: false,
            grant_sent: 0,
            grant_told: 0,
            grants_dirty: true,
            child_catch_up: None,
            catch_up: None,
            session: 0,
            child_restored: false,
            awaiting_holdings: false,
        }
    }

    /// The session's number, from the child's hello: the first message of its bulk stream
    /// ([`Message::Stream`]).
    pub fn session_id(&self) -> u64 {
        self.session
    }

    /// Whether the welcome has been sent (live updates wait for it).
    pub fn is_welcomed(&self) -> bool {
        matches!(self.state, State::Running)
    }

    /// The child's peer id, once it said hello.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    fn fail(&mut self, code: ErrorCode, message: String) -> Vec<ParentAction> {
        self.state = State::Failed;
        vec![ParentAction::Send(Message::Error { code, message: message.clone() }), ParentAction::Failed(message)]
    }

    /// The driver's answer to `Lookup`: how much of the child's log we hold and the last change
    /// of it we hold, our log's id and head, how many changes (and bytes) the child is about to
    /// pull, and whether the child heard grants we no longer have (`grant_lost`: we were restored
    /// from an older backup).
    pub fn welcome(
        &mut self,
        (acked_seq, acked_mark): (i64, Option<LogMark>),
        log_id: &str,
        head: i64,
        grant_head: i64,
        pending: (u64, u64),
        grant_lost: bool,
    ) -> Vec<ParentAction> {
        if self.state != State::AwaitLookup {
            return Vec::new();
        }
        self.state = State::Running;
        let mut out = Vec::new();
        // The child found its log is not the one we acknowledged (it was restored from a backup:
        // our mark is not in it), or we hold more of its log than it has: its new changes reuse
        // sequence numbers we acknowledged. Take its whole log again, and send back what came
        // from it (the restore lost some of it).
        let (acked_seq, acked_mark) = if self.child_restored || acked_seq > self.child_head {
            out.push(ParentAction::ForgetChildLog { peer: self.peer.clone() });
            (0, None)
        } else {
            (acked_seq, acked_mark)
        };
        self.acked = acked_seq;
        self.head = head;
        // What it holds tells what of its scope we lost; a child of another log starts again.
        self.awaiting_holdings = grant_lost && self.child_log_id == log_id;
        // A cursor into another log (ours was replaced) counts for nothing.
        if self.child_log_id == log_id {
            // A child that read past our head read a log we lost (our database was restored from
            // an older backup): our numbering went past everything used before, so it reads on
            // from where it is and misses nothing new.
            self.sent_to = self.child_read;
        } else {
            self.sent_to = 0;
            self.grant_sent = 0;
            self.grant_told = 0;
            self.child_catch_up = None;
        }
        // A child reading our log from the start gets the documents in its scope whole, resuming
        // a catch-up it had begun when that one still fits our log.
        if self.sent_to == 0 && head > 0 {
            let resume = self.child_catch_up.take().filter(|c| c.head <= head && c.grant <= grant_head);
            self.catch_up = Some(match resume {
                Some(c) => CatchUpRun { head: c.head, grant: c.grant, after: Some(c.after), grants_read: false },
                None => CatchUpRun { head, grant: grant_head, after: None, grants_read: false },
            });
        }
        out.push(ParentAction::Send(Message::Welcome {
            peer: String::new(),
            log_id: log_id.to_string(),
            acked_seq,
            acked_mark,
            head,
            grant_head,
            pending_items: pending.0,
            pending_bytes: pending.1,
            holdings: self.awaiting_holdings,
        }));
        out.extend(self.more_pull());
        out
    }

    /// The child's cursor in our log after the last batch sent (what it will hold once applied).
    pub fn sent_to(&self) -> i64 {
        self.sent_to
    }

    /// New changes reached our log while the child is connected (live mode); `scope_changed`:
    /// documents may have entered or left the child's scope too.
    pub fn log_grew(&mut self, head: i64, scope_changed: bool) -> Vec<ParentAction> {
        if head > self.head {
            self.head = head;
            self.caught_sent = false;
        }
        self.grants_dirty |= scope_changed;
        self.more_pull()
    }

    fn more_pull(&mut self) -> Vec<ParentAction> {
        if self.state != State::Running || self.reading {
            return Vec::new();
        }
        // Documents that entered the scope go first: the log that follows builds on them. During a
        // catch-up only the grants it covers are read (their purges go before its documents).
        if self.grants_dirty && self.catch_up.as_ref().is_none_or(|c| !c.grants_read) {
            self.reading = true;
            return vec![ParentAction::ReadGrants { after: self.grant_sent }];
        }
        // Rewound to the start (a grant of every document): catch up from here.
        if self.catch_up.is_none() && self.sent_to == 0 && self.head > 0 {
            self.catch_up =
                Some(CatchUpRun { head: self.head, grant: self.grant_sent, after: None, grants_read: true });
        }
        if let Some(run) = &self.catch_up {
            if self.in_flight < PULL_WINDOW {
                self.reading = true;
                return vec![ParentAction::ReadDocuments { after: run.after }];
            }
            return Vec::new();
        }
        if self.sent_to < self.head {
            if self.in_flight < PULL_WINDOW {
                self.reading = true;
                return vec![ParentAction::ReadLog { after_seq: self.sent_to }];
            }
            return Vec::new();
        }
        if !self.caught_sent && self.sent_to > self.child_read {
            self.caught_sent = true;
            return vec![ParentAction::Send(Message::Caught { up_to: self.sent_to })];
        }
        Vec::new()
    }

    /// The driver read our log: `items` in the child's scope with sequence in
    /// `(after_seq, up_to]`.
    pub fn pull(&mut self, items: Vec<WireChange>, up_to: i64) -> Vec<ParentAction> {
        self.reading = false;
        if self.state != State::Running || up_to <= self.sent_to {
            return self.more_pull();
        }
        let message = Message::Pull { from_seq: self.sent_to, to_seq: up_to, items };
        self.sent_to = up_to;
        // Pull batches are not acknowledged by the child (the stream is ordered and its cursor is
        // durable on its side); the window bounds how far reading runs ahead of the transport,
        // which reports each batch it has sent with `pull_sent`.
        self.in_flight += 1;
        let mut out = vec![ParentAction::Send(message)];
        out.extend(self.more_pull());
        out
    }

    /// The driver read a page of the catch-up: `docs` after the page's start, the last document
    /// looked at, and whether the catch-up ends here.
    pub fn documents(&mut self, docs: Vec<DocumentCopy>, last: Option<[u8; 16]>, done: bool) -> Vec<ParentAction> {
        self.reading = false;
        let Some(run) = self.catch_up.as_mut() else {
            return self.more_pull();
        };
        if self.state != State::Running {
            return Vec::new();
        }
        let page = DocumentPage {
            head: run.head,
            grant: run.grant,
            grant_after: self.grant_told,
            after: run.after,
            last,
            done,
            docs,
        };
        if last.is_some() {
            run.after = last;
        }
        if done {
            // The log after the catch-up's head follows; so do grants it did not cover.
            self.sent_to = run.head;
            self.grant_sent = self.grant_sent.max(run.grant);
            self.grant_told = self.grant_told.max(run.grant);
            self.catch_up = None;
            self.grants_dirty = true;
            self.caught_sent = false;
        }
        self.in_flight += 1;
        let mut out = vec![ParentAction::Send(Message::Documents(page))];
        out.extend(self.more_pull());
        out
    }

    /// The transport has handed a pull batch to the network: read further.
    pub fn pull_sent(&mut self) -> Vec<ParentAction> {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.more_pull()
    }

    /// The driver read the grants after the cursor: `(grant, doc, saved document, signatures)`;
    /// `more` when it stopped at its limit.
    pub fn granted(&mut self, items: Vec<ScopeChange>, more: bool) -> Vec<ParentAction> {
        self.reading = false;
        self.grants_dirty = more;
        let mut out = Vec::new();
        if let Some(run) = self.catch_up.as_mut() {
            // The catch-up carries every document in the scope: of the grants it covers only the
            // purges are sent; later grants wait until it is done.
            run.grants_read = !more || items.iter().any(|c| c.grant() > run.grant);
            for change in items {
                if change.grant() <= self.grant_sent || change.grant() > run.grant {
                    continue;
                }
                self.grant_sent = change.grant();
                if let ScopeChange::Leave { grant, doc } = change {
                    let after = std::mem::replace(&mut self.grant_told, grant);
                    out.push(ParentAction::Send(Message::Purge { after, grant, doc }));
                }
            }
            self.grants_dirty = true;
            out.extend(self.more_pull());
            return out;
        }
        for change in items {
            if change.grant() <= self.grant_sent {
                continue;
            }
            self.grant_sent = change.grant();
            let message = match change {
                ScopeChange::Enter(grant) => {
                    if grant.doc.is_none() {
                        // Every document: the child reads our whole log again (it rewinds on receipt).
                        self.sent_to = 0;
                        self.caught_sent = false;
                    }
                    let after = std::mem::replace(&mut self.grant_told, grant.grant);
                    Message::Snapshot { after, grant }
                }
                ScopeChange::Leave { grant, doc } => {
                    let after = std::mem::replace(&mut self.grant_told, grant);
                    Message::Purge { after, grant, doc }
                }
            };
            out.push(ParentAction::Send(message));
        }
        out.extend(self.more_pull());
        out
    }

    /// The driver stored the child's holdings: the grants and purges they made go out next.
    pub fn holdings_stored(&mut self) -> Vec<ParentAction> {
        self.grants_dirty = true;
        self.more_pull()
    }

    /// The driver stored a push up to `up_to`.
    pub fn ingested(&mut self, up_to: i64, refused: Vec<(i64, String)>) -> Vec<ParentAction> {
        self.acked = self.acked.max(up_to);
        let mut out = Vec::new();
        if !refused.is_empty() {
            out.push(ParentAction::Send(Message::Refused { items: refused }));
        }
        out.push(ParentAction::Send(Message::Ack { up_to: self.acked }));
        out
    }

    /// A message from the child.
    pub fn on_message(&mut self, message: Message) -> Vec<ParentAction> {
        if self.state == State::Failed {
            return Vec::new();
        }
        match (message, &self.state) {
            (
                Message::Hello { peer, log_id, read_seq, grant_seq, local_head, catch_up, session, restored },
                State::AwaitHello,
            ) => {
                if peer.is_empty() || peer.len() > 128 {
                    return self.fail(ErrorCode::Protocol, "hello without a valid peer id".into());
                }
                self.peer = peer.clone();
                self.child_read = read_seq.max(0);
                self.child_log_id = log_id;
                self.grant_sent = grant_seq.max(0);
                self.grant_told = self.grant_sent;
                self.child_head = local_head;
                self.child_catch_up = catch_up.filter(|_| self.child_read == 0);
                self.session = session;
                self.child_restored = restored;
                self.state = State::AwaitLookup;
                vec![ParentAction::Lookup { peer, read_seq: self.child_read, grant_seq: self.grant_sent }]
            }
            (Message::Holdings { docs }, State::Running) => {
                if !std::mem::take(&mut self.awaiting_holdings) {
                    return self.fail(ErrorCode::Protocol, "holdings the welcome did not ask for".into());
                }
                vec![ParentAction::StoreHoldings { docs, heard: self.grant_told }]
            }
            (Message::Push { .. }, State::Running) if self.awaiting_holdings => {
                self.fail(ErrorCode::Protocol, "a push before the holdings the welcome asked for".into())
            }
            (Message::Push { from_seq, to_seq, items }, State::Running) => {
                if to_seq <= self.acked {
                    // Re-sent after a reconnect or duplicated: already stored.
                    return vec![ParentAction::Send(Message::Ack { up_to: self.acked })];
                }
                if from_seq > self.acked || to_seq < from_seq {
                    return self.fail(
                        ErrorCode::Protocol,
                        format!("push batch ({from_seq}, {to_seq}] leaves a gap after {}", self.acked),
                    );
                }
                if let Some(bad) = items.iter().find(|c| c.seq <= from_seq || c.seq > to_seq) {
                    return self.fail(
                        ErrorCode::Protocol,
                        format!("change {} is outside its batch ({from_seq}, {to_seq}]", bad.seq),
                    );
                }
                vec![ParentAction::Ingest { items, up_to: to_seq }]
            }
            (Message::Error { code, message }, _) => {
                self.state = State::Failed;
                vec![ParentAction::Failed(format!("the device ended the session ({code:?}): {message}"))]
            }
            (other, state) => self.fail(ErrorCode::Protocol, format!("unexpected {} in state {state:?}", name(&other))),
        }
    }
}
