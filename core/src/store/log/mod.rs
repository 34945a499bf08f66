//! The change log as the sync engine sees it, by job: [`reads`] (changes after a cursor, the
//! head), [`cursors`] (how far each peer has read and acknowledged), [`apply`] (changes received
//! from a peer, idempotently by hash: pushes, pulls, snapshots, purges). This module holds the
//! types they share.

use crate::PatientId;
use crate::document::decode_change;
use automerge::Change;
use serde::{Deserialize, Serialize};

mod apply;
mod cursors;
mod reads;

pub(crate) use cursors::{CursorMove, Source};
pub(crate) use reads::{count_and_bytes, for_peer};

/// Largest change accepted from a peer. A visit is about 500 bytes; a big discharge summary a few
/// kilobytes. Anything near this is an attack or a bug.
pub const MAX_CHANGE_BYTES: usize = 1024 * 1024;

/// A change as stored in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChange {
    /// Position in this replica's log.
    pub seq: i64,
    /// The document (patient) it belongs to.
    pub doc_id: PatientId,
    /// Automerge change hash.
    pub hash: [u8; 32],
    /// Raw automerge change bytes.
    pub bytes: Vec<u8>,
    /// Signature of the authoring device over the hash.
    pub signature: Option<Vec<u8>>,
    /// Made on this replica.
    pub local: bool,
}

/// A change received from a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingChange {
    /// The document it belongs to.
    pub doc_id: PatientId,
    /// Raw automerge change bytes.
    pub bytes: Vec<u8>,
    /// Signature of the authoring device over the hash, if the peer sent one.
    pub signature: Option<Vec<u8>>,
}

/// A change that was refused, by its position in the batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedChange {
    /// Index in the batch passed to [`Store::apply_remote_changes`](crate::Store::apply_remote_changes).
    pub index: usize,
    /// Why it was refused.
    pub reason: String,
}

/// What applying a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Changes stored for the first time.
    pub applied: usize,
    /// Changes already stored (re-sent): no-ops.
    pub duplicates: usize,
    /// Changes refused; nothing of them was stored.
    pub rejected: Vec<RejectedChange>,
    /// Documents that changed.
    pub changed: Vec<PatientId>,
}

/// One child's push, for [`Store::ingest_group`](crate::Store::ingest_group): its changes and how far its log they reach.
#[derive(Clone, Debug)]
pub struct ChildPush {
    /// The child (device or edge hub) that pushed.
    pub peer: String,
    /// Its changes, in the order it sent them.
    pub items: Vec<IncomingChange>,
    /// How much of the child's log is stored here once these are.
    pub up_to: i64,
    /// The position in the child's log of the last item: with its hash, the mark the child
    /// checks its log against at its next welcome ([`crate::sync::LogMark`]).
    pub last_seq: Option<i64>,
    /// The pushing phone's key, when the push is a phone's (see [`ChildPush::check_ahead`]).
    phone_key: Option<Vec<u8>>,
    /// What [`ChildPush::check_ahead`] worked out before the push waited for the store.
    prepared: Option<Prepared>,
}

impl PartialEq for ChildPush {
    fn eq(&self, other: &ChildPush) -> bool {
        // What was worked out ahead follows from the rest.
        (&self.peer, &self.items, self.up_to, self.last_seq, &self.phone_key)
            == (&other.peer, &other.items, other.up_to, other.last_seq, &other.phone_key)
    }
}

impl Eq for ChildPush {}

impl ChildPush {
    /// `peer`'s push of `items`, reaching `up_to` in its log.
    pub fn new(peer: &str, items: Vec<IncomingChange>, up_to: i64) -> ChildPush {
        ChildPush { peer: peer.to_string(), items, up_to, last_seq: None, phone_key: None, prepared: None }
    }

    /// The last item is at `seq` in the child's log (the parent remembers it as its mark).
    pub fn with_last_seq(mut self, seq: Option<i64>) -> ChildPush {
        self.last_seq = seq;
        self
    }

    /// The push is from the phone with this key (the only author a phone may push): its
    /// signatures can be checked ahead, by [`ChildPush::check_ahead`].
    pub fn from_phone(mut self, key: Option<Vec<u8>>) -> ChildPush {
        self.phone_key = key;
        self
    }

    /// Works out ahead, without the store, what storing a phone's push needs: its changes
    /// decoded and their signatures checked against the phone's key. A relay does this in each
    /// session while other pushes are being stored, so the work spreads over the cores instead of
    /// waiting for the store's one writer. Storing the push checks again what this did not
    /// settle, and counts a signature checked here only if the store finds the change's author
    /// is this key. A push not known to be a phone's (an edge hub forwards its phones') is left
    /// as it is.
    pub fn check_ahead(&mut self) {
        let Some(key) = self.phone_key.clone() else {
            return;
        };
        let checker = crate::identity::SignatureChecker::new(&key);
        let changes = self
            .items
            .iter()
            .map(|item| {
                if item.bytes.len() > MAX_CHANGE_BYTES {
                    return None; // refused when stored, saying so
                }
                let change = decode_change(&item.bytes).ok()?;
                let signed = match (&checker, item.signature.as_deref()) {
                    (Some(checker), Some(signature)) => checker.verify(&change.hash().0, signature),
                    _ => false,
                };
                Some((change, signed))
            })
            .collect();
        self.prepared = Some(Prepared { key, changes });
    }
}

/// A phone's push worked out ahead, outside the store: its changes decoded and their signatures
/// checked against the phone's key (the only author a phone may push). The store then only looks
/// up who owns each actor; what it finds must be this key for the check to count.
#[derive(Clone, Debug)]
struct Prepared {
    key: Vec<u8>,
    /// Per item: the decoded change and whether its signature is the key's (`None`: the item is
    /// refused or decoded again when stored, which says why).
    changes: Vec<Option<(Change, bool)>>,
}

/// Sync cursors for one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCursor {
    /// How much of our log the peer has durably acknowledged.
    pub acked_seq: i64,
    /// How far we have read the peer's log.
    pub read_seq: i64,
}
