//! # yilian-relay
//!
//! The consortium's relay: the parent every device syncs with. It ingests each device's changes
//! (applying them to its own copy of every record, so the HTTP API can read them), keeps them in
//! its log with its own sequence, and streams to each device, live, the changes in its scope.
//!
//! - [`server`]: the QUIC endpoint (quinn), a task per connection, graceful shutdown;
//! - [`http`]: the HTTP API (axum): health, metrics, the admin endpoints, referral worklists and
//!   decisions, closed-loop statistics, the changes feed;
//! - [`fhir`]: FHIR R4 export of the records (Patient, `$everything`, searches);
//! - [`storage`]: the storage trait and its embedded SQLite backend;
//! - [`demo`]: the README's main job, a relay and three field devices over real QUIC.

pub mod demo;
pub mod fhir;
pub mod http;
pub mod metrics;
pub mod request;
pub mod server;
pub mod storage;

pub use server::{Relay, RelayConfig};
pub use storage::{RelayStorage, open_sqlite};
