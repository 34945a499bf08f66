//! The messages of the log sync protocol (see `docs/PROTOCOL.md`).

use serde::{Deserialize, Serialize};

/// A change on the wire: its position in the sender's log, its document, its automerge bytes and
/// the authoring device's signature over its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireChange {
    /// Sequence number in the sender's log.
    pub seq: i64,
    /// Document (patient) id, 16 bytes of its UUID.
    pub doc: [u8; 16],
    /// Raw automerge change.
    pub bytes: Vec<u8>,
    /// Ed25519 signature of the authoring device over the change hash.
    pub signature: Option<Vec<u8>>,
}

/// A document that entered a child's scope, sent whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Position in the parent's list of grants for this child.
    pub grant: i64,
    /// The document; `None` grants every document: the child reads the log again from 0.
    pub doc: Option<[u8; 16]>,
    /// `Automerge::save()` of the document (empty when `doc` is `None`).
    pub bytes: Vec<u8>,
    /// The authoring devices' signatures of the document's changes, by change hash.
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
    /// Changes of the document the parent holds but has not applied yet, each with its
    /// signature: they wait for a dependency, so the save leaves them out, and the child's cursor
    /// may already be past them in the log (they were outside its scope when it read there).
    pub waiting: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Which change of a child's log the parent holds last: its position in the child's log and its
/// automerge hash. A child whose log holds another change there (or none) is not the log the
/// parent acknowledged: it was restored from a backup, or its store was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMark {
    /// Position in the child's log.
    pub seq: i64,
    /// The change's automerge hash.
    pub hash: [u8; 32],
}

/// Where a child stands in a catch-up (its first read of a parent's log, which arrives as whole
/// documents): what the child sends in its hello so an interrupted catch-up resumes where it
/// stopped instead of starting again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    /// The parent's log head the catch-up covers: once done, the child reads the log after it.
    pub head: i64,
    /// The grant the catch-up covers: documents granted up to here come with it.
    pub grant: i64,
    /// The last document received (documents go in id order).
    pub after: [u8; 16],
}

/// A page of a catch-up: documents in the child's scope, whole, in id order after `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentPage {
    /// The parent's log head the catch-up covers (changes up to here are in these documents).
    pub head: i64,
    /// The grant the catch-up covers (documents granted up to here are among them).
    pub grant: i64,
    /// The grant position the child holds once it has stored the grant messages sent before
    /// this page (the purges a catch-up sends first): a page that overtook one of them ends the
    /// session, as the purge would be taken for one the page covers.
    pub grant_after: i64,
    /// The page starts after this document (`None`: the first page of a new catch-up).
    pub after: Option<[u8; 16]>,
    /// The last document looked at (the next page starts after it).
    pub last: Option<[u8; 16]>,
    /// The catch-up ends with this page: the child's read cursor moves to `head`.
    pub done: bool,
    /// The documents.
    pub docs: Vec<DocumentCopy>,
}

/// A document sent whole: its compact automerge save, and the signatures of its changes in the
/// order of their hashes (which the receiver computes from the save, so no hash travels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentCopy {
    /// Document (patient) id, 16 bytes of its UUID.
    pub doc: [u8; 16],
    /// The document saved whole (`Automerge::save_nocompress()`: the frame compresses a page of
    /// them together); empty when `changes` carries it instead.
    pub save: Vec<u8>,
    /// The 64-byte Ed25519 signatures of the save's signed changes, concatenated in the order of
    /// the changes' hashes.
    pub signatures: Vec<u8>,
    /// Positions (in hash order) of the changes that carry no signature (a record's genesis).
    pub unsigned: Vec<u32>,
    /// The document's changes one by one (with their signatures), when it cannot be saved whole
    /// (some of its changes wait for dependencies that have not arrived).
    pub changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A change to a child's scope, in the order the parent numbered them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeChange {
    /// A document entered the scope: sent whole.
    Enter(Grant),
    /// A document left the scope: the child deletes it.
    Leave {
        /// Position in the parent's list of grants for this child.
        grant: i64,
        /// The document.
        doc: [u8; 16],
    },
}

impl ScopeChange {
    /// Its position in the parent's list of grants for the child.
    pub fn grant(&self) -> i64 {
        match self {
            ScopeChange::Enter(g) => g.grant,
            ScopeChange::Leave { grant, .. } => *grant,
        }
    }
}

/// Why a session was ended by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A frame or message that does not follow the protocol.
    Protocol,
    /// A version this side does not speak.
    Version,
    /// Not allowed (identity, scope).
    Forbidden,
    /// The other side failed internally; try again later.
    Internal,
}

impl Message {
    /// Whether this parent → child message counts against the pull window: a batch of the log or
    /// a page of documents, read ahead of the network by at most a few.
    pub fn is_pull_batch(&self) -> bool {
        matches!(self, Message::Pull { .. } | Message::Documents(_))
    }

