//! `yilian-relay`: the consortium's relay. `serve` runs the QUIC sync endpoint and the HTTP API
//! on a data directory; `org`, `practitioner`, `team`, `code`, `device`, `token`, `audit` and
//! `scope` are the admin's commands on the same data directory (a running relay picks their
//! effects up: a revoked device is cut off within a second); `demo` runs the README's main job.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yilian_core::net::RelayIdentity;
use yilian_core::store::OperatorRole;
use yilian_core::time::format_ms;
use yilian_core::{
    DeviceKind, Organization, OrganizationKind, PatientId, Practitioner, PractitionerRole, ScopeGrant, Store, Team,
};
use yilian_relay::http::AppState;
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
        /// TCP address of the HTTP API (health, admin).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Hours a closed referral keeps the record in the receiving organization's scope.
        #[arg(long)]
        referral_grace_hours: Option<u64>,
    },
    /// Prints the certificate fingerprint devices pin (generating the certificate if needed).
    Fingerprint {
        /// The relay's data directory.
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
    },
    /// Assigns records to a device's scope by hand (an edge hub, a consortium-wide desk), beyond
    /// what its team's contracts and its organization's open referrals bring.
    Scope {
        #[command(subcommand)]
        action: ScopeAction,
    },
    /// Organizations of the consortium.
    Org {
        #[command(subcommand)]
        action: OrgAction,
    },
    /// Practitioners.
    Practitioner {
        #[command(subcommand)]
        action: PractitionerAction,
    },
    /// Family-doctor teams.
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Issues a one-time enrollment code for a practitioner's device (printed once).
    Code {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        /// The practitioner the device belongs to.
        #[arg(long)]
        practitioner: String,
        /// The organization (default: the practitioner's).
        #[arg(long)]
        org: Option<String>,
        /// An edge hub rather than a phone.
        #[arg(long)]
        hub: bool,
        /// Hours the code works.
        #[arg(long, default_value_t = 72)]
        valid_hours: u64,
    },
    /// Enrolled devices.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Creates an operator API token for the HTTP admin API (printed once, kept hashed).
    Token {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        /// The operator's name.
        #[arg(long)]
        name: String,
        /// What the token may do: admin, referral_desk (its organization's worklist, records and
        /// referral actions) or analyst (read-only: worklists, statistics, the changes feed).
        #[arg(long, default_value = "admin")]
        role: String,
        /// The organization the token acts for (required for a referral desk).
        #[arg(long)]
        organization: Option<String>,
    },
    /// Prints a record's audit trail: who changed which field, from which device, when, signed.
    Audit {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        /// The resident's id (UUID).
        #[arg(long)]
        patient: String,
    },
    /// Runs the demo: a relay and field devices record offline, reconnect over QUIC and converge.
    Demo {
        /// Keep the demo's stores in this folder instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the demo relay serves its HTTP API and dashboard (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        http: SocketAddr,
        /// After converging, keep serving the dashboard until Ctrl-C.
        #[arg(long)]
        serve: bool,
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

#[derive(Subcommand)]
enum OrgAction {
    /// Adds an organization.
    Add {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// county_hospital, township_health_centre, village_clinic, community_joint_ward, ...
        #[arg(long)]
        kind: String,
        /// The organization it belongs to.
        #[arg(long)]
        part_of: Option<String>,
    },
    /// Lists the organizations, parents first.
    List {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PractitionerAction {
    /// Adds a practitioner.
    Add {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// family_doctor, nurse, public_health, specialist, referral_desk
        #[arg(long)]
        role: String,
        #[arg(long)]
        org: String,
    },
    /// Lists the practitioners.
    List {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TeamAction {
    /// Adds a team with its members.
    Add {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        org: String,
        /// A member practitioner (repeat for each).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Adds a member to a team, or removes one (`--remove`).
    Member {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        #[arg(long)]
        team: String,
        #[arg(long)]
        practitioner: String,
        #[arg(long)]
        remove: bool,
    },
    /// Lists the teams.
    List {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DeviceAction {
    /// Lists the enrolled devices.
    List {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
    },
    /// Revokes a device; a running relay closes its connection within a second.
    Revoke {
        #[arg(long, default_value = "relay-data")]
        data_dir: PathBuf,
        #[arg(long)]
        device: String,
        #[arg(long)]
        reason: String,
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
        Command::Serve { data_dir, listen, name, http, referral_grace_hours } => {
            let storage = open_sqlite(&data_dir)?;
            if let Some(hours) = referral_grace_hours {
                storage.set_referral_grace(Duration::from_secs(hours.saturating_mul(3600)))?;
            }
            runtime.block_on(serve(RelayConfig { data_dir, listen, name }, storage, http))
        }
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
        Command::Demo { data_dir, http, serve } => runtime.block_on(demo::run(data_dir, http, serve)),
        other => admin(other),
    }
}

/// The admin's commands, on the data directory's database.
fn admin(command: Command) -> Result<()> {
    let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    match command {
        Command::Org { action: OrgAction::Add { data_dir, id, name, kind, part_of } } => {
            let kind = OrganizationKind::parse(&kind)?;
            open_sqlite(&data_dir)?.add_organization(&Organization { id, name, kind, part_of })?;
        }
        Command::Org { action: OrgAction::List { data_dir } } => {
            for o in open_sqlite(&data_dir)?.organizations()? {
                println!("{}\t{}\t{}\t{}", o.id, o.kind, o.part_of.unwrap_or_default(), o.name);
            }
        }
        Command::Practitioner { action: PractitionerAction::Add { data_dir, id, name, role, org } } => {
            let role = PractitionerRole::parse(&role)?;
            open_sqlite(&data_dir)?.add_practitioner(&Practitioner { id, name, role, organization_id: org })?;
        }
        Command::Practitioner { action: PractitionerAction::List { data_dir } } => {
            for p in open_sqlite(&data_dir)?.practitioners()? {
                println!("{}\t{}\t{}\t{}", p.id, p.role, p.organization_id, p.name);
            }
        }
        Command::Team { action: TeamAction::Add { data_dir, id, name, org, members } } => {
            open_sqlite(&data_dir)?.add_team(&Team { id, name, organization_id: org, members })?;
        }
        Command::Team { action: TeamAction::Member { data_dir, team, practitioner, remove } } => {
            open_sqlite(&data_dir)?.set_team_member(&team, &practitioner, !remove)?;
        }
        Command::Team { action: TeamAction::List { data_dir } } => {
            for t in open_sqlite(&data_dir)?.teams()? {
                println!("{}\t{}\t{}\t{}", t.id, t.organization_id, t.members.join(","), t.name);
            }
        }
        Command::Code { data_dir, practitioner, org, hub, valid_hours } => {
            let kind = if hub { DeviceKind::Hub } else { DeviceKind::Phone };
            let valid_for = Duration::from_secs(valid_hours.saturating_mul(3600));
            let code =
                open_sqlite(&data_dir)?.issue_enrollment_code(&practitioner, org.as_deref(), kind, valid_for, &who)?;
            println!("{}", code.code);
            eprintln!(
                "one-time code for a {} of {} at {}, valid until {}",
                code.kind,
                code.practitioner_id,
                code.organization_id,
                format_ms(code.expires_at)
            );
        }
        Command::Device { action: DeviceAction::List { data_dir } } => {
            for d in open_sqlite(&data_dir)?.devices()? {
                let state = match (d.revoked_at, &d.revoke_reason) {
                    (Some(at), reason) => format!("revoked {} ({})", format_ms(at), reason.as_deref().unwrap_or("")),
                    (None, _) => "active".into(),
                };
                println!("{}\t{}\t{}\t{}\t{state}", d.device_id, d.kind, d.practitioner_id, d.organization_id);
            }
        }
        Command::Device { action: DeviceAction::Revoke { data_dir, device, reason } } => {
            open_sqlite(&data_dir)?.revoke_device(&device, &who, &reason)?;
            println!("{device} revoked; a running relay closes its connection within a second");
        }
        Command::Token { data_dir, name, role, organization } => {
            let role = OperatorRole::parse(&role)?;
            println!("{}", open_sqlite(&data_dir)?.create_admin_token(&name, role, organization.as_deref())?);
            eprintln!("{role} token for {name}: shown once, kept hashed; send it as `Authorization: Bearer <token>`");
        }
        Command::Audit { data_dir, patient } => {
            let id =
                patient.parse::<PatientId>().with_context(|| format!("--patient {patient:?} is not a patient id"))?;
            let storage = open_sqlite(&data_dir)?;
            let trail = storage.audit_trail(id)?;
            storage.log_record_read(&who, &patient, "audit")?;
            for e in &trail.entries {
                let fields: Vec<String> = e.fields.iter().map(|f| format!("{} {}", f.action, f.path)).collect();
                println!(
                    "{}\t{}\t{}\t{:?}\t{}",
                    format_ms(e.at),
                    e.device.as_deref().unwrap_or("-"),
                    e.practitioner.as_deref().unwrap_or("-"),
                    e.signature,
                    fields.join("; ")
                );
            }
            for problem in &trail.problems {
                println!("PROBLEM\t{problem}");
            }
            if !trail.problems.is_empty() {
                anyhow::bail!("the stored history of {patient} does not check out");
            }
        }
        Command::Serve { .. } | Command::Fingerprint { .. } | Command::Scope { .. } | Command::Demo { .. } => {
            anyhow::bail!("not an admin command")
        }
    }
    Ok(())
}

async fn serve(config: RelayConfig, storage: Arc<Store>, http: SocketAddr) -> Result<()> {
    let relay = Relay::start(config, storage.clone()).await?;
    let listener =
        tokio::net::TcpListener::bind(http).await.with_context(|| format!("binding the HTTP API to {http}"))?;
    let stop = CancellationToken::new();
    let state = AppState { storage, revocations: relay.revocations(), metrics: relay.metrics() };
    let api = tokio::spawn(yilian_relay::http::serve(listener, state, stop.clone()));
    println!("yilian-relay listening on {} (QUIC, ALPN yilian/1, mutual TLS)", relay.addr);
    println!("HTTP API on http://{http} (admin endpoints need `yilian-relay token`)");
    println!("dashboard on http://{http}/dashboard (paste an operator token)");
    println!("devices pin this certificate: {}", relay.fingerprint);
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    stop.cancel();
    api.await??;
    relay.shutdown().await;
    Ok(())
}
