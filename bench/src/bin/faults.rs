//! Fault injection against the production relay (see `yilian_bench::faults`): phones and the
//! relay killed with SIGKILL mid-sync, the relay's disk full, phones' clocks a day off. Prints one
//! line per scenario run and `N passed, N failed`; writes `target/bench/faults.json`.
//!
//! ```sh
//! faults            # 60 phone kills, 40 relay kills, disk full, clock skew +-1 day
//! faults --quick    # CI: 10 + 10 kills and the rest
//! ```
//!
//! Runs in private network and mount namespaces (it re-executes itself under `unshare`); the
//! clock-skew scenarios need libfaketime's `faketime` (scripts/setup installs it).

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use yilian_bench::faults::{self, Plan, worker};
use yilian_bench::link::netns;
use yilian_bench::load::relay_process::sibling_binary;

#[derive(Parser)]
#[command(about = "Kills, a full disk and skewed clocks against a relay and its phones")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// CI mode: 10 phone kills and 10 relay kills.
    #[arg(long)]
    quick: bool,
    /// Phone processes to kill mid-sync.
    #[arg(long, default_value_t = 60)]
    device_kills: u32,
    /// Relay processes to kill mid-sync.
    #[arg(long, default_value_t = 40)]
    relay_kills: u32,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Where the JSON report goes (default target/bench/faults.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// A phone of the scenarios (run by the check itself).
    Worker {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        relay: SocketAddr,
        #[arg(long)]
        pin: String,
        #[arg(long)]
        residents: usize,
        #[arg(long)]
        visits: usize,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(Command::Worker { db, name, relay, pin, residents, visits }) = args.command {
        let pin = pin.parse().map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
        return runtime.block_on(worker::run(worker::WorkerArgs { db, name, relay, pin, residents, visits }));
    }
    netns::enter_private_with_mounts()?;
    let plan = Plan {
        device_kills: if args.quick { 10 } else { args.device_kills },
        relay_kills: if args.quick { 10 } else { args.relay_kills },
        disk_full: true,
        clock_skew: true,
        seed: args.seed,
    };
    let dir = tempfile::tempdir()?;
    let started = std::time::Instant::now();
    let outcomes = runtime.block_on(faults::run(
        &plan,
        dir.path(),
        &sibling_binary("yilian-relay")?,
        &std::env::current_exe()?,
    ))?;
    for o in &outcomes {
        println!("[{}] {}: {}", if o.passed { "pass" } else { "FAIL" }, o.scenario, o.detail);
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed = outcomes.len() - passed;
    let kills: u32 = outcomes.iter().map(|o| o.kills).sum();
    println!("{kills} processes killed with SIGKILL in {:.0} s", started.elapsed().as_secs_f64());
    let out = args.out.unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench/faults.json").into());
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::json!({ "passed": passed, "failed": failed, "kills": kills, "scenarios": outcomes });
    std::fs::write(&out, serde_json::to_string_pretty(&json)?)?;
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} fault scenario(s) failed");
    }
    Ok(())
}
