//! Runs the consortium simulation over many seeds, or replays one.
//!
//! ```sh
//! simulation --seeds 10000          # seeds 0..10000: prints seeds/s and the tally
//! simulation --seed 4711 --trace    # replays one seed, printing every step
//! ```
//!
//! Exits non-zero if any seed failed; each failure prints the command that replays it and the
//! steps that led there. Writes `target/bench/simulation.json`.

use anyhow::Result;
use clap::Parser;
use std::time::Instant;
use yilian_sim::oracle::Tally;
use yilian_sim::{Config, world};

#[derive(Parser)]
#[command(about = "Deterministic simulation of a consortium's phones and relay, with faults")]
struct Args {
    /// Run this many seeds, from `--from`.
    #[arg(long, default_value_t = 200)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Replay this one seed (prints its failures and trace).
    #[arg(long)]
    seed: Option<u64>,
    /// Print every step of a replayed seed.
    #[arg(long)]
    trace: bool,
    /// Scheduler steps per run.
    #[arg(long, default_value_t = Config::default().steps)]
    steps: usize,
    /// No faults (deliveries and edits only).
    #[arg(long)]
    no_faults: bool,
    /// Also restore the relay's database from older backups (open work: see `Config`).
    #[arg(long)]
    relay_restores: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let config =
        Config { steps: args.steps, faults: !args.no_faults, relay_restores: args.relay_restores, ..Config::default() };
    if let Some(seed) = args.seed {
        let outcome = world::run_traced(seed, &config, args.trace)?;
        println!("{}", outcome.tally.summary());
        if !outcome.failures.is_empty() {
            println!("{}", outcome.report());
            anyhow::bail!("seed {seed} failed");
        }
        println!("seed {seed} passed");
        return Ok(());
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut failed = Vec::new();
    for seed in args.from..args.from + args.seeds {
        let outcome = world::run(seed, &config)?;
        tally.add(&outcome.tally);
        if !outcome.failures.is_empty() {
            println!("{}", outcome.report());
            failed.push(seed);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{}", tally.summary());
    println!(
        "{} seeds in {seconds:.1} s ({:.1} seeds/s); {} passed, {} failed{}",
        args.seeds,
        args.seeds as f64 / seconds,
        args.seeds as usize - failed.len(),
        failed.len(),
        if failed.is_empty() { String::new() } else { format!(" (seeds {failed:?})") }
    );
    let json = format!(
        "{{\"seeds\":{},\"from\":{},\"seconds\":{seconds:.2},\"failed\":{failed:?},\"lost\":{},\"leaked\":{},\"diverged\":{},\"duplicated\":{},\"synced_early\":{},\"edits\":{},\"sessions\":{},\"restores\":{},\"restored_found\":{}}}\n",
        args.seeds,
        args.from,
        tally.lost,
        tally.leaked,
        tally.diverged,
        tally.duplicated,
        tally.synced_early,
        tally.edits,
        tally.sessions,
        tally.restores,
        tally.restored_found
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("simulation.json"), json)?;
    anyhow::ensure!(failed.is_empty(), "{} of {} seeds failed", failed.len(), args.seeds);
    Ok(())
}
