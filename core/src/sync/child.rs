//! The child side of a sync session (a device, or an edge hub towards its upstream): a sans-IO
//! state machine. It consumes messages and produces messages and requests; the driver owns the
//! socket, the timers and the store.

use super::message::{CatchUp, DocumentPage, ErrorCode, Grant, LogMark, Message, WireChange};

/// Batches of pushed changes allowed in flight before an ack.
const PUSH_WINDOW: usize = 4;

/// What the child session asks of its driver.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildAction {
    /// Send this message to the parent.
    Send(Message),
    /// The parent holds our log up to this change: check that our log has it at that position,
    /// then call [`ChildSession::log_checked`].
    CheckLog(LogMark),
    /// Our log is not the one the parent acknowledged (restored from a backup, or the store
    /// replaced): remember it durably, so that the next hello says so and the parent takes our
    /// whole log again and sends back what came from us; then start a new session. This session
    /// ends here.
    Restored(String),
    /// The parent has taken our restored log into account (it forgot what it held of it before
    /// welcoming us): the mark of [`ChildAction::Restored`] can go.
    RestoreTaken,
    /// Send the parent every record we hold ([`Message::Holdings`]), before any push.
    ReportHoldings,
    /// Read local changes after `after_seq` and call [`ChildSession::push`].
    ReadLocal {
        /// Cursor to read after.
        after_seq: i64,
    },
    /// The parent's log restarted under another id: forget the old cursor (it is now 0).
    ResetCursor {
        /// The new log's id.
        log_id: String,
    },
    /// Store these changes and move the cursor for the parent to `up_to`, in one transaction;
    /// then call [`ChildSession::applied`].
    Apply {
        /// The changes.
        items: Vec<WireChange>,
        /// New read cursor.
        up_to: i64,
        /// Parent log id the cursor refers to.
        log_id: String,
    },
    /// Store these documents (a page of a catch-up) with the catch-up's position, in one
    /// transaction; on its last page the read cursor moves to the page's head and the grant
    /// cursor to its grant. Then call [`ChildSession::documents_applied`].
    ApplyDocuments {
        /// The page.
        page: DocumentPage,
        /// Parent log id the position refers to.
        log_id: String,
    },
    /// Store this document (newly in scope, sent whole) and move the grant cursor to its grant,
    /// in one transaction; a grant of every document means: read the parent's log again from 0.
    /// Then call [`ChildSession::snapshot_applied`].
    ApplySnapshot(Grant),
    /// Delete this document (it left the scope) and move the grant cursor to `grant`, in one
    /// transaction.
    Purge {
        /// The grant position.
        grant: i64,
        /// The document.
        doc: [u8; 16],
    },
    /// What the parent holds of our log as it welcomed us: record it, even below what it
    /// acknowledged before (a parent restored from an older backup holds less, and what it lost
    /// counts as not acknowledged again: pushed again, kept by a purge).
    Welcomed {
        /// Acknowledged cursor.
        up_to: i64,
    },
    /// The parent durably holds our log up to here (record it; "synced" when it reaches the head).
    Acked {
        /// Acknowledged cursor.
        up_to: i64,
    },
    /// The parent refused some of our changes (the rest were stored); reasons for the log and UI.
    Refused(Vec<String>),
    /// Both directions are complete as of the session start.
    Synced,
    /// The session failed; the driver closes the connection and retries later.
    Failed(String),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    AwaitWelcome,
    /// The welcome arrived; the driver checks our log against its mark.
    AwaitLogCheck,
    Running,
    Failed,
}

/// What a child says in its hello: who it is and where it stands with this parent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildStart {
    /// The child's peer id.
    pub peer: String,
    /// The parent log `read_seq` refers to (empty: none yet).
    pub log_id: String,
    /// How far the child has read the parent's log.
    pub read_seq: i64,
    /// How far the child has read the parent's grants to it.
    pub grant_seq: i64,
    /// The child's newest local change.
    pub local_head: i64,
    /// Where an unfinished catch-up of `log_id` stands.
    pub catch_up: Option<CatchUp>,
    /// This session's random number (its bulk stream must carry it).
    pub session: u64,
    /// The child found in an earlier session that its log is not the one the parent acknowledged.
    pub restored: bool,
}

