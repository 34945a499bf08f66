//! The parent side of a sync session (the relay, or an edge hub towards its devices): a sans-IO
//! state machine.

use super::child::name;
use super::message::{ErrorCode, Message, WireChange};

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
    },
    /// Read our changes after `after_seq` that the child may see (not its own), then call
    /// [`ParentSession::pull`].
    ReadLog {
        /// Cursor to read after.
        after_seq: i64,
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
    acked: i64,
    sent_to: i64,
    head: i64,
    in_flight: usize,
    reading: bool,
    caught_sent: bool,
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
            acked: 0,
            sent_to: 0,
            head: 0,
            in_flight: 0,
            reading: false,
            caught_sent: false,
        }
    }

    /// The child's peer id, once it said hello.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    fn fail(&mut self, code: ErrorCode, message: String) -> Vec<ParentAction> {
        self.state = State::Failed;
        vec![ParentAction::Send(Message::Error { code, message: message.clone() }), ParentAction::Failed(message)]
    }

    /// The driver's answer to `Lookup`: how much of the child's log we hold, our log's id and head.
    pub fn welcome(&mut self, acked_seq: i64, log_id: &str, head: i64) -> Vec<ParentAction> {
        if self.state != State::AwaitLookup {
            return Vec::new();
        }
        self.state = State::Running;
        self.acked = acked_seq;
        self.head = head;
        // A cursor into another log (ours was replaced) counts for nothing.
        self.sent_to = if self.child_log_id == log_id { self.child_read.min(head) } else { 0 };
        let mut out = vec![ParentAction::Send(Message::Welcome {
            peer: String::new(),
            log_id: log_id.to_string(),
            acked_seq,
            head,
        })];
        out.extend(self.more_pull());
        out
    }

    /// New changes reached our log while the child is connected (live mode).
    pub fn log_grew(&mut self, head: i64) -> Vec<ParentAction> {
        if head > self.head {
            self.head = head;
            self.caught_sent = false;
        }
        self.more_pull()
    }

    fn more_pull(&mut self) -> Vec<ParentAction> {
        if self.state != State::Running || self.reading {
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
        // Pull batches are not acknowledged: the stream is ordered and the child's cursor is
        // durable on its side. The window only bounds how far reading runs ahead of sending.
        self.in_flight = 0;
        let mut out = vec![ParentAction::Send(message)];
        out.extend(self.more_pull());
        out
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
            (Message::Hello { peer, log_id, read_seq, .. }, State::AwaitHello) => {
                if peer.is_empty() || peer.len() > 128 {
                    return self.fail(ErrorCode::Protocol, "hello without a valid peer id".into());
                }
                self.peer = peer.clone();
                self.child_read = read_seq.max(0);
                self.child_log_id = log_id;
                self.state = State::AwaitLookup;
                vec![ParentAction::Lookup { peer }]
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
