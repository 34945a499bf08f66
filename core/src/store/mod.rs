//! The durable on-device store: SQLite (WAL, one writer), one automerge document per patient
//! loaded on demand through a bounded cache, a change log numbered by local sequence, and index
//! tables for the lists a doctor opens every day.
//!
//! An edit is durable when the call returns: its change, the document row and the indexes commit
//! in one SQLite transaction. If that transaction fails, the in-memory document is dropped from
//! the cache so memory never runs ahead of disk.

mod audit;
mod catch_up;
mod checkpoint;
mod contention;
mod directory;
mod docs;
mod edits;
mod index;
mod log;
mod operators;
mod parallel;
mod queries;
pub(crate) mod schema;
mod scope;
mod statistics;
mod worklist;

pub use audit::{AuditEntry, AuditTrail, FieldChange, SignatureCheck};
pub use contention::{IngestTime, StoreContention};
pub use directory::{
    DEFAULT_CODE_VALIDITY, Device, DeviceAccess, DeviceKind, EnrollmentCode, Organization, OrganizationKind,
    Practitioner, PractitionerRole, Team, check_device_id,
};
pub use index::{PatientSummary, ReferralSummary};
pub use scope::{DEFAULT_REFERRAL_GRACE, DocumentSnapshot, ScopeGrant};

pub use log::{ApplyReport, ChildPush, IncomingChange, MAX_CHANGE_BYTES, PeerCursor, RejectedChange, StoredChange};
pub use operators::{ApiOperator, OperatorRole, RecordRead};
pub use worklist::{MAX_WORKLIST_LINES, WorklistFilter, WorklistItem, WorklistSide};

use crate::identity::DeviceKey;
use crate::time::Clock;
use crate::{Error, PatientId, Result};
use automerge::ActorId;
use lru::LruCache;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Mutex;

/// How hard each commit pushes data to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: survives power loss (a phone whose battery dies). The default.
    Full,
    /// Survives a crash of the process, not of the machine; faster on slow flash.
    Normal,
    /// No fsync at all: only for building throw-away test data.
    Off,
}

/// SQLite's own default page cache (2,000 KiB): enough for a phone's panel.
pub const DEFAULT_PAGE_CACHE_BYTES: usize = 2_000 * 1024;

/// Prepared statements kept per connection (rusqlite keeps 16 by default; the store uses more,
/// and re-preparing one costs more than running it).
const STATEMENT_CACHE: usize = 128;

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// 32-byte key for encryption at rest (SQLCipher); the app keeps it in the Android Keystore or
    /// iOS Keychain. `None` stores in plain SQLite.
    pub encryption_key: Option<Vec<u8>>,
    /// The device key to author and sign with. `None`: use the one kept in the store (generated
    /// on first open).
    pub device_key: Option<DeviceKey>,
    /// Documents kept loaded at once.
    pub cache_capacity: usize,
    /// Compact a document into its snapshot after this many changes.
    pub compact_every: u32,
    /// Commit durability.
    pub durability: Durability,
    /// As a parent: bytes of records per page of a child's catch-up (before compression).
    pub catch_up_page_bytes: usize,
    /// SQLite's page cache, bytes. Pages not in it are read from the operating system on every
    /// use (a system call each): a relay serving a county wants its working set here.
    pub page_cache_bytes: usize,
    /// Where the store reads the time ([`Clock::System`] outside simulations and tests).
    pub clock: Clock,
    /// Seeds the store's randomness (its automerge actor, its log id, enrollment codes, operator
    /// tokens) so that a simulation replays byte for byte. Each open needs a seed of its own: an
    /// actor must never be reused. `None` (always, outside simulations and tests): the operating
    /// system's randomness.
    pub seed: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            encryption_key: None,
            device_key: None,
            cache_capacity: 128,
            compact_every: 16,
            durability: Durability::Full,
            catch_up_page_bytes: crate::sync::DOCUMENTS_PAGE_BYTES,
            page_cache_bytes: DEFAULT_PAGE_CACHE_BYTES,
            clock: Clock::System,
            seed: None,
        }
    }
}

/// A device's store of patient records. Cheap to share between threads (`&self` methods,
/// one writer inside).
pub struct Store {
    // Declared first so it stops before the writer connection closes.
    _checkpointer: Option<checkpoint::Checkpointer>,
    inner: Mutex<Inner>,
    contention: contention::Counters,
    /// The clock of the options (it never changes: read without the lock).
    clock: Clock,
}

