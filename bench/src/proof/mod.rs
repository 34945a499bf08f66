//! The proof under bad links: Yilian and automerge-repo 2.5 run the same scenarios on the same
//! data, each over its own emulated link of the same profile, in one run.
//!
//! A *lane* is one engine on one profile: its own [`Link`](crate::link::Link), its own server
//! (a Yilian relay, or automerge-repo's WebSocket sync server in node) and its own device. Lanes
//! run concurrently: slow links are bound by the link, not the CPU. In each lane the device
//! syncs, in order: the first full sync of the doctor's records, an idle sync, an incremental
//! sync after a day's work reached the server, and a sync of a week's work during which the
//! link is cut (for [`CUT`] by default) once half of that week's compressed payload has crossed it.
//!
//! Time, round trips and the bytes on the wire (IP packets entering the link, both ways, lost
//! ones included) are measured the same way for both engines.

pub mod accuracy;
pub mod automerge;
pub mod dataset;
pub mod report;
pub mod run;
pub mod yilian;

use crate::link::{Link, LinkProfile};
use serde::Serialize;
use std::time::Duration;

/// How long the cut scenario's link stays down (default run).
pub const CUT: Duration = Duration::from_secs(20);

/// A scenario of a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// An empty device receives the doctor's records.
    First,
    /// Nothing changed since the last sync.
    Idle,
    /// A day's work (visits and referral events) reached the server.
    Incremental,
    /// A week's work reached the server; the link goes down in the middle of the transfer.
    Cut,
}

impl Scenario {
    /// Every scenario, in the order a lane runs them.
    pub const ALL: [Scenario; 4] = [Scenario::First, Scenario::Idle, Scenario::Incremental, Scenario::Cut];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::First => "first sync",
            Scenario::Idle => "idle sync",
            Scenario::Incremental => "incremental (1 day)",
            Scenario::Cut => "cut mid-sync (1 week)",
        }
    }
}

/// The two engines compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// This project: QUIC relay and device.
    Yilian,
    /// automerge-repo 2.5 over WebSocket (node).
    AutomergeRepo,
}

/// What one scenario of one lane measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Whether the device reached the server's state (false: the cap came first).
    pub complete: bool,
    /// Wall time from the device's first connection attempt to done (or to the cap).
    pub seconds: f64,
    /// Request/answer round trips as the device saw them.
    pub rounds: u64,
    /// IP bytes device → server entering the link (retransmissions and lost packets included).
    pub wire_up: u64,
    /// IP bytes server → device.
    pub wire_down: u64,
    /// Connections after the first one.
    pub reconnects: u64,
    /// Documents finished (automerge-repo) when not complete.
    pub documents_done: Option<u64>,
    /// Documents per second at the cap.
    pub progress_per_second: Option<f64>,
    /// What the link did with the packets (delivered, lost, dropped at the queue or in outages).
    pub link: crate::link::LinkStats,
    /// The cap the scenario ran under, in seconds.
    pub cap_seconds: f64,
    /// How the transfer came back after each time the link went down (`None`: it never did).
    pub recovery: Option<Recovery>,
    /// The device's own report, as it printed it.
    pub detail: serde_json::Value,
}

impl Figures {
    /// Figures of an unfinished scenario with what the link carried and how it came back from
    /// outages, its cap and the device's report; the caller fills in what the device measured.
    pub fn carried(
        link: crate::link::LinkStats,
        recovery: Option<Recovery>,
        cap: Duration,
        detail: serde_json::Value,
    ) -> Figures {
        Figures {
            wire_up: link.up.bytes,
            wire_down: link.down.bytes,
            link,
            cap_seconds: cap.as_secs_f64(),
            recovery,
            detail,
            ..Figures::default()
        }
    }

    /// Bytes on the wire, both ways.
    pub fn wire(&self) -> u64 {
        self.wire_up + self.wire_down
    }
}

/// Counts what a lane's link carries during a scenario, and arms the mid-transfer cut.
pub struct Meter<'a> {
    link: &'a Link,
    start: crate::link::LinkStats,
}

impl<'a> Meter<'a> {
    /// Starts counting; with `cut = Some((bytes, outage))`, the link goes down for `outage` once
    /// `bytes` have crossed it downwards.
    pub fn start(link: &'a Link, cut: Option<(u64, Duration)>) -> Meter<'a> {
        if let Some((bytes, outage)) = cut {
            link.cut_after_down_bytes(bytes, outage);
        }
        Meter { link, start: link.stats() }
    }

    /// Whether the armed cut happened.
    pub fn did_cut(&self) -> bool {
        self.link.armed_cut_fired()
    }

    /// What the link carried since the start.
    pub fn carried(&self) -> crate::link::LinkStats {
        self.link.stats() - self.start
    }
}

/// How a transfer came back after the link's outages, from the link's counters sampled every
/// [`SAMPLE`]: how long after the link came up the server put packets on it again, and how much
/// of the link's downward capacity while it was up the transfer used.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovery {
    /// Outages that ended while the device ran.
    pub outages: usize,
    /// Seconds from the link coming up to the server's first packet entering it: median.
    pub resume_p50_s: f64,
    /// The same, the longest.
    pub resume_max_s: f64,
    /// Those seconds summed: time the link was up and the server sent nothing.
    pub silent_after_outages_s: f64,
    /// Seconds the link was up while the device ran.
    pub up_s: f64,
    /// Seconds it was down.
    pub down_s: f64,
    /// Downward bytes entering the link while it was up, over what its bandwidth carries in that
    /// time (1.0: every up second used).
    pub up_use: f64,
}

