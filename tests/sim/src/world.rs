//! The simulated consortium and its scheduler.

use crate::oracle::{self, Edit, Tally};
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;
use typed_arena::Arena;

mod faults;
use yilian_core::identity::DeviceKey;
use yilian_core::model::{
    Demographics, Direction, NewContract, NewPatient, NewReferral, NewReferralEvent, NewVisit, Sex, TaskStatus,
    Urgency, VisitKind, Vitals,
};
use yilian_core::store::Durability;
use yilian_core::sync::{ChildDriver, Message, ParentDriver, ParentStep, PerfectLink, sync_in_process};
use yilian_core::time::{Clock, ManualClock, Millis};
use yilian_core::{
    ApplyReport, ChildPush, DeviceKind, IncomingChange, OrganizationKind, PatientId, Store, StoreOptions,
};
use yilian_testing::Consortium;

/// The relay's peer id.
pub const RELAY: &str = "relay";
/// The county hospital, which receives upward referrals.
pub const COUNTY: &str = "county";
/// The county's referral desk practitioner.
pub const DESK: &str = "desk-zhao";
/// A second path to the relay (an edge hub forwarding for every phone): changes reach the relay
/// through it out of order.
pub const HUB: &str = "hub";

/// How big a run is and which faults it may inject.
#[derive(Clone, Debug)]
pub struct Config {
    /// Village teams (each its own clinic).
    pub teams: usize,
    /// Phones per team (one practitioner each).
    pub phones_per_team: usize,
    /// Scheduler steps before the final sync.
    pub steps: usize,
    /// Inject faults (crashes, cuts, restores, lost messages...).
    pub faults: bool,
    /// Also restore the relay's database from older backups. Off by default: 978 of 1,000 seeds
    /// pass, and the rest lose a change the restore took whose only copies left are other
    /// phones' received ones (a phone pushes only what it authored): open work, see
    /// `docs/PROTOCOL.md`.
    pub relay_restores: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { teams: 2, phones_per_team: 2, steps: 300, faults: true, relay_restores: false }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Each store (the relay, then the phones) and the digest of everything in its database at
    /// the end: the same seed gives the same digests, byte for byte.
    pub fingerprints: Vec<(String, String)>,
    /// Counts of what happened and what the oracle checked.
    pub tally: Tally,
    /// What the oracle found wrong (empty: the run passed).
    pub failures: Vec<String>,
    /// Every step, readable, in order.
    pub trace: Vec<String>,
    /// The run restored the relay from backups (its replay must too).
    pub relay_restores: bool,
}

impl Outcome {
    /// The failures, the command that replays the run, and the trace's last steps.
    pub fn report(&self) -> String {
        let mut out = format!(
            "seed {}: {} failure(s)\nreplay: cargo run --release -p yilian-sim --bin simulation -- --seed {}{} --trace\n",
            self.seed,
            self.failures.len(),
            self.seed,
            if self.relay_restores { " --relay-restores" } else { "" }
        );
        for f in &self.failures {
            out.push_str(&format!("  {f}\n"));
        }
        let from = self.trace.len().saturating_sub(60);
        out.push_str(&format!("last {} of {} steps:\n", self.trace.len() - from, self.trace.len()));
        for line in &self.trace[from..] {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }
}

/// One phone (or the desk's) and what became of it.
pub(crate) struct Phone<'a> {
    pub(crate) id: String,
    pub(crate) practitioner: String,
    pub(crate) organization: String,
    /// The team it signs residents to (`None`: the desk).
    pub(crate) team: Option<String>,
    pub(crate) store: &'a Store,
    /// Its clock: the consortium's time plus `skew`.
    clock: ManualClock,
    /// How far its clock is off (a phone set by hand, a dead clock battery).
    skew: Millis,
    /// Its device key (kept in its store; given again on every open, so a replay signs alike).
    key: DeviceKey,
    path: PathBuf,
    /// Copies of its store file taken earlier (a restore takes one of these).
    backups: Vec<PathBuf>,
    pub(crate) revoked: bool,
    opens: usize,
}