pub(crate) struct Inner {
    pub(crate) conn: Connection,
    pub(crate) cache: LruCache<PatientId, docs::Loaded>,
    pub(crate) key: DeviceKey,
    /// A fresh random actor for every open: a restored backup can never reuse an actor.
    pub(crate) actor: ActorId,
    /// The store's randomness (seeded from [`StoreOptions::seed`] or the operating system).
    pub(crate) rng: StdRng,
    /// The instant and bits of the last id drawn ([`Inner::new_id`]).
    pub(crate) last_id: Option<(crate::time::Millis, [u8; 10])>,
    pub(crate) options: StoreOptions,
    /// Moves on every commit; sync agents and relay sessions wait on it.
    pub(crate) events: tokio::sync::watch::Sender<StoreEvents>,
    /// The newest grant when the last commit was announced: a newer one means scope changed.
    pub(crate) grant_mark: std::cell::Cell<i64>,
}

/// Counters that move when the store commits something: what sync waits on instead of polling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreEvents {
    /// Edits made on this replica (each is also log growth).
    pub local_edits: u64,
    /// Commits that added to the log or to the grants (local edits, changes from peers, scope).
    pub log_growth: u64,
    /// Commits that changed who may see what (grants, purges, the directory): every live
    /// session looks again at its grants.
    pub scope_changes: u64,
    /// Per child, commits that touched a record in its scope: a live session with nothing new
    /// for its child does not touch the database (a relay holds a thousand of them).
    touched: std::collections::HashMap<String, u64>,
}

impl StoreEvents {
    /// Commits so far that touched a record in `peer`'s scope.
    pub fn touched(&self, peer: &str) -> u64 {
        self.touched.get(peer).copied().unwrap_or(0)
    }
}

/// What a commit changed, for [`Inner::notify`].
pub(crate) enum Committed<'a> {
    /// Changes to these records (and maybe, with them, to who sees them).
    Records(&'a [PatientId]),
    /// The directory or the scope.
    Scope,
}

impl Inner {
    /// Now, by the store's clock.
    pub(crate) fn now(&self) -> crate::time::Millis {
        self.options.clock.now_ms()
    }