/// How often [`measure`] samples the link's counters.
pub const SAMPLE: Duration = Duration::from_millis(50);

/// One sample: seconds since the start, whether the link was down, downward packets and bytes
/// that had entered it.
type Sample = (f64, bool, u64, u64);

impl Recovery {
    /// From samples taken every [`SAMPLE`] over `profile`; `None` when the link never came back
    /// from an outage during them.
    fn of(samples: &[Sample], profile: &LinkProfile) -> Option<Recovery> {
        let step = SAMPLE.as_secs_f64();
        let (mut up_s, mut down_s, mut up_bytes, mut resumes) = (0.0, 0.0, 0u64, Vec::new());
        for (i, pair) in samples.windows(2).enumerate() {
            let ((_, down, _, bytes), (up_at, next_down, packets, next_bytes)) = (pair[0], pair[1]);
            if down {
                down_s += step;
            } else {
                up_s += step;
                up_bytes += next_bytes - bytes;
            }
            // The link came up: the first later sample with more downward packets is when the
            // server sent again (none: the device ended first).
            if down
                && !next_down
                && let Some(next) = samples[i + 1..].iter().find(|s| s.2 > packets)
            {
                resumes.push((next.0 - up_at - step).max(0.0));
            }
        }
        if resumes.is_empty() {
            return None;
        }
        let capacity = profile.bandwidth_bps as f64 / 8.0 * up_s;
        let silent = resumes.iter().sum();
        resumes.sort_by(f64::total_cmp);
        Some(Recovery {
            outages: resumes.len(),
            resume_p50_s: resumes[resumes.len() / 2],
            resume_max_s: resumes[resumes.len() - 1],
            silent_after_outages_s: silent,
            up_s,
            down_s,
            up_use: if capacity > 0.0 { up_bytes as f64 / capacity } else { f64::NAN },
        })
    }
}

/// What a measured device process left.
pub struct Measured {
    /// Whether it exited by itself within [`EXIT_SLACK`] after its cap (else it was killed).
    pub exited: bool,
    /// Its `RESULT {json}` line, parsed (an error naming its output when it printed none).
    pub result: anyhow::Result<serde_json::Value>,
    /// What the link carried while it ran.
    pub carried: crate::link::LinkStats,
    /// Whether the armed cut fired.
    pub cut_fired: bool,
    /// How the transfer came back after outages.
    pub recovery: Option<Recovery>,
}

/// Runs `command` — a device that prints one `RESULT {json}` line — while its link is metered
/// (and cut as asked). One that has not exited [`EXIT_SLACK`] after `cap` is killed.
pub async fn measure(
    mut command: tokio::process::Command,
    link: &Link,
    cut: Option<(u64, Duration)>,
    cap: Duration,
) -> anyhow::Result<Measured> {
    use std::process::Stdio;
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn()?;
    let meter = Meter::start(link, cut);
    let (started, mut samples) = (std::time::Instant::now(), Vec::new());
    let sample = |samples: &mut Vec<Sample>| {
        let down = meter.carried().down;
        samples.push((started.elapsed().as_secs_f64(), link.is_down(), down.packets, down.bytes));
    };
    let waited = tokio::time::timeout(cap + EXIT_SLACK, child.wait_with_output());
    tokio::pin!(waited);
    let mut ticks = tokio::time::interval(SAMPLE);
    let out = loop {
        tokio::select! {
            out = &mut waited => break out,
            _ = ticks.tick() => sample(&mut samples),
        }
    };
    sample(&mut samples);
    let recovery = Recovery::of(&samples, link.profile());
    let Ok(out) = out else {
        let result = Err(anyhow::anyhow!("no result {EXIT_SLACK:?} after its cap"));
        return Ok(Measured { exited: false, result, carried: meter.carried(), cut_fired: meter.did_cut(), recovery });
    };
    let out = out?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = match stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
        Some(line) => serde_json::from_str(line).map_err(anyhow::Error::from),
        None => Err(anyhow::anyhow!("failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr))),
    };
    Ok(Measured { exited: true, result, carried: meter.carried(), cut_fired: meter.did_cut(), recovery })
}

/// The lower bound of a transfer of `bytes` over `profile`: serialization at its bandwidth plus
/// `round_trips` round trips.
pub fn link_bound(profile: &LinkProfile, bytes: u64, round_trips: u32) -> Duration {
    profile.serialization(bytes) + profile.rtt() * round_trips
}

/// How long after its cap a device process may take to report and exit. automerge-repo's client,
/// while loading 2,000 documents, keeps its event loop busy and cannot run its cap timer: in the
/// default run it had not reported 60 s after its cap either, so the minute spent waiting for it
/// made every scenario of its lanes longer and measured nothing.
pub const EXIT_SLACK: Duration = Duration::from_secs(30);
