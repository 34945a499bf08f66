//! The relay load test: `yilian-relay serve` against N simulated phones over QUIC on loopback
//! (see `yilian_bench::load`). Prints the figures and writes `target/bench/load.json`.
//!
//! ```sh
//! load                   # 1,000 phones, 100 doctors, 25 visits each
//! load --devices 200     # a smaller run
//! ```

use anyhow::Result;
use clap::Parser;
use yilian_bench::load::{self, LoadParams, relay_process};

#[derive(Parser)]
#[command(about = "N phones pushing and pulling a day's work through one relay")]
struct Args {
    /// Phones.
    #[arg(long, default_value_t = 1_000)]
    devices: usize,
    /// Family doctors sharing the phones.
    #[arg(long, default_value_t = 100)]
    doctors: usize,
    /// Visits each phone recorded offline.
    #[arg(long, default_value_t = 25)]
    visits: usize,
    /// Residents on each doctor's panel.
    #[arg(long, default_value_t = 20)]
    residents: usize,
    /// Write the JSON report here (default target/bench/load.json).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let params = LoadParams {
        devices: args.devices,
        doctors: args.doctors.min(args.devices).max(1),
        visits_per_device: args.visits,
        residents_per_doctor: args.residents,
        ..LoadParams::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let report = runtime.block_on(load::run(params, &relay_process::sibling_binary("yilian-relay")?, dir.path()))?;
    println!("{}", load::summary(&report));
    for failure in report.failures.iter().take(5) {
        println!("  failure: {failure}");
    }
    let out = args.out.unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench/load.json").into());
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    if !report.failures.is_empty() || !report.refused.is_empty() || report.diverged > 0 {
        anyhow::bail!(
            "{} failed sessions, {} changes refused, {} diverged phones",
            report.failures.len(),
            report.refused.len(),
            report.diverged
        );
    }
    Ok(())
}