/// One sync session between a phone and the relay, as messages in flight on its three streams.
struct Session<'a> {
    id: u64,
    phone: usize,
    child: ChildDriver<'a>,
    parent: ParentDriver<'a>,
    /// Child → parent (hello, pushes).
    up: VecDeque<Message>,
    /// Parent → child on the control stream (welcome, acks, refusals, errors).
    control: VecDeque<Message>,
    /// Parent → child on the bulk stream (pulls, pages, grants, purges, caught).
    bulk: VecDeque<Message>,
    /// Bulk messages that overtook the welcome.
    held: Vec<Message>,
    /// The parent handed a push to the group commit and waits for it.
    storing: bool,
    /// Pull batches the child received while the parent was storing: the parent reads on after.
    owed_pull_sent: usize,
    /// The relay's head and the phone's scope when the parent looked the child up (its welcome).
    welcome: Option<(i64, BTreeSet<PatientId>)>,
    synced_checked: bool,
}

/// The consortium under simulation.
pub(crate) struct World<'a> {
    arena: &'a Arena<Store>,
    dir: PathBuf,
    pub(crate) relay: &'a Store,
    relay_path: PathBuf,
    /// The relay's clock: the consortium's time.
    relay_clock: ManualClock,
    relay_key: DeviceKey,
    /// The consortium's time (UTC ms): it moves [`STEP_MS`] every scheduler step.
    now: Millis,
    pub(crate) phones: Vec<Phone<'a>>,
    sessions: Vec<Session<'a>>,
    /// Pushes handed to the relay's group commit: (session id, push).
    ingest: Vec<(u64, ChildPush)>,
    rng: StdRng,
    next_session: u64,
    pub(crate) edits: Vec<Edit>,
    pub(crate) tally: Tally,
    pub(crate) failures: Vec<String>,
    trace: Vec<String>,
    step: usize,
    trace_on: bool,
    /// Copies of the relay's database taken earlier, each with how many directory operations had
    /// been made when it was taken.
    relay_backups: Vec<(PathBuf, usize)>,
    relay_opens: usize,
    /// What the operators did to the directory during the run, in order: a relay restored from a
    /// backup has them done again (as its operators would, from their records).
    directory: Vec<DirectoryOp>,
}

/// An operator's change to the directory.
#[derive(Clone, Debug)]
enum DirectoryOp {
    Revoke(String),
    Member { team: String, practitioner: String, member: bool },
}

/// How far the consortium's time moves per scheduler step: 300 steps are two days, so contracts
/// signed for a day run out during a run and a phone's clock can be a day off.
pub const STEP_MS: Millis = 10 * 60 * 1000;

/// When a run starts: Monday 2 March 2026, 08:00 consortium time (UTC+8).
fn start_ms() -> Millis {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default();
    yilian_core::time::start_of(day) + 8 * 3600 * 1000
}

/// How a store of the simulation opens: on its own clock, with its key, its randomness drawn from
/// the run's seed (a fresh seed per open: an actor is never reused).
fn options(clock: &ManualClock, key: &DeviceKey, seed: u64) -> StoreOptions {
    // A crash here is a process crash: what SQLite committed to the WAL survives it without fsync.
    StoreOptions {
        durability: Durability::Off,
        clock: Clock::Manual(clock.clone()),
        seed: Some(seed),
        device_key: Some(key.clone()),
        ..StoreOptions::default()
    }
}