    /// A fresh id for an entity, from the store's clock and randomness, after every id this
    /// store drew before (ids drawn in one millisecond, or after the clock stepped back, count up
    /// from the last one, as UUIDv7's monotonic counter does).
    pub(crate) fn new_id<T: crate::ids::Drawn>(&mut self) -> T {
        let now = self.now();
        let (ms, bits) = match self.last_id {
            Some((last, mut bits)) if now <= last => {
                // Counting from the last byte up; the random start leaves 2^62 steps before the
                // count could reach the bits the version and variant take.
                for byte in bits.iter_mut().rev() {
                    let (next, carry) = byte.overflowing_add(1);
                    *byte = next;
                    if !carry {
                        break;
                    }
                }
                (last, bits)
            }
            _ => (now, self.rng.r#gen::<[u8; 10]>()),
        };
        self.last_id = Some((ms, bits));
        T::drawn(ms, bits)
    }

    /// Announces a commit. Records name the children they concern (those whose scope holds
    /// them, or everything); a commit that added grants, or changed the directory, concerns
    /// every child. Errors only cost precision: then every child is told.
    pub(crate) fn notify(&self, local: bool, what: Committed<'_>) {
        let concerned = match what {
            Committed::Records(docs) => self.children_concerned(docs).ok(),
            Committed::Scope => None,
        };
        let newest_grant = self
            .conn
            .prepare_cached("SELECT coalesce(max(grant_id), 0) FROM scope")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .unwrap_or(i64::MAX);
        let scope_changed = concerned.is_none() || newest_grant != self.grant_mark.get();
        self.grant_mark.set(newest_grant);
        self.events.send_modify(|e| {
            e.log_growth += 1;
            if local {
                e.local_edits += 1;
            }
            if scope_changed {
                e.scope_changes += 1;
            }
            for peer in concerned.into_iter().flatten() {
                *e.touched.entry(peer).or_default() += 1;
            }
        });
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise (for
    /// work that needs the rest of `Inner` while the transaction is open).
    pub(crate) fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN")?;
        let result = f(self).and_then(|value| {
            self.conn.execute_batch("COMMIT")?;
            Ok(value)
        });
        if result.is_err() && !self.conn.is_autocommit() {
            // What failed is the error to report; a failed rollback leaves SQLite to roll back.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    /// Runs a write whose loss at a power cut costs nothing but a little repeated work
    /// (bookkeeping the next session rewrites) without its own fsync: SQLite's WAL keeps it
    /// atomic, and it becomes durable with the next fsynced commit.
    pub(crate) fn without_fsync<T>(&self, write: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.options.durability != Durability::Full {
            return write(&self.conn);
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = write(&self.conn);
        // Restored whatever the write did; a failure to restore is this call's error.
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        let value = result?;
        restored?;
        Ok(value)
    }

    /// Children whose scope holds any of `docs`.
    fn children_concerned(&self, docs: &[PatientId]) -> Result<std::collections::BTreeSet<String>> {
        let mut peers = std::collections::BTreeSet::new();
        let mut stmt = self.conn.prepare_cached("SELECT peer_id FROM scope WHERE doc_id = ?1 AND reason != 'purge'")?;
        for doc in docs.iter().map(ToString::to_string).chain(["*".to_string()]) {
            for peer in stmt.query_map([doc], |r| r.get::<_, String>(0))? {
                peers.insert(peer?);
            }
        }
        Ok(peers)
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let conn = Connection::open_with_flags(
            path.as_ref(),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_error)?;
        let key = options.encryption_key.clone();
        let mut store = Self::from_connection(conn, options)?;
        store._checkpointer = Some(checkpoint::Checkpointer::start(
            path.as_ref().to_path_buf(),
            key,
            std::time::Duration::from_millis(250),
        )?);
        Ok(store)
    }

    /// The clock this store reads the time from (see [`StoreOptions::clock`]).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// A receiver that wakes when the store commits (see [`StoreEvents`]).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<StoreEvents> {
        self.lock().events.subscribe()
    }

    /// A store in memory (tests, tools); nothing is durable.
    pub fn open_in_memory(options: StoreOptions) -> Result<Store> {
        Self::from_connection(Connection::open_in_memory()?, options)
    }

    fn from_connection(mut conn: Connection, options: StoreOptions) -> Result<Store> {
        if let Some(key) = &options.encryption_key {
            apply_key(&conn, key)?;
        }
        // The first read fails here, not later, when the key is wrong or the file is not a database.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)).map_err(open_error)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)).map_err(open_error)?;
        let sync = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
            Durability::Off => "OFF",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::WRITER_AUTOCHECKPOINT_PAGES)?;
        // A negative cache_size is in KiB.
        let cache_kib = i64::try_from(options.page_cache_bytes / 1024).unwrap_or(i64::MAX).max(64);
        conn.pragma_update(None, "cache_size", -cache_kib)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut conn).map_err(|e| match e {
            Error::Storage(inner) => open_error(inner),
            other => other,
        })?;
        let mut rng = match options.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let log_id: [u8; 16] = rng.r#gen();
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?1)",
            [log_id.iter().map(|b| format!("{b:02x}")).collect::<String>()],
        )?;
        let now = options.clock.now_ms();
        number_past_restores(&conn, now)?;
        let key = match &options.device_key {
            Some(k) => k.clone(),
            None => stored_device_key(&conn)?,
        };
        let capacity = NonZeroUsize::new(options.cache_capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Store {
            _checkpointer: None,
            contention: contention::Counters::default(),
            clock: options.clock.clone(),
            inner: Mutex::new(Inner {
                conn,
                cache: LruCache::new(capacity),
                key,
                actor: ActorId::from(rng.r#gen::<[u8; 16]>().as_slice()),
                rng,
                last_id: None,
                options,
                events: tokio::sync::watch::Sender::new(StoreEvents::default()),
                grant_mark: std::cell::Cell::new(0),
            }),
        })
    }

    /// The device's public key (hex): the author of every change this store makes.
    pub fn device_public_key(&self) -> String {
        crate::identity::hex(&self.lock().key.public_key())
    }

    /// The device key this store authors and signs with: what its TLS client certificate
    /// carries when it syncs with a relay.
    pub fn device_key(&self) -> DeviceKey {
        self.lock().key.clone()
    }

    /// The automerge actor of this open (hex).
    pub fn actor(&self) -> String {
        self.lock().actor.to_hex_string()
    }

    /// How many documents are loaded in memory now (at most `cache_capacity`).
    pub fn loaded_documents(&self) -> usize {
        self.lock().cache.len()
    }

    /// Size of the database in bytes (pages in use times the page size; the WAL not counted).
    pub fn database_bytes(&self) -> Result<u64> {
        let inner = self.lock();
        let pages: i64 = inner.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = inner.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages.max(0) as u64).saturating_mul(page_size.max(0) as u64))
    }

    /// Runs SQLite's integrity check; `Ok(())` or an error naming the first problem.
    pub fn check_integrity(&self) -> Result<()> {
        let inner = self.lock();
        let result: String = inner.conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(Error::CorruptDocument { doc_id: "(database)".into(), reason: result })
        }
    }

    /// How long callers have waited for the store's connection and held it, since it opened.
    pub fn contention(&self) -> StoreContention {
        self.contention.snapshot()
    }

    pub(crate) fn lock(&self) -> contention::Locked<'_> {
        let asked = std::time::Instant::now();
        // A panic while holding the lock leaves SQLite consistent (transactions roll back), and
        // the cache only holds what was committed or is evicted on error: keep going.
        let guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.contention.taken(guard, asked)
    }
}

