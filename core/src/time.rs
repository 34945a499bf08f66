//! Time: wall-clock milliseconds, the consortium's calendar date, and the hybrid logical clock
//! that orders referral events.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Current wall-clock time in milliseconds.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// Where a store reads the time. Every instant a store writes (an edit's time, a scope change, a
/// cursor's `updated_at`) and every judgement by the calendar (a contract that ran out, a grace
/// period over, a date in the future) reads its clock, never the system's directly: a simulation
/// gives each device and the relay a [`ManualClock`] of its own, skews them, and replays a run
/// byte for byte.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's wall clock (what phones and relays run on).
    #[default]
    System,
    /// A clock someone else sets.
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the Unix epoch, UTC, by this clock.
    pub fn now_ms(&self) -> Millis {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(clock) => clock.now_ms(),
        }
    }

    /// Today's consortium calendar date by this clock.
    pub fn today(&self) -> NaiveDate {
        date_of(self.now_ms())
    }
}

/// A clock that reads what it was last set to: shared by its clones, so a simulation keeps one
/// handle and the store another.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `at`.
    pub fn new(at: Millis) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(at)))
    }

    /// What the clock reads.
    pub fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets the clock (it may go back, as a phone's clock does when its owner corrects it).
    pub fn set(&self, at: Millis) {
        self.0.store(at, Ordering::SeqCst);
    }

    /// Moves the clock by `ms` (either sign).
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// China Standard Time (UTC+8, no daylight saving): the calendar the care rules count days in.
fn consortium_tz() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+8h is within the +-24h that FixedOffset accepts")
}

/// The consortium calendar date (UTC+8) of an instant.
pub fn date_of(ms: Millis) -> NaiveDate {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    utc.with_timezone(&consortium_tz()).date_naive()
}

/// Today's consortium calendar date.
pub fn today() -> NaiveDate {
    date_of(now_ms())
}

/// An instant as consortium local time (UTC+8), `2026-11-23 09:30:00 +08:00`, for messages and logs.
pub fn format_ms(ms: Millis) -> String {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    utc.with_timezone(&consortium_tz()).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// Midnight (UTC+8) at the start of a consortium calendar date, in milliseconds.
pub fn start_of(date: NaiveDate) -> Millis {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    consortium_tz().from_local_datetime(&midnight).single().map(|t| t.timestamp_millis()).unwrap_or(0)
}

/// A hybrid logical clock reading: wall milliseconds in the high 48 bits, a counter in the low 16.
///
/// Referral events are ordered by it. A device that records an event after seeing others always
/// stamps it later than all of them, even if its wall clock is behind, so causality survives
/// clock skew between a village phone and a hospital server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Hlc(pub i64);

impl Hlc {
    const COUNTER_BITS: u32 = 16;

    /// The reading for a wall time with counter 0.
    pub fn from_wall(ms: Millis) -> Self {
        Hlc(ms.max(0) << Self::COUNTER_BITS)
    }

    /// The wall-clock part, in milliseconds.
    pub fn wall_ms(self) -> Millis {
        self.0 >> Self::COUNTER_BITS
    }

    /// The next reading after all of `seen`, not earlier than the wall clock `now`.
    pub fn next(now: Millis, seen: impl IntoIterator<Item = Hlc>) -> Hlc {
        let latest = seen.into_iter().max().unwrap_or(Hlc(0));
        let wall = Hlc::from_wall(now);
        if wall > latest { wall } else { Hlc(latest.0 + 1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_orders_after_everything_seen_even_with_a_slow_clock() {
        let seen = [Hlc::from_wall(10_000), Hlc(Hlc::from_wall(10_000).0 + 3)];
        let next = Hlc::next(5_000, seen);
        assert!(next > seen[1]);
        assert_eq!(next.wall_ms(), 10_000);
        let fresh = Hlc::next(20_000, seen);
        assert_eq!(fresh, Hlc::from_wall(20_000));
    }

    #[test]
    fn consortium_dates_are_utc_plus_8() {
        // 2026-03-01 17:00 UTC is already 2026-03-02 in Beijing.
        let ms = Utc.with_ymd_and_hms(2026, 3, 1, 17, 0, 0).unwrap().timestamp_millis();
        assert_eq!(date_of(ms), NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(date_of(start_of(date_of(ms))), date_of(ms));
    }
}
