//! The clock the tests' stores read: today (UTC+8) at 00:00:30, the hardest instant for the
//! calendar ("a visit a minute ago" is yesterday's), set directly rather than by running a suite
//! again under faketime. It stands still unless a test moves it.

use chrono::NaiveDate;
use std::sync::OnceLock;
use yilian_core::StoreOptions;
use yilian_core::time::{Clock, ManualClock, Millis, date_of, start_of};

/// The tests' clock, one per test process.
pub fn clock() -> &'static ManualClock {
    static CLOCK: OnceLock<ManualClock> = OnceLock::new();
    CLOCK.get_or_init(|| ManualClock::new(start_of(date_of(yilian_core::time::now_ms())) + 30_000))
}

/// Now, by the tests' clock.
pub fn now_ms() -> Millis {
    clock().now_ms()
}

/// Today (UTC+8), by the tests' clock.
pub fn today() -> NaiveDate {
    date_of(now_ms())
}

/// Store options on the tests' clock.
pub fn options() -> StoreOptions {
    StoreOptions { clock: Clock::Manual(clock().clone()), ..StoreOptions::default() }
}
