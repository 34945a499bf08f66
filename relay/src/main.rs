//! `yilian-relay`: the consortium's relay. `serve` runs the QUIC sync endpoint on a data
//! directory; `scope` manages what each device may see; `demo` runs the README's main job.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use yilian_core::net::RelayIdentity;
use yilian_core::{PatientId, ScopeGrant};
use yilian_relay::{Relay, RelayConfig, RelayStorage, demo, open_sqlite};

/// Yilian consortium relay.
#[derive(Parser)]
#[command(name = "yilian-relay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the relay: QUIC sync endpoint over embedded SQLite in the data directory.
    Serve {
        /// Database, certificate and key live here (created on first start).
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:4433")]
        listen: SocketAddr,
        /// This relay's peer id.
        #[arg(long, default_value = "relay")]
        name: String,
    },
    /// Prints the certificate fingerprint devices pin (generating the certificate if needed).
    Fingerprint {
        /// The relay's data directory.
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
    },
    /// Manages what a device may see (until enrollment assigns scope by care team and referral).
    Scope {
        #[command(subcommand)]
        action: ScopeAction,
    },
    /// Runs the demo: a relay and field devices record offline, reconnect over QUIC and converge.
    Demo {
        /// Keep the demo's stores in this folder instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ScopeAction {
    /// Assigns a resident's record (or every record) to a device; it flows on the next sync.
    Add {
        /// The relay's data directory.
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        /// The device's peer id.
        #[arg(long)]
        device: String,
        /// The resident's id (UUID).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        patient: Option<String>,
        /// Every record (an edge hub, a consortium-wide desk).
        #[arg(long)]
        all: bool,
    },
    /// Lists a device's scope.
    List {
        /// The relay's data directory.
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        /// The device's peer id.
        #[arg(long)]
        device: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The demo prints its own story; a served relay logs what it does.
    let default_level = if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { data_dir, listen, name } => runtime.block_on(serve(RelayConfig { data_dir, listen, name })),
        Command::Fingerprint { data_dir } => {
            println!("{}", RelayIdentity::load_or_generate(&data_dir)?.fingerprint());
            Ok(())
        }
        Command::Scope { action: ScopeAction::Add { data_dir, device, patient, all } } => {
            let storage = open_sqlite(&data_dir)?;
            let grant = match patient {
                Some(id) if !all => ScopeGrant::Document(
                    id.parse::<PatientId>().with_context(|| format!("--patient {id:?} is not a patient id"))?,
                ),
                _ => ScopeGrant::Everything,
            };
            let at = storage.grant(&device, grant)?;
            println!("granted to {device} (grant {at}); it reaches the device on its next sync");
            Ok(())
        }
        Command::Scope { action: ScopeAction::List { data_dir, device } } => {
            for doc in open_sqlite(&data_dir)?.scope(&device)? {
                println!("{doc}");
            }
            Ok(())
        }
        Command::Demo { data_dir } => runtime.block_on(demo::run(data_dir)),
    }
}

async fn serve(config: RelayConfig) -> Result<()> {
    let storage = open_sqlite(&config.data_dir)?;
    let relay = Relay::start(config, storage).await?;
    println!("yilian-relay listening on {} (QUIC, ALPN yilian/1)", relay.addr);
    println!("devices pin this certificate: {}", relay.fingerprint);
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    relay.shutdown().await;
    Ok(())
}