/// Child side of one session.
pub struct ChildSession {
    state: State,
    /// Why the parent refused this device, when it did.
    forbidden: Option<String>,
    log_id: String,
    read_seq: i64,
    local_head: i64,
    acked: i64,
    pushed_to: i64,
    in_flight: usize,
    reading: bool,
    pull_target: i64,
    synced_reported: bool,
    grant_seq: i64,
    /// The last grant position the parent's messages reached (stored or not yet).
    grant_heard: i64,
    grant_target: i64,
    pending: (u64, u64),
    /// Where an unfinished catch-up stands (the last page received).
    catch_up: Option<CatchUp>,
    /// The hello said our log was restored.
    restored: bool,
    /// The welcome's acknowledged cursor and head, while our log is checked against its mark.
    welcome: (i64, i64),
    /// The welcome asked for our holdings (the parent was restored from a backup).
    report_holdings: bool,
}

impl ChildSession {
    /// Starts a session: returns the session and the hello to send.
    pub fn start(start: ChildStart) -> (ChildSession, ChildAction) {
        let ChildStart { peer, log_id, read_seq, grant_seq, local_head, catch_up, session, restored } = start;
        let catch_up = catch_up.filter(|_| read_seq == 0);
        let hello = Message::Hello {
            peer,
            log_id: log_id.clone(),
            read_seq,
            local_head,
            grant_seq,
            catch_up,
            session,
            restored,
        };
        let session = ChildSession {
            state: State::AwaitWelcome,
            forbidden: None,
            log_id,
            read_seq,
            local_head,
            acked: 0,
            pushed_to: 0,
            in_flight: 0,
            reading: false,
            pull_target: i64::MAX,
            synced_reported: false,
            grant_seq,
            grant_heard: grant_seq,
            grant_target: 0,
            pending: (0, 0),
            catch_up,
            restored,
            welcome: (0, 0),
            report_holdings: false,
        };
        (session, ChildAction::Send(hello))
    }

    /// Whether everything is exchanged as of the session start.
    pub fn is_synced(&self) -> bool {
        self.state == State::Running
            && self.acked >= self.local_head
            && self.read_seq >= self.pull_target
            && self.grant_seq >= self.grant_target
    }

    /// What the parent announced it will send: (changes, bytes).
    pub fn pull_pending(&self) -> (u64, u64) {
        self.pending
    }

    /// Whether the parent's welcome has arrived (messages of the pull stream wait for it).
    pub fn is_welcomed(&self) -> bool {
        self.state != State::AwaitWelcome
    }

    /// The driver's answer to [`ChildAction::CheckLog`]: whether our log holds the parent's mark.
    /// If it does, the session runs; if not, it ends with [`ChildAction::Restored`].
    pub fn log_checked(&mut self, holds_mark: bool) -> Vec<ChildAction> {
        if self.state != State::AwaitLogCheck {
            return Vec::new();
        }
        if !holds_mark {
            self.state = State::Failed;
            return vec![ChildAction::Restored(
                "this device's log is not the one the relay acknowledged (restored from a backup?): \
                 syncing it again whole"
                    .to_string(),
            )];
        }
        let (acked_seq, head) = self.welcome;
        self.run_welcomed(acked_seq, head)
    }

    fn run_welcomed(&mut self, acked_seq: i64, head: i64) -> Vec<ChildAction> {
        let mut out = Vec::new();
        self.state = State::Running;
        self.acked = acked_seq.min(self.local_head);
        self.pushed_to = self.acked;
        self.pull_target = head;
        out.push(ChildAction::Welcomed { up_to: self.acked });
        // Before any push: a late edit of a record that left our scope is taken only once the
        // parent knows we held it.
        if std::mem::take(&mut self.report_holdings) {
            out.push(ChildAction::ReportHoldings);
        }
        out.extend(self.more_push());
        self.check_synced(&mut out);
        out
    }

    /// The parent's reason, when it ended the session because this device is not allowed (not
    /// enrolled, revoked, another device's identity).
    pub fn forbidden(&self) -> Option<&str> {
        self.forbidden.as_deref()
    }

    /// The child made new local changes while connected (live mode): push them too.
    pub fn local_changed(&mut self, local_head: i64) -> Vec<ChildAction> {
        self.local_head = self.local_head.max(local_head);
        self.synced_reported = false;
        self.more_push()
    }

    fn fail(&mut self, code: ErrorCode, message: String) -> Vec<ChildAction> {
        self.state = State::Failed;
        vec![ChildAction::Send(Message::Error { code, message: message.clone() }), ChildAction::Failed(message)]
    }

    fn more_push(&mut self) -> Vec<ChildAction> {
        if self.state == State::Running
            && !self.reading
            && self.in_flight < PUSH_WINDOW
            && self.pushed_to < self.local_head
        {
            self.reading = true;
            return vec![ChildAction::ReadLocal { after_seq: self.pushed_to }];
        }
        Vec::new()
    }

