//! Log sync: what DESIGN.md section 4 decides, as sans-IO state machines.
//!
//! Each replica numbers the changes it stores (`local_seq`). A child (device, or edge hub towards
//! its upstream) opens a session with a hello carrying its cursor in the parent's log; the
//! parent's welcome carries how much of the child's log it holds. Then, overlapping:
//!
//! - **push**: the child streams its own changes after the parent's ack, in batches; the parent
//!   stores each batch (idempotently, by change hash) and acks it by sequence;
//! - **pull**: the parent streams the changes after the child's cursor (leaving out the child's
//!   own); the child stores each batch and moves its cursor in the same transaction.
//!
//! An idle sync is one round trip. A session cut at any byte resumes from the cursors; re-sent
//! changes are no-ops. Frames are versioned, length-prefixed, size-limited and compressed
//! (`frame`). The state machines (`child`, `parent`) never touch storage or sockets; drivers
//! (`driver`) answer them from a [`Store`](crate::Store) and transports move the frames
//! (`local` in process; QUIC in the relay crate). The wire format is in `docs/PROTOCOL.md`.

mod child;
mod driver;
mod frame;
mod local;
mod message;
mod parent;
mod storage;

pub use child::{ChildAction, ChildSession, ChildStart, message_name};
pub use driver::{BATCH_CHANGES, ChildDriver, ParentDriver, ParentStep, SessionOutcome, next_session_number};
pub use frame::{
    FrameDecoder, FrameEncoder, FrameError, MAX_FRAME_BYTES, PAGE_LEVEL, PROTOCOL_VERSION, SLOW_LINK_BYTES_PER_SECOND,
    SLOW_PAGE_LEVEL, decode_body, encode, exercise_decoder, page_level,
};
pub use local::{Link, PerfectLink, SyncStats, sync_in_process};
pub use message::{CatchUp, DocumentCopy, DocumentPage, ErrorCode, Grant, LogMark, Message, ScopeChange, WireChange};
pub use parent::{ParentAction, ParentSession};
pub use storage::{DOCUMENTS_PAGE_BYTES, GRANTS_PER_READ, ParentStorage};