    /// Whether this parent → child message travels on the session's bulk stream (the rest go on
    /// the control stream, so acks never queue behind a pull).
    pub fn is_bulk(&self) -> bool {
        matches!(
            self,
            Message::Stream { .. }
                | Message::Pull { .. }
                | Message::Documents(_)
                | Message::Snapshot { .. }
                | Message::Purge { .. }
                | Message::Caught { .. }
        )
    }
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Child → parent, first message: who I am and what I have of your log.
    Hello {
        /// The child's peer id (device id).
        peer: String,
        /// The parent log the cursor below refers to (empty: none yet).
        log_id: String,
        /// How far the child has read the parent's log.
        read_seq: i64,
        /// The child's newest local change.
        local_head: i64,
        /// How far the child has read the parent's list of documents granted to it.
        grant_seq: i64,
        /// An unfinished catch-up (the child's first read of this log, as whole documents).
        catch_up: Option<CatchUp>,
        /// A random number naming this session: the parent's bulk stream for it starts with a
        /// [`Message::Stream`] carrying it, so a session never reads another's stream.
        session: u64,
        /// The child found its log is not the one the parent acknowledged (the welcome's mark did
        /// not match: restored from a backup): the parent forgets how much of it it holds and
        /// what came from it, and takes it all again.
        restored: bool,
    },
    /// Parent → child: who I am and what I have of your log.
    Welcome {
        /// The parent's peer id.
        peer: String,
        /// Identity of the parent's log; a child whose cursor names another log starts again at 0.
        log_id: String,
        /// How much of the child's log the parent has durably stored.
        acked_seq: i64,
        /// The last change of the child's log the parent holds, for the child to check against its
        /// own log (`None` when it holds none).
        acked_mark: Option<LogMark>,
        /// The parent's newest change.
        head: i64,
        /// The newest grant for this child: the child is synced only once it has read this far.
        grant_head: i64,
        /// Changes the child is about to pull (for progress; an upper bound when the log grows).
        pending_items: u64,
        /// Their size in bytes.
        pending_bytes: u64,
        /// The child heard grants this parent no longer has (its database was restored from an
        /// older backup): before pushing, the child reports the records it holds
        /// ([`Message::Holdings`]), so the parent purges those outside its scope and sends again
        /// those inside it that it lacks.
        holdings: bool,
    },
    /// Child → parent, after a welcome that asked for it: every record the child holds.
    Holdings {
        /// The records' ids.
        docs: Vec<[u8; 16]>,
    },
    /// Child → parent: the child's changes with sequence in `(from_seq, to_seq]`.
    Push {
        /// Exclusive lower bound (the previous batch's `to_seq`, or the acked cursor).
        from_seq: i64,
        /// Inclusive upper bound.
        to_seq: i64,
        /// The changes.
        items: Vec<WireChange>,
    },
    /// Parent → child: the child's log is durably stored up to `up_to`.
    Ack {
        /// Acknowledged cursor.
        up_to: i64,
    },
    /// Parent → child: the parent's changes in the child's scope with sequence in
    /// `(from_seq, to_seq]` (changes outside the scope, or from the child itself, are left out
    /// but the range still covers them).
    Pull {
        /// Exclusive lower bound.
        from_seq: i64,
        /// Inclusive upper bound.
        to_seq: i64,
        /// The changes.
        items: Vec<WireChange>,
    },
    /// Parent → child: a document entered the child's scope after the child had read past its
    /// history; here it is whole. The child stores it and moves its grant cursor in one
    /// transaction.
    Snapshot {
        /// The grant position this one follows in this session (the child's grant cursor at its
        /// hello, or the previous grant sent): a child that heard another ends the session, as a
        /// grant it missed would never come again.
        after: i64,
        /// The document and its position.
        grant: Grant,
    },
    /// Parent → child: a page of a catch-up. A child reading the parent's log from the start gets
    /// the documents in its scope whole (compact saves, no per-change overhead) instead of the
    /// log's history change by change; it stores each page and its catch-up position in one
    /// transaction, and after the last page reads the log after the page's `head`.
    Documents(DocumentPage),
    /// Parent → child, the first message of a bulk stream: the session (from its hello) the
    /// stream belongs to. A child ignores a stream of another session.
    Stream {
        /// The session's number, as its hello gave it.
        session: u64,
    },
    /// Parent → child: the pull stream has reached the parent's head `up_to`, which is never
    /// below the head its welcome announced.
    Caught {
        /// The parent's head when this was sent.
        up_to: i64,
    },
    /// Either way: items of a batch that were refused (the rest was stored).
    Refused {
        /// Sequence numbers and reasons.
        items: Vec<(i64, String)>,
    },
    /// Either way: the session ends because of this error.
    Error {
        /// Kind of error.
        code: ErrorCode,
        /// What was wrong, for the peer's log.
        message: String,
    },
    /// Parent → child: a document left the child's scope (the resident's contract moved to
    /// another team, a referral closed and its grace period ran out). The child deletes it and
    /// moves its grant cursor in one transaction; nothing of it flows any more.
    Purge {
        /// The grant position this one follows in this session, as for a snapshot.
        after: i64,
        /// Position in the parent's list of grants for this child.
        grant: i64,
        /// The document.
        doc: [u8; 16],
    },
    /// Device → relay, first and only message of an enrollment: the one-time code an admin
    /// issued, and the device id to enroll as. The key enrolled is the one the device's TLS
    /// certificate carries (the handshake proved the device holds it).
    Enroll {
        /// The enrollment code as typed or scanned.
        code: String,
        /// The device id asked for.
        device: String,
    },
    /// Relay → device: enrolled.
    Enrolled {
        /// The device id.
        device: String,
        /// The practitioner it belongs to.
        practitioner: String,
        /// The organization it works for.
        organization: String,
    },
}