    fn check_synced(&mut self, out: &mut Vec<ChildAction>) {
        if self.is_synced() && !self.synced_reported {
            self.synced_reported = true;
            out.push(ChildAction::Synced);
        }
    }

    /// The driver read these local changes (sequence in `(after_seq, up_to]`; `up_to` is the last
    /// sequence looked at, which may be past the last item).
    pub fn push(&mut self, items: Vec<WireChange>, up_to: i64) -> Vec<ChildAction> {
        self.reading = false;
        if self.state != State::Running || up_to <= self.pushed_to {
            return Vec::new();
        }
        let message = Message::Push { from_seq: self.pushed_to, to_seq: up_to, items };
        self.pushed_to = up_to;
        self.in_flight += 1;
        let mut out = vec![ChildAction::Send(message)];
        out.extend(self.more_push());
        out
    }

    /// The driver committed an `Apply` up to `up_to`.
    pub fn applied(&mut self, up_to: i64) -> Vec<ChildAction> {
        self.read_seq = self.read_seq.max(up_to);
        let mut out = Vec::new();
        self.check_synced(&mut out);
        out
    }

    /// The driver committed a page of a catch-up (the last one covers grants up to `grant`).
    pub fn documents_applied(&mut self, done: bool, grant: i64) -> Vec<ChildAction> {
        if done {
            self.grant_seq = self.grant_seq.max(grant);
        }
        let mut out = Vec::new();
        self.check_synced(&mut out);
        out
    }

    /// The driver committed an `ApplySnapshot` for `grant`.
    pub fn snapshot_applied(&mut self, grant: i64) -> Vec<ChildAction> {
        self.grant_seq = self.grant_seq.max(grant);
        let mut out = Vec::new();
        self.check_synced(&mut out);
        out
    }

    /// Checks that a grant message follows the last one heard (`after`), and moves on to `grant`;
    /// a gap ends the session (the grant missed would never come again: the next session starts
    /// from the stored cursor and reads it).
    fn hear_grant(&mut self, after: i64, grant: i64) -> Option<Vec<ChildAction>> {
        if after != self.grant_heard {
            return Some(self.fail(
                ErrorCode::Protocol,
                format!("grant {grant} follows grant {after}, but the last one heard was {}", self.grant_heard),
            ));
        }
        self.grant_heard = grant;
        None
    }

