//! An in-process transport: a child and a parent store sync through real encoded frames over a
//! simulated link, flight by flight. Used by the demo and by protocol tests, where the link can
//! drop, duplicate, reorder or cut frames deterministically (no sockets, no sleeps).

use super::driver::{ChildDriver, ParentDriver, SessionOutcome};
use super::frame::{FrameDecoder, FrameEncoder, PAGE_LEVEL};
use super::message::Message;
use crate::{Result, Store};

/// What a link does to the frames of one flight (`up`: child to parent).
pub trait Link {
    /// Returns the bytes that arrive, and whether the link is still up afterwards.
    fn carry(&mut self, up: bool, frames: Vec<Vec<u8>>) -> (Vec<u8>, bool);
}

/// A link that delivers everything.
pub struct PerfectLink;

impl Link for PerfectLink {
    fn carry(&mut self, _up: bool, frames: Vec<Vec<u8>>) -> (Vec<u8>, bool) {
        (frames.concat(), true)
    }
}

/// Counters of one in-process session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Flights from the child answered by the parent.
    pub round_trips: u32,
    /// Protocol bytes child → parent.
    pub bytes_up: usize,
    /// Protocol bytes parent → child.
    pub bytes_down: usize,
    /// The child's view of the session.
    pub child: SessionOutcome,
    /// The parent's view of the session.
    pub parent: SessionOutcome,
}

/// Runs one session between `child` (called `child_id`) and `parent` (`parent_id`) over `link`
/// until nothing more moves or the link goes down.
pub fn sync_in_process(
    child: &Store,
    child_id: &str,
    parent: &Store,
    parent_id: &str,
    link: &mut dyn Link,
) -> Result<SyncStats> {
    let mut stats = SyncStats::default();
    let (mut c, mut up) = ChildDriver::start(child, child_id, parent_id)?;
    let mut p = ParentDriver::new(parent, parent_id);
    let (mut at_parent, mut at_child) = (FrameDecoder::new(), FrameDecoder::new());
    let (mut from_child, mut from_parent) = (FrameEncoder::new(), FrameEncoder::new());
    // Bounded: every flight either moves data or ends the loop.
    for _ in 0..1_000_000 {
        if up.is_empty() {
            break;
        }
        let frames: Vec<Vec<u8>> = up.iter().map(|m| from_child.encode(m, PAGE_LEVEL)).collect();
        stats.bytes_up += frames.iter().map(Vec::len).sum::<usize>();
        let (bytes, alive) = link.carry(true, frames);
        at_parent.push(&bytes);
        let mut down = Vec::new();
        loop {
            match at_parent.next_message() {
                Ok(Some(m)) => down.extend(p.on_message(m)?),
                Ok(None) => break,
                Err(e) => {
                    down.push(Message::Error { code: super::ErrorCode::Protocol, message: e.to_string() });
                    p.outcome.error = Some(e.to_string());
                    break;
                }
            }
        }
        if !alive {
            break;
        }
        // Each pull batch is "sent" as it joins the flight, which lets the parent read the next.
        let mut i = 0;
        while i < down.len() {
            if down[i].is_pull_batch() {
                let more = p.pull_sent()?;
                down.extend(more);
            }
            i += 1;
        }
        stats.round_trips += 1;
        let frames: Vec<Vec<u8>> = down.iter().map(|m| from_parent.encode(m, PAGE_LEVEL)).collect();
        stats.bytes_down += frames.iter().map(Vec::len).sum::<usize>();
        let (bytes, alive) = link.carry(false, frames);
        at_child.push(&bytes);
        up = Vec::new();
        loop {
            match at_child.next_message() {
                Ok(Some(m)) => up.extend(c.on_message(m)?),
                Ok(None) => break,
                Err(e) => {
                    c.outcome.error = Some(e.to_string());
                    break;
                }
            }
        }
        if !alive || c.outcome.error.is_some() {
            break;
        }
    }
    stats.child = c.outcome;
    stats.parent = p.outcome;
    Ok(stats)
}