fn drawn_key(rng: &mut StdRng) -> DeviceKey {
    DeviceKey::from_secret(rng.r#gen())
}

/// Runs the simulation for `seed`.
pub fn run(seed: u64, config: &Config) -> Result<Outcome> {
    run_traced(seed, config, false)
}

/// [`run`], printing each step as it happens when `live_trace` (a replay).
pub fn run_traced(seed: u64, config: &Config, live_trace: bool) -> Result<Outcome> {
    let base = if Path::new("/dev/shm").is_dir() { tempfile::tempdir_in("/dev/shm") } else { tempfile::tempdir() };
    let dir = base.context("a temporary directory")?;
    let arena = Arena::new();
    let mut world = World::new(&arena, dir.path(), seed, config, live_trace)?;
    // An error a store returns outside a session (an edit, a sweep, the final syncs, the oracle's
    // reads) fails the run with its trace, like any other finding.
    let mut play = || -> Result<()> {
        for _ in 0..config.steps {
            world.step(config)?;
        }
        world.heal()?;
        oracle::check(&mut world)
    };
    if let Err(e) = play() {
        let line = format!("ERROR at step {}: {e:#}", world.step);
        world.trace(line.clone());
        world.failures.push(line);
    }
    let mut stores = vec![("relay".to_string(), world.relay_path.clone())];
    stores.extend(world.phones.iter().map(|p| (p.id.clone(), p.path.clone())));
    let fingerprints =
        stores.into_iter().map(|(name, path)| Ok((name, oracle::fingerprint(&path)?))).collect::<Result<Vec<_>>>()?;
    Ok(Outcome {
        fingerprints,
        seed,
        tally: world.tally,
        failures: world.failures,
        trace: world.trace,
        relay_restores: config.relay_restores,
    })
}

impl<'a> World<'a> {
    fn new(arena: &'a Arena<Store>, dir: &Path, seed: u64, config: &Config, live_trace: bool) -> Result<World<'a>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = start_ms();
        let relay_clock = ManualClock::new(now);
        let relay_key = drawn_key(&mut rng);
        let relay_path = dir.join("relay.db");
        let relay: &Store = arena.alloc(Store::open(&relay_path, options(&relay_clock, &relay_key, rng.r#gen()))?);
        relay.set_referral_grace(Duration::ZERO)?;
        let mut directory = Consortium::new()
            .organization(COUNTY, COUNTY, OrganizationKind::CountyHospital, None)
            .referral_desk(DESK, DESK, COUNTY);
        for t in 0..config.teams {
            let village = format!("village-{t}");
            let members: Vec<String> = (0..config.phones_per_team).map(|k| format!("dr-{t}-{k}")).collect();
            directory = directory.organization(&village, &village, OrganizationKind::VillageClinic, Some(COUNTY));
            for m in &members {
                directory = directory.family_doctor(m, m, &village);
            }
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            directory = directory.team(&format!("team-{t}"), &format!("team {t}"), &village, &members);
        }
        directory.enter(relay)?;
        relay.grant_scope(HUB, yilian_core::ScopeGrant::Everything)?;
        let mut world = World {
            arena,
            dir: dir.to_path_buf(),
            relay,
            relay_path,
            relay_clock,
            relay_key,
            now,
            phones: Vec::new(),
            sessions: Vec::new(),
            ingest: Vec::new(),
            rng,
            next_session: 1,
            edits: Vec::new(),
            tally: Tally::default(),
            failures: Vec::new(),
            trace: Vec::new(),
            step: 0,
            trace_on: live_trace,
            relay_backups: Vec::new(),
            relay_opens: 0,
            directory: Vec::new(),
        };
        for t in 0..config.teams {
            let village = format!("village-{t}");
            for k in 0..config.phones_per_team {
                let m = format!("dr-{t}-{k}");
                world.enroll(&format!("phone-{}", &m[3..]), &m, &village, Some(format!("team-{t}")))?;
            }
        }
        world.enroll("desk-phone", DESK, COUNTY, None)?;
        Ok(world)
    }

    fn enroll(&mut self, id: &str, practitioner: &str, organization: &str, team: Option<String>) -> Result<()> {
        let path = self.dir.join(format!("{id}-0.db"));
        let clock = ManualClock::new(self.now);
        let key = drawn_key(&mut self.rng);
        let store: &Store = self.arena.alloc(Store::open(&path, options(&clock, &key, self.rng.r#gen()))?);
        let code = self.relay.issue_enrollment_code(
            practitioner,
            None,
            DeviceKind::Phone,
            Duration::from_secs(3600),
            "admin",
        )?;
        self.relay.enroll_device(&code.code, id, store.device_key().public_key(), self.now)?;
        self.phones.push(Phone {
            id: id.into(),
            practitioner: practitioner.into(),
            organization: organization.into(),
            team,
            store,
            clock,
            skew: 0,
            key,
            path,
            backups: Vec::new(),
            revoked: false,
            opens: 0,
        });
        Ok(())
    }

    fn trace(&mut self, line: String) {
        let line = format!("{:>4} {line}", self.step);
        if self.trace_on {
            println!("{line}");
        }
        self.trace.push(line);
    }

    fn pick(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// One scheduler step: mostly deliveries, some edits and session starts, and faults.
    fn step(&mut self, config: &Config) -> Result<()> {
        self.step += 1;
        self.now += STEP_MS;
        self.set_clocks();
        let roll: f64 = self.rng.r#gen();
        let faults = config.faults;
        if roll < 0.16 {
            self.edit()
        } else if roll < 0.26 {
            self.start_session()
        } else if roll < 0.30 {
            self.commit_group()
        } else if roll < 0.33 {
            self.wake_sessions()
        } else if faults && roll < 0.345 {
            self.cut_session();
            Ok(())
        } else if faults && roll < 0.352 {
            self.crash_phone()
        } else if faults && roll < 0.356 {
            self.crash_relay()
        } else if faults && roll < 0.366 {
            self.backup_phone()
        } else if faults && roll < 0.371 {
            self.restore_phone()
        } else if faults && roll < 0.378 {
            self.early_delivery()
        } else if faults && roll < 0.383 {
            self.sweep()
        } else if faults && roll < 0.3845 {
            self.revoke()
        } else if faults && config.relay_restores && roll < 0.3875 {
            self.backup_relay()
        } else if faults && config.relay_restores && roll < 0.389 {
            self.restore_relay()
        } else if faults && roll < 0.392 {
            self.move_member()
        } else if faults && roll < 0.395 {
            self.skew_clock();
            Ok(())
        } else {
            self.deliver(faults)
        }
    }

    // ---- edits ----

    fn edit(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        if self.phones[i].revoked {
            return Ok(());
        }
        let store = self.phones[i].store;
        let held = store.patient_ids()?;
        let before = store.last_local_seq()?;
        let what = self.pick(10);
        let (doc, label, result) = if self.phones[i].team.is_none() {
            // The desk acts on referrals addressed to the county.
            let Some(doc) = self.any(&held) else { return Ok(()) };
            // A record whose registration has not arrived yet cannot be read (the app says so).
            let record = match store.patient(doc) {
                Ok(record) => record,
                Err(e) => {
                    self.trace(format!("desk-phone could not read {}: {e}", short(doc)));
                    return Ok(());
                }
            };
            let Some(referral) = record.referrals.last() else { return Ok(()) };
            let status = match referral.status.status {
                TaskStatus::Requested => TaskStatus::Accepted,
                TaskStatus::Accepted => TaskStatus::InProgress,
                _ => TaskStatus::Completed,
            };
            let event = NewReferralEvent {
                status,
                by_practitioner_id: DESK.into(),
                by_organization_id: COUNTY.into(),
                note: "desk".into(),
                discharge_summary: (status == TaskStatus::Completed).then(|| "stable".to_string()),
            };
            let r = store.add_referral_event(referral.referral.id, event).map(|_| ());
            (doc, format!("marks the referral of {} {status}", short(doc)), r)
        } else if what < 2 || held.is_empty() {
            let new = self.resident(i);
            match store.create_patient(new) {
                Ok(doc) => {
                    let contract = self.contract(i, None);
                    let r = store.sign_contract(doc, contract).map(|_| ());
                    (doc, format!("registers {} and signs it to its team", short(doc)), r)
                }
                Err(e) => {
                    self.trace(format!("{} registration refused: {e}", self.phones[i].id));
                    return Ok(());
                }
            }
        } else {
            let Some(doc) = self.any(&held) else { return Ok(()) };
            if what < 7 {
                let visit = self.visit(i);
                (doc, format!("records a visit on {}", short(doc)), store.record_visit(doc, visit).map(|_| ()))
            } else if what < 9 {
                let referral = NewReferral {
                    direction: Direction::Upward,
                    from_organization_id: self.phones[i].organization.clone(),
                    from_practitioner_id: self.phones[i].practitioner.clone(),
                    to_organization_id: COUNTY.into(),
                    reason: "uncontrolled".into(),
                    urgency: Urgency::Urgent,
                    clinical_summary: "two readings over 160".into(),
                    in_response_to: None,
                };
                (
                    doc,
                    format!("refers {} up to the county", short(doc)),
                    store.create_referral(doc, referral).map(|_| ()),
                )
            } else {
                // The resident signs with another team: the record leaves this team's scope.
                let teams = self.phones.iter().filter_map(|p| p.team.clone()).collect::<BTreeSet<_>>();
                let other = teams.into_iter().find(|t| Some(t) != self.phones[i].team.as_ref());
                let contract = self.contract(i, other);
                let team = contract.team_id.clone();
                (
                    doc,
                    format!("moves {}'s contract to {team}", short(doc)),
                    store.sign_contract(doc, contract).map(|_| ()),
                )
            }
        };
        match result {
            Ok(()) => {
                let hashes: Vec<[u8; 32]> =
                    store.local_changes_since(before, usize::MAX)?.into_iter().map(|c| c.hash).collect();
                self.tally.edits += 1;
                self.edits.push(Edit { phone: i, doc, hashes, step: self.step, lost_with_storage: false });
                self.trace(format!("{} {label}", self.phones[i].id));
                // A phone with a session open pushes its edit at once (live mode).
                for s in 0..self.sessions.len() {
                    if self.sessions[s].phone == i && self.sessions[s].child.session().is_welcomed() {
                        let out = self.sessions[s].child.local_changed()?;
                        self.sessions[s].up.extend(out);
                    }
                }
            }
            Err(e) => self.trace(format!("{} could not: {label}: {e}", self.phones[i].id)),
        }
        Ok(())
    }

    fn any(&mut self, held: &[PatientId]) -> Option<PatientId> {
        if held.is_empty() {
            return None;
        }
        let k = self.pick(held.len());
        held.get(k).copied()
    }

    fn resident(&mut self, i: usize) -> NewPatient {
        let n = self.rng.gen_range(0..10_000);
        // The record's id from the seed, so a replay names the same records.
        let random: [u8; 10] = self.rng.r#gen();
        let id = uuid::Builder::from_unix_timestamp_millis(1_780_000_000_000 + self.step as u64, &random).into_uuid();
        NewPatient {
            id: Some(PatientId(id)),
            demographics: Demographics {
                name: format!("居民{n}"),
                sex: if n % 2 == 0 { Sex::Female } else { Sex::Male },
                birth_date: chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default(),
                national_id: None,
                phone: None,
                address: None,
                village: None,
            },
            practitioner_id: self.phones[i].practitioner.clone(),
            organization_id: self.phones[i].organization.clone(),
        }
    }

    fn contract(&mut self, i: usize, team: Option<String>) -> NewContract {
        // By the phone's own calendar; one in five runs out today or tomorrow.
        let today = yilian_core::time::date_of(self.phones[i].clock.now_ms());
        let days = match self.pick(10) {
            0 => 0,
            1 => 1,
            _ => 365,
        };
        if days < 365 {
            self.tally.short_contracts += 1;
        }
        let team = team.or_else(|| self.phones[i].team.clone()).unwrap_or_default();
        let t = team.trim_start_matches("team-");
        NewContract {
            team_id: team.clone(),
            practitioner_id: format!("dr-{t}-0"),
            organization_id: format!("village-{t}"),
            start: today,
            end: today + chrono::Days::new(days),
        }
    }

    fn visit(&mut self, i: usize) -> NewVisit {
        NewVisit {
            at: self.phones[i].clock.now_ms() - 60_000,
            organization_id: self.phones[i].organization.clone(),
            practitioner_id: self.phones[i].practitioner.clone(),
            kind: VisitKind::FollowUp,
            vitals: Vitals {
                systolic_mmhg: Some(self.rng.gen_range(110..190)),
                diastolic_mmhg: Some(self.rng.gen_range(70..120)),
                ..Vitals::default()
            },
            symptoms: vec![],
            diagnoses: vec!["I10".into()],
            medicines: vec![],
            lifestyle: Default::default(),
            notes: String::new(),
        }
    }

    // ---- sessions ----

    fn start_session(&mut self) -> Result<()> {
        let i = self.pick(self.phones.len());
        if self.phones[i].revoked || self.sessions.iter().any(|s| s.phone == i) {
            return Ok(());
        }
        let id = self.next_session;
        self.next_session += 1;
        let phone = &self.phones[i];
        let (child, hello) = ChildDriver::start_session(phone.store, &phone.id, RELAY, id)?;
        let parent = ParentDriver::new(self.relay, RELAY);
        self.sessions.push(Session {
            id,
            phone: i,
            child,
            parent,
            up: hello.into(),
            control: VecDeque::new(),
            bulk: VecDeque::new(),
            held: Vec::new(),
            storing: false,
            owed_pull_sent: 0,
            welcome: None,
            synced_checked: false,
        });
        self.tally.sessions += 1;
        self.trace(format!("{} opens session {id}", self.phones[i].id));
        Ok(())
    }

    fn end_session(&mut self, s: usize, why: &str) {
        let session = self.sessions.remove(s);
        self.ingest.retain(|(id, _)| *id != session.id);
        let line = format!("{} session {} ends: {why}", self.phones[session.phone].id, session.id);
        self.trace(line);
    }

    fn route(session: &mut Session<'_>, out: Vec<Message>) {
        for m in out {
            if m.is_bulk() {
                session.bulk.push_back(m);
            } else {
                session.control.push_back(m);
            }
        }
    }

    /// Delivers the next message of one stream of one session (sometimes losing, duplicating or
    /// reordering it).
    fn deliver(&mut self, faults: bool) -> Result<()> {
        if self.sessions.is_empty() {
            return Ok(());
        }
        let s = self.pick(self.sessions.len());
        let stream = self.pick(3);
        let lose = faults && self.chance(0.004);
        let duplicate = faults && self.chance(0.01);
        let reorder = faults && self.chance(0.004);
        let session = &mut self.sessions[s];
        let queue = match stream {
            // The parent reads no more from the child while a push waits for the store.
            0 if session.storing => return Ok(()),
            0 => &mut session.up,
            1 => &mut session.control,
            _ => &mut session.bulk,
        };
        if reorder && queue.len() >= 2 {
            queue.swap(0, 1);
        }
        let Some(message) = queue.pop_front() else { return Ok(()) };
        if duplicate {
            queue.push_front(message.clone());
        }
        let (sid, phone) = (session.id, session.phone);
        let name = yilian_core::sync::message_name(&message);
        if lose {
            self.trace(format!("session {sid}: a {name} is lost"));
            return Ok(());
        }
        let fault = if duplicate {
            " (twice)"
        } else if reorder {
            " (reordered)"
        } else {
            ""
        };
        let direction = if stream == 0 { "up" } else { "down" };
        self.trace(format!("session {sid} {direction}: {}{fault}", describe(&message)));
        let result = if stream == 0 { self.deliver_to_parent(s, message) } else { self.deliver_to_child(s, message) };
        if let Err(e) = result {
            // A store error ends the session, as it ends a connection; nothing half-done stays.
            self.tally.session_errors += 1;
            self.end_session(s, &format!("error: {e}"));
            return Ok(());
        }
        let session = &self.sessions[s];
        if let Some(why) = session.child.outcome.error.clone().or_else(|| session.parent.outcome.error.clone()) {
            if session.child.outcome.restart {
                self.tally.restored_found += 1;
            } else {
                self.tally.failed_sessions += 1;
            }
            self.end_session(s, &why);
            return Ok(());
        }
        self.check_synced(s, phone)?;
        Ok(())
    }

    fn deliver_to_parent(&mut self, s: usize, message: Message) -> Result<()> {
        let is_hello = matches!(message, Message::Hello { .. });
        let relay = self.relay;
        let session = &mut self.sessions[s];
        let step = session.parent.begin(message)?;
        if is_hello && session.parent.session().is_welcomed() {
            let phone = &self.phones[session.phone].id;
            session.welcome = Some((relay.last_seq()?, oracle::scope_of(relay, phone)?));
        }
        self.parent_step(s, step);
        Ok(())
    }

    fn parent_step(&mut self, s: usize, step: ParentStep) {
        let session = &mut self.sessions[s];
        match step {
            ParentStep::Send(out) => Self::route(session, out),
            ParentStep::Store(push) => {
                session.storing = true;
                self.ingest.push((session.id, push));
            }
        }
    }

    fn deliver_to_child(&mut self, s: usize, message: Message) -> Result<()> {
        let session = &mut self.sessions[s];
        if message.is_bulk() && !session.child.session().is_welcomed() {
            session.held.push(message);
            return Ok(());
        }
        let pull_batch = message.is_pull_batch();
        let was_welcomed = session.child.session().is_welcomed();
        let out = session.child.on_message(message)?;
        session.up.extend(out);
        if !was_welcomed && session.child.session().is_welcomed() {
            for held in std::mem::take(&mut session.held) {
                let out = session.child.on_message(held)?;
                session.up.extend(out);
            }
        }
        if pull_batch {
            session.owed_pull_sent += 1;
        }
        Self::read_on(session)
    }

    /// The parent reads on after the pull batches the child received, unless it waits for a
    /// push to be stored (then after it).
    fn read_on(session: &mut Session<'_>) -> Result<()> {
        if !session.storing {
            for _ in 0..std::mem::take(&mut session.owed_pull_sent) {
                let out = session.parent.pull_sent()?;
                Self::route(session, out);
            }
        }
        Ok(())
    }

    /// The relay stores the pushes waiting for it in one transaction, and acknowledges them.
    fn commit_group(&mut self) -> Result<()> {
        if self.ingest.is_empty() {
            return Ok(());
        }
        let (ids, pushes): (Vec<u64>, Vec<ChildPush>) = std::mem::take(&mut self.ingest).into_iter().unzip();
        self.trace(format!("relay stores {} push(es) together", pushes.len()));
        let reports: Vec<yilian_core::Result<ApplyReport>> = self.relay.ingest_group(pushes);
        for (id, report) in ids.into_iter().zip(reports) {
            let Some(s) = self.sessions.iter().position(|x| x.id == id) else { continue };
            if let Ok(r) = &report {
                self.tally.refused += r.rejected.len();
                for rejected in &r.rejected {
                    self.trace(format!("session {id}: the relay refused a change: {}", rejected.reason));
                }
            }
            self.sessions[s].storing = false;
            match self.sessions[s].parent.stored(report) {
                Ok(step) => self.parent_step(s, step),
                Err(e) => {
                    self.tally.session_errors += 1;
                    self.end_session(s, &format!("error storing: {e}"));
                    continue;
                }
            }
            Self::read_on(&mut self.sessions[s])?;
        }
        Ok(())
    }

    /// Live sessions learn that the relay's log grew (or the scope changed) and stream it.
    fn wake_sessions(&mut self) -> Result<()> {
        for s in 0..self.sessions.len() {
            let session = &mut self.sessions[s];
            if session.storing || !session.parent.session().is_welcomed() {
                continue;
            }
            let out = session.parent.log_grew(true)?;
            Self::route(session, out);
        }
        Ok(())
    }

    /// Checks a session at the moment it reports synced: the phone holds every change the relay
    /// held for it when it welcomed the phone.
    fn check_synced(&mut self, s: usize, phone: usize) -> Result<()> {
        let session = &self.sessions[s];
        if session.synced_checked || !session.child.outcome.synced {
            return Ok(());
        }
        let Some((head, scope_then)) = session.welcome.clone() else { return Ok(()) };
        self.sessions[s].synced_checked = true;
        self.tally.synced_checks += 1;
        let id = self.phones[phone].id.clone();
        let now = oracle::scope_of(self.relay, &id)?;
        // A record purged during the session left the scope in between (if it is back, its new
        // grant came after the welcome: not part of what the session had to bring).
        let purged: BTreeSet<PatientId> = self.sessions[s].child.outcome.purged.iter().copied().collect();
        let docs: BTreeSet<PatientId> =
            scope_then.intersection(&now).filter(|d| !purged.contains(d)).copied().collect();
        let missing = oracle::missing_at(self.relay, self.phones[phone].store, &docs, head)?;
        if !missing.is_empty() {
            let line = format!(
                "session {} of {id} reported synced while the relay held {} change(s) it lacked (first: {})",
                self.sessions[s].id,
                missing.len(),
                missing[0]
            );
            self.failures.push(line.clone());
            self.trace(format!("FAILURE {line}"));
        }
        // A synced session stays live for a while or closes.
        if self.chance(0.5) {
            self.end_session(s, "synced, closed");
        }
        Ok(())
    }

    // ---- the end ----

    /// No more faults: every phone still enrolled syncs until a round moves nothing.
    fn heal(&mut self) -> Result<()> {
        self.drop_sessions_of(None);
        self.commit_group()?;
        self.relay.sweep_scope(self.now)?;
        for round in 0..20 {
            let mut quiet = true;
            for i in 0..self.phones.len() {
                if self.phones[i].revoked {
                    continue;
                }
                let phone = &self.phones[i];
                let stats = sync_in_process(phone.store, &phone.id, self.relay, RELAY, &mut PerfectLink)?;
                let moved = stats.child.sent + stats.child.received + stats.child.snapshots + stats.child.purged.len();
                if moved > 0 {
                    let purged: Vec<String> = stats.child.purged.iter().map(|d| short(*d)).collect();
                    self.trace(format!(
                        "final sync {round} of {}: sent {}, received {}, snapshots {}, purged [{}]",
                        self.phones[i].id,
                        stats.child.sent,
                        stats.child.received,
                        stats.child.snapshots,
                        purged.join(" ")
                    ));
                }
                if moved > 0 || !stats.child.synced {
                    quiet = false;
                }
                for why in &stats.child.refused {
                    self.trace(format!("final sync of {}: the relay refused {why}", self.phones[i].id));
                }
                if let Some(e) = stats.child.error.or(stats.parent.error) {
                    self.trace(format!("final sync of {}: {e}", self.phones[i].id));
                }
            }
            if quiet {
                self.trace(format!("quiescent after {round} final round(s)"));
                self.tally.final_rounds = round;
                return Ok(());
            }
        }
        self.failures.push("no quiescence after 20 rounds of final syncs".into());
        Ok(())
    }
}

/// The last 8 hex digits of a record's id (the first ones are its creation time).
pub(crate) fn short(doc: PatientId) -> String {
    doc.0.simple().to_string()[24..].to_string()
}

fn describe(message: &Message) -> String {
    match message {
        Message::Hello { read_seq, local_head, restored, .. } => {
            format!("hello (read {read_seq}, head {local_head}{})", if *restored { ", restored" } else { "" })
        }
        Message::Welcome { acked_seq, head, acked_mark, .. } => {
            format!("welcome (acked {acked_seq}{}, head {head})", if acked_mark.is_some() { " with mark" } else { "" })
        }
        Message::Push { from_seq, to_seq, items } => format!("push ({from_seq}, {to_seq}] {} item(s)", items.len()),
        Message::Pull { from_seq, to_seq, items } => format!("pull ({from_seq}, {to_seq}] {} item(s)", items.len()),
        Message::Ack { up_to } => format!("ack {up_to}"),
        Message::Caught { up_to } => format!("caught {up_to}"),
        Message::Documents(page) => format!("documents page ({} docs, done {})", page.docs.len(), page.done),
        Message::Snapshot { grant: g, .. } => format!("snapshot grant {} ({} waiting)", g.grant, g.waiting.len()),
        Message::Purge { grant, .. } => format!("purge grant {grant}"),
        other => yilian_core::sync::message_name(other).to_string(),
    }
}
