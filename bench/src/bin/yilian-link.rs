//! The link emulator as a program: brings up an emulated link in a private network namespace,
//! then either measures it (`--probe`) or runs a command on it and prints what the link carried.
//!
//! ```sh
//! yilian-link --profile 2g --probe
//! yilian-link --profile satellite-bad -- sh -c 'server --listen 10.77.1.1:4433 & client --relay 10.77.1.2:4433'
//! ```
//!
//! Servers listen on 10.77.<index>.1 (or 0.0.0.0), clients dial 10.77.<index>.2. Needs root (or
//! user namespaces) for the namespace and the TUN device.

use anyhow::{Context, Result, bail};
use clap::Parser;
use yilian_bench::link::{Link, LinkProfile, netns, probe};

#[derive(Parser)]
#[command(about = "An emulated slow, lossy, intermittent link between two endpoints on this machine")]
struct Args {
    /// lan, 4g, 2g, satellite-bad or flapping.
    #[arg(long, default_value = "2g")]
    profile: LinkProfile,
    /// Link number: TUN device ylink<N>, subnet 10.77.<N>.0/24.
    #[arg(long, default_value_t = 1)]
    index: u8,
    /// Seed of the loss and jitter draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Measure the link with this many UDP probes instead of running a command.
    #[arg(long)]
    probe: Option<u64>,
    /// The command to run with the link up (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    netns::enter_private()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let link = Link::start(args.index, args.profile.clone(), args.seed).context("starting the link (TUN device)")?;
    println!("link {}: servers listen on {}, clients dial {}", link.profile(), link.near(), link.far());
    if let Some(count) = args.probe {
        let rate = (link.profile().bandwidth_bps / 10 / probe::PROBE_IP_BYTES).clamp(1, 5_000);
        let report = probe::measure(&link, count, rate).await?;
        println!(
            "probes: {} sent, {} returned; RTT median {:.1} ms (profile {:.1} ms); round-trip loss {:.2}% (profile {:.2}%)",
            report.sent,
            report.returned,
            report.rtt_median.as_secs_f64() * 1000.0,
            link.profile().rtt().as_secs_f64() * 1000.0,
            report.round_trip_loss * 100.0,
            (1.0 - link.profile().round_trip_delivery() * link.profile().availability()) * 100.0,
        );
        return Ok(());
    }
    let Some((program, rest)) = args.command.split_first() else {
        bail!("give --probe N or a command after --");
    };
    let status = tokio::process::Command::new(program).args(rest).status().await?;
    let stats = link.stats();
    println!("link carried: up {:?}", stats.up);
    println!("              down {:?}", stats.down);
    std::process::exit(status.code().unwrap_or(1));
}
