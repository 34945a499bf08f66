//! `yilian-relay`: the consortium's relay. Today it runs the local demo; the QUIC sync endpoint
//! and HTTP API (`serve`) build on the same core store.

mod demo;

use clap::{Parser, Subcommand};

/// Yilian consortium relay.
#[derive(Parser)]
#[command(name = "yilian-relay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the demo: field devices record offline, reconnect and converge.
    Demo {
        /// Keep the demo's stores in this folder instead of a temporary one.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match Cli::parse().command {
        Command::Demo { data_dir } => demo::run(data_dir),
    }
}