    /// A message from the parent.
    pub fn on_message(&mut self, message: Message) -> Vec<ChildAction> {
        if self.state == State::Failed {
            return Vec::new();
        }
        match (message, &self.state) {
            (
                Message::Welcome {
                    log_id,
                    acked_seq,
                    acked_mark,
                    head,
                    grant_head,
                    pending_items,
                    pending_bytes,
                    holdings,
                    ..
                },
                State::AwaitWelcome,
            ) => {
                let mut out = Vec::new();
                self.pending = (pending_items, pending_bytes);
                self.report_holdings = holdings;
                if log_id != self.log_id {
                    // Another log (the relay's database was replaced): everything again, from 0.
                    self.read_seq = 0;
                    self.grant_seq = 0;
                    self.grant_heard = 0;
                    self.catch_up = None;
                    self.log_id = log_id.clone();
                    out.push(ChildAction::ResetCursor { log_id });
                }
                self.grant_target = grant_head;
                if self.restored {
                    // The parent forgot our log before it welcomed us.
                    out.push(ChildAction::RestoreTaken);
                }
                match acked_mark {
                    // Holding more of our log than we have is the same as holding another log.
                    Some(mark) if !self.restored => {
                        self.state = State::AwaitLogCheck;
                        self.welcome = (acked_seq, head);
                        out.push(ChildAction::CheckLog(mark));
                    }
                    _ => out.extend(self.run_welcomed(acked_seq, head)),
                }
                out
            }
            (Message::Ack { up_to }, State::Running) => {
                if up_to > self.pushed_to {
                    return self.fail(
                        ErrorCode::Protocol,
                        format!("ack of {up_to} beyond what was pushed ({})", self.pushed_to),
                    );
                }
                self.in_flight = self.in_flight.saturating_sub(1);
                let mut out = Vec::new();
                if up_to > self.acked {
                    self.acked = up_to;
                    out.push(ChildAction::Acked { up_to });
                }
                out.extend(self.more_push());
                self.check_synced(&mut out);
                out
            }
            (Message::Pull { from_seq, to_seq, items }, State::Running) => {
                if to_seq <= self.read_seq {
                    return Vec::new(); // a batch we already have
                }
                if from_seq != self.read_seq || to_seq < from_seq {
                    return self.fail(
                        ErrorCode::Protocol,
                        format!("pull batch ({from_seq}, {to_seq}] does not follow cursor {}", self.read_seq),
                    );
                }
                // Optimistic: the next batch follows this one; the cursor is durable once applied.
                self.read_seq = to_seq;
                vec![ChildAction::Apply { items, up_to: to_seq, log_id: self.log_id.clone() }]
            }
            (Message::Documents(page), State::Running) => {
                if self.read_seq > 0 {
                    if page.head <= self.read_seq {
                        return Vec::new(); // a page of a catch-up already done
                    }
                    return self.fail(
                        ErrorCode::Protocol,
                        format!("documents of a catch-up while reading the log at {}", self.read_seq),
                    );
                }
                if page.grant_after != self.grant_heard {
                    return self.fail(
                        ErrorCode::Protocol,
                        format!(
                            "documents page after grant {}, but the last grant heard was {}",
                            page.grant_after, self.grant_heard
                        ),
                    );
                }
                let follows = match (page.after, self.catch_up) {
                    (None, _) => true,
                    (Some(after), Some(at)) => at.after == after && at.head == page.head && at.grant == page.grant,
                    (Some(_), None) => false,
                };
                if !follows {
                    return self.fail(
                        ErrorCode::Protocol,
                        "documents page does not follow the catch-up's position".to_string(),
                    );
                }
                // Optimistic, like a pull batch: the next page (or the log) follows this one.
                if page.done {
                    self.read_seq = page.head;
                    self.grant_heard = self.grant_heard.max(page.grant);
                    self.catch_up = None;
                } else {
                    let Some(after) = page.last else {
                        return self.fail(ErrorCode::Protocol, "documents page without its last document".to_string());
                    };
                    self.catch_up = Some(CatchUp { head: page.head, grant: page.grant, after });
                }
                vec![ChildAction::ApplyDocuments { page, log_id: self.log_id.clone() }]
            }
            (Message::Snapshot { after, grant }, State::Running) => {
                if grant.grant <= self.grant_heard {
                    return Vec::new(); // already stored
                }
                if let Some(fail) = self.hear_grant(after, grant.grant) {
                    return fail;
                }
                if grant.doc.is_none() {
                    // Every document: the pull stream that follows starts again from 0.
                    self.read_seq = 0;
                }
                vec![ChildAction::ApplySnapshot(grant)]
            }
            (Message::Purge { after, grant, doc }, State::Running) => {
                if grant <= self.grant_heard {
                    return Vec::new(); // already purged
                }
                if let Some(fail) = self.hear_grant(after, grant) {
                    return fail;
                }
                vec![ChildAction::Purge { grant, doc }]
            }
            (Message::Caught { up_to }, State::Running) => {
                // Only the welcome sets what this session must read: a caught below it (another
                // session's, or a parent's mistake) would report synced with changes missing.
                if up_to < self.pull_target {
                    return self.fail(
                        ErrorCode::Protocol,
                        format!("caught up to {up_to}, below the head {} the welcome announced", self.pull_target),
                    );
                }
                let mut out = Vec::new();
                self.check_synced(&mut out);
                out
            }
            (Message::Refused { items }, State::Running) => {
                // The parent stored the rest and acks past the refused items: they are not sent
                // again. They stay in our log and record; the status shows the refusal.
                vec![ChildAction::Refused(items.iter().map(|(seq, why)| format!("change {seq}: {why}")).collect())]
            }
            (Message::Error { code, message }, _) => {
                self.state = State::Failed;
                if code == ErrorCode::Forbidden {
                    self.forbidden = Some(message.clone());
                }
                vec![ChildAction::Failed(format!("the relay ended the session ({code:?}): {message}"))]
            }
            (other, state) => {
                self.fail(ErrorCode::Protocol, format!("unexpected {} in state {state:?}", message_name(&other)))
            }
        }
    }
}

/// The message's kind, for errors.
pub fn message_name(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "hello",
        Message::Welcome { .. } => "welcome",
        Message::Push { .. } => "push",
        Message::Ack { .. } => "ack",
        Message::Pull { .. } => "pull",
        Message::Caught { .. } => "caught",
        Message::Stream { .. } => "stream",
        Message::Snapshot { .. } => "snapshot",
        Message::Documents(_) => "documents",
        Message::Refused { .. } => "refused",
        Message::Error { .. } => "error",
        Message::Purge { .. } => "purge",
        Message::Holdings { .. } => "holdings",
        Message::Enroll { .. } => "enroll",
        Message::Enrolled { .. } => "enrolled",
    }
}