#[cfg(feature = "encryption")]
pub(crate) fn apply_key(conn: &Connection, key: &[u8]) -> Result<()> {
    if key.len() != 32 {
        return Err(Error::invalid("encryption_key", format!("must be 32 bytes, got {}", key.len())));
    }
    // A raw key (x'..') skips SQLCipher's passphrase derivation: the platform keystore already
    // holds 256 random bits.
    conn.pragma_update(None, "key", format!("x'{}'", crate::identity::hex(key)))?;
    Ok(())
}

#[cfg(not(feature = "encryption"))]
pub(crate) fn apply_key(_conn: &Connection, _key: &[u8]) -> Result<()> {
    Err(Error::EncryptionUnavailable)
}

/// On a parent (a store with devices or scope rows), moves the numbering of its log and of its
/// grants past `now` in microseconds, at every open. Its children hold cursors into both: a
/// database restored from an older backup would otherwise number its next changes and grants
/// with numbers it had already used after the backup, which children that read past them would
/// skip. Past the clock, a number is never used twice (unless more than a thousand were taken
/// per millisecond since the last open). Numbers stay below 2^53 (JSON-safe) until 2255.
fn number_past_restores(conn: &Connection, now: crate::time::Millis) -> Result<()> {
    let parent: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM scope)", [], |r| r.get(0))?;
    if !parent {
        return Ok(());
    }
    let floor = now.saturating_mul(1000);
    let grants: i64 = conn
        .prepare_cached("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'scope'), 0)")?
        .query_row([], |r| r.get(0))?;
    if grants < floor {
        conn.prepare_cached("INSERT INTO grant_gaps (after, upto) VALUES (?1, ?2)")?
            .execute(rusqlite::params![grants, floor])?;
    }
    for table in ["changes", "scope"] {
        let updated = conn
            .prepare_cached("UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1")?
            .execute(rusqlite::params![table, floor])?;
        if updated == 0 {
            conn.prepare_cached("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)")?
                .execute(rusqlite::params![table, floor])?;
        }
    }
    Ok(())
}

fn open_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => Error::WrongKeyOrNotADatabase,
        _ => Error::Storage(e),
    }
}

fn stored_device_key(conn: &Connection) -> Result<DeviceKey> {
    let stored: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'device_secret'", [], |r| r.get(0))
        .map(Some)
        .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })?;
    match stored {
        Some(bytes) => {
            let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::CorruptDocument {
                doc_id: "(meta)".into(),
                reason: "device key is not 32 bytes".into(),
            })?;
            Ok(DeviceKey::from_secret(secret))
        }
        None => {
            let key = DeviceKey::generate();
            conn.execute("INSERT INTO meta (key, value) VALUES ('device_secret', ?1)", [key.secret_bytes().to_vec()])?;
            Ok(key)
        }
    }
}
