//! A deterministic simulation of a consortium: phones of several village teams and a county
//! referral desk, and the relay, syncing through the real sans-IO sessions and drivers over real
//! stores (SQLite files in a temporary directory). One seed decides everything: which phone
//! edits what, which message of which session is delivered next, and every fault — messages
//! lost, duplicated or reordered, sessions cut at any message, phones and the relay crashed
//! (reopened from disk), phones restored from older backups, contracts moved to another team or
//! running out, referrals opened and closed, grace periods expiring, devices revoked, phone
//! clocks set up to two days wrong, changes delivered to the relay before their dependencies (as
//! a second path would). No wall clock and no thread decides an order: every store reads a clock
//! the scheduler sets (the consortium's time moves ten minutes a step) and draws its randomness
//! from the seed, so the same seed makes the same run, byte for byte (checked by a digest of
//! every store's database).
//!
//! After the faults, every phone still enrolled syncs until nothing moves, and the oracle
//! ([`oracle`]) checks the run: no edit lost, no record outside its store's scope, every record
//! equal to the relay's, nothing stored twice, and no session that reported synced while the
//! relay held a change it lacked (checked at the moment it said so).
//!
//! ```no_run
//! let outcome = yilian_sim::run(7, &yilian_sim::Config::default()).unwrap();
//! assert!(outcome.failures.is_empty(), "{}", outcome.report());
//! ```

pub mod oracle;
pub mod world;

pub use world::{Config, Outcome, run};
