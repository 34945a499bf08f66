//! The proof under bad links, side by side with automerge-repo 2.5 (see `yilian_bench::proof`).
//!
//! ```sh
//! proof                 # default: 2,000 residents x 10 visits, every profile; writes target/bench/proof.json
//! proof --quick         # CI: emulator accuracy, then 60 residents on lan, 4g and 2g
//! proof accuracy --runs 20   # the emulator's accuracy check alone, 20 times in a row
//! ```
//!
//! Runs in a private network namespace (it re-executes itself under `unshare`); needs node and
//! `npm ci` in tests/js (scripts/bench and scripts/test see to both).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use yilian_bench::link::{LinkProfile, netns};
use yilian_bench::proof::report::{self, LaneReport};
use yilian_bench::proof::run::{Plan, run};
use yilian_bench::proof::{Engine, accuracy, yilian};
use yilian_bench::workload::Params;

#[derive(Parser)]
#[command(about = "Sync benchmarks over emulated bad links, Yilian against automerge-repo")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// CI mode: the emulator's accuracy check, then a small run on lan, 4g and 2g.
    #[arg(long)]
    quick: bool,
    /// Profiles to run (comma-separated; default all five, or lan,4g,2g with --quick).
    #[arg(long, value_delimiter = ',')]
    profiles: Vec<LinkProfile>,
    /// Residents of the village doctor (default 2,000; 60 with --quick).
    #[arg(long)]
    residents: Option<usize>,
    /// Visits per resident (default 10; 4 with --quick).
    #[arg(long)]
    visits: Option<usize>,
    /// Seed of the workload and of the links.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// automerge-repo's cap for a first sync, seconds.
    #[arg(long, default_value_t = 240)]
    peer_first_cap: u64,
    /// automerge-repo's cap for the other scenarios, seconds.
    #[arg(long, default_value_t = 90)]
    peer_cap: u64,
    /// Where the JSON report goes (default target/bench/proof.json; proof-quick.json with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also check the emulator's accuracy in a full run.
    #[arg(long)]
    accuracy: bool,
    /// Yilian's lanes only (tuning runs; the table then has no ratios).
    #[arg(long)]
    yilian_only: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The Yilian device of a lane (run by the proof itself).
    Device {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        relay: SocketAddr,
        #[arg(long)]
        pin: String,
        #[arg(long)]
        cap: f64,
    },
    /// The emulator's accuracy check alone, `runs` times in a row (each probes all five profiles
    /// at once); prints each run's table and the tally, and fails if any run was out of tolerance.
    Accuracy {
        #[arg(long, default_value_t = 1)]
        runs: u32,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(Command::Device { db, relay, pin, cap }) = args.command {
        let pin = pin.parse().map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
        return runtime.block_on(yilian::device(yilian::DeviceArgs {
            db,
            relay,
            pin,
            cap: Duration::from_secs_f64(cap),
        }));
    }
    netns::enter_private()?;
    if let Some(Command::Accuracy { runs }) = args.command {
        return runtime.block_on(accuracy_runs(runs, args.seed));
    }
    runtime.block_on(proof(args))
}

async fn accuracy_runs(runs: u32, seed: u64) -> Result<()> {
    let all: Vec<LinkProfile> =
        yilian_bench::link::profile::PROFILES.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    let mut failed = 0;
    for run in 0..runs {
        // Each run on links of its own: a TUN device just closed may still be busy.
        let first = 200 + (run % 10) as u8 * 5;
        let checked = accuracy::check(&all, first, seed.wrapping_add(u64::from(run))).await?;
        println!("run {} of {runs}:", run + 1);
        print!("{}", accuracy::table(&checked));
        failed += u32::from(checked.iter().any(|a| !a.ok()));
    }
    println!("{} passed, {failed} failed", runs - failed);
    anyhow::ensure!(failed == 0, "{failed} of {runs} accuracy runs out of tolerance");
    Ok(())
}

