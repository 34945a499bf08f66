//! The phone of the fault scenarios, as its own process (so it can be killed): registers residents
//! with a contract and visits (each committed before the next), then syncs until synced, saying
//! where it is on stdout: `CLOCK ms` (its clock), `RECORDED n`, `SYNCING`, `ERROR why` for each
//! failed attempt, `DONE`.

use crate::workload::{Params, clinical};
use anyhow::Result;
use chrono::{Duration as Days, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yilian_core::model::{Demographics, NewContract, NewPatient, Sex};
use yilian_core::net::{Fingerprint, SessionOptions, client_config};
use yilian_core::{Store, StoreOptions};
use yilian_tests::lab::session;

/// What the worker does.
#[derive(Clone, Debug)]
pub struct WorkerArgs {
    /// Its store (enrolled at the relay beforehand).
    pub db: PathBuf,
    /// Its name at the relay.
    pub name: String,
    /// The relay.
    pub relay: SocketAddr,
    /// The relay's fingerprint.
    pub pin: Fingerprint,
    /// Residents to register.
    pub residents: usize,
    /// Visits per resident.
    pub visits: usize,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the worker.
pub async fn run(args: WorkerArgs) -> Result<()> {
    let store = Store::open(&args.db, StoreOptions::default())?;
    let consortium = crate::workload::Consortium::new(&Params { doctors: 1, ..Params::village_doctor() });
    let clinic = &consortium.clinics[0];
    let mut rng = StdRng::seed_from_u64(store.last_seq()? as u64 ^ u64::from(std::process::id()));
    // The phone's own clock (skewed or not) is "now".
    say(&format!("CLOCK {}", Utc::now().timestamp_millis()));
    let today = Utc::now().date_naive();
    let mut recorded = 0;
    for _ in 0..args.residents {
        let age = rng.gen_range(40..85);
        let sex = if rng.gen_bool(0.5) { Sex::Male } else { Sex::Female };
        let profile = clinical::Profile {
            age,
            sex,
            conditions: vec![clinical::Chronic::Hypertension],
            weight_kg: 62.0,
            height_cm: 160.0,
            medicines: Vec::new(),
            cigarettes_per_day: 0,
        };
        let id = store.create_patient(NewPatient {
            id: None,
            demographics: Demographics {
                name: format!("居民{}", rng.gen_range(1000..9999)),
                sex,
                birth_date: today - Days::days(i64::from(age) * 365),
                national_id: None,
                phone: None,
                address: None,
                village: clinic.villages.first().cloned(),
            },
            practitioner_id: clinic.doctor.id.clone(),
            organization_id: clinic.organization.id.clone(),
        })?;
        store.sign_contract(
            id,
            NewContract {
                team_id: clinic.team_id.clone(),
                practitioner_id: clinic.doctor.id.clone(),
                organization_id: clinic.organization.id.clone(),
                start: today,
                end: today + Days::days(364),
            },
        )?;
        recorded += 2;
        for v in 0..args.visits {
            let at = Utc::now().timestamp_millis() - (args.visits - v) as i64 * 60_000;
            store.record_visit(
                id,
                clinical::visit(&mut rng, &profile, at, &clinic.organization.id, &clinic.doctor.id),
            )?;
            recorded += 1;
        }
    }
    say(&format!("RECORDED {recorded}"));
    let endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    let config = client_config(args.pin, &store.device_key())?;
    say("SYNCING");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let options = SessionOptions::default();
        match session(&endpoint, &config, args.relay, &store, &args.name, &options, &CancellationToken::new()).await {
            Ok(report) if report.outcome.synced => {
                say("DONE");
                return Ok(());
            }
            Ok(report) => say(&format!("ERROR session ended unsynced: {}", report.outcome.error.unwrap_or_default())),
            Err(e) => say(&format!("ERROR {e}")),
        }
        // A pause before the next attempt, as a phone's agent backs off (bounded by the deadline).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say("GAVE UP");
    Ok(())
}
