//! # yilian-ffi
//!
//! The bindings the Android (Kotlin) and iOS (Swift) apps use: a thin uniffi layer over
//! `yilian-core`. Three things cross the boundary:
//!
//! - [`YilianStore`]: the phone's records and the whole care API (patients, contracts, conditions,
//!   visits and amendments, follow-ups and the due list, referrals and their events, referral
//!   suggestions), every call `async` and safe from any thread, plus an observer of record changes;
//! - [`enroll`] and [`YilianSyncAgent`]: joining the relay with a one-time code, then syncing
//!   whenever a link appears, with its status pushed to a [`SyncObserver`];
//! - two error enums, [`CareError`] and [`SyncError`], mapped from the core's errors in one
//!   place; a panic inside a call comes back as their `Internal` variant, never as a crash.
//!
//! Generated bindings are not committed: `scripts/bindings` builds this crate and runs the
//! in-repo `uniffi-bindgen` (library mode) into `android/yilian/src/main/kotlin/generated` and
//! `ios/Sources/YilianFFI`.

mod agent;
mod error;
mod records;
mod runtime;
mod store;

pub use agent::{Enrollment, SyncConfig, SyncObserver, SyncState, SyncStatus, YilianSyncAgent, enroll};
pub use error::{CareError, SyncError};
pub use records::*;
pub use store::{RecordsObserver, TaskHandle, YilianStore};

uniffi::setup_scaffolding!();