async fn proof(args: Args) -> Result<()> {
    let started = Instant::now();
    let profiles = if !args.profiles.is_empty() {
        args.profiles.clone()
    } else if args.quick {
        ["lan", "4g", "2g"].iter().map(|p| p.parse()).collect::<Result<_, _>>()?
    } else {
        yilian_bench::link::profile::PROFILES.iter().map(|p| p.parse()).collect::<Result<_, _>>()?
    };
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    if args.quick || args.accuracy {
        let all: Vec<LinkProfile> =
            yilian_bench::link::profile::PROFILES.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
        checked = accuracy::check(&all, 200, args.seed).await?;
        print!("{}", accuracy::table(&checked));
        for a in checked.iter().filter(|a| !a.ok()) {
            failures.push(format!("the emulator's {} profile is out of tolerance", a.profile));
        }
    }
    let params = Params {
        seed: args.seed,
        residents_per_doctor: args.residents.unwrap_or(if args.quick { 60 } else { 2_000 }),
        visits_per_resident: args.visits.unwrap_or(if args.quick { 4 } else { 10 }),
        ..Params::village_doctor()
    };
    let work = tempfile::tempdir()?;
    let plan = Plan {
        profiles: profiles.clone(),
        params: params.clone(),
        seed: args.seed,
        dir: work.path().to_path_buf(),
        program: std::env::current_exe()?,
        cut: if args.quick { Duration::from_secs(8) } else { yilian_bench::proof::CUT },
        peer_first_cap: Duration::from_secs(if args.quick { 90 } else { args.peer_first_cap }),
        peer_cap: Duration::from_secs(if args.quick { 30 } else { args.peer_cap }),
        with_peer: !args.yilian_only,
        started,
    };
    println!(
        "workload: {} residents x {} visits (seed {}); profiles {}",
        params.residents_per_doctor,
        params.visits_per_resident,
        params.seed,
        profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let (dataset, lanes) = run(&plan).await?;
    println!(
        "payload: first sync {} documents, {} changes, {:.1} KiB compressed + {:.1} KiB signatures; a day {} changes, {:.1} KiB; a week {} changes, {:.1} KiB",
        dataset.documents,
        dataset.base.changes,
        dataset.base.compressed_bytes as f64 / 1024.0,
        dataset.base.signature_bytes as f64 / 1024.0,
        dataset.day.payload.changes,
        dataset.day.payload.compressed_bytes as f64 / 1024.0,
        dataset.week.payload.changes,
        dataset.week.payload.compressed_bytes as f64 / 1024.0,
    );
    let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
    print!("{}", report::table(&lanes, &names));
    let targets = report::targets(&lanes, dataset.documents);
    println!("\ntargets:");
    for t in &targets {
        println!("  [{}] {}: {}", t.verdict(), t.what, t.measured);
    }
    let lane_problems = lane_failures(&lanes);
    let failed_lanes =
        lanes.iter().filter(|l| lane_problems.iter().any(|(p, e, _)| p == &l.profile && *e == l.engine)).count();
    let checks = checked.len() + lanes.len();
    let failed = checked.iter().filter(|a| !a.ok()).count() + failed_lanes;
    failures.extend(lane_problems.into_iter().map(|(_, _, what)| what));
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench")).join(if args.quick {
            "proof-quick.json"
        } else {
            "proof.json"
        })
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::json!({
        "params": { "seed": params.seed, "residents": params.residents_per_doctor, "visits_per_resident": params.visits_per_resident },
        "payload": { "first": dataset.base, "day": dataset.day.payload, "week": dataset.week.payload },
        "cut_seconds": plan.cut.as_secs_f64(),
        "accuracy": checked,
        "lanes": lanes,
        "targets": targets,
        "seconds": started.elapsed().as_secs_f64(),
    });
    std::fs::write(&out, serde_json::to_string_pretty(&json)?).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} ({:.0} s in all)", out.display(), started.elapsed().as_secs_f64());
    for f in &failures {
        println!("FAILED: {f}");
    }
    // Each accuracy measurement and each lane is one check.
    println!("{} passed, {failed} failed", checks - failed);
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// What makes the run itself fail (targets missed are reported, not failures): a lane that could
/// not run, a Yilian scenario that did not finish, a Yilian device that did not converge.
fn lane_failures(lanes: &[LaneReport]) -> Vec<(String, Engine, String)> {
    let mut out = Vec::new();
    for lane in lanes {
        if let Some(error) = &lane.error {
            out.push((lane.profile.clone(), lane.engine, format!("{} {:?} lane: {error}", lane.profile, lane.engine)));
        }
        if lane.engine == Engine::Yilian {
            for s in lane.scenarios.iter().filter(|s| !s.figures.complete) {
                let what = format!("Yilian did not finish {} on {}", s.scenario.label(), lane.profile);
                out.push((lane.profile.clone(), lane.engine, what));
            }
            if lane.converged == Some(false) {
                let what = format!("the Yilian device on {} did not converge with its relay", lane.profile);
                out.push((lane.profile.clone(), lane.engine, what));
            }
        }
    }
    out
}
