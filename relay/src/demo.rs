//! The demo scenario: a relay on embedded SQLite listening on QUIC, and three field devices (two
//! village doctors and the county hospital's referral desk) with their own durable stores. The
//! devices record offline, connect, sync over real QUIC, and converge through a closed-loop
//! referral (upward, accepted, completed, downward back to the village); the last step runs the
//! devices' sync agents live, so an edit at one end reaches the other within a second.

use crate::http::AppState;
use crate::{Relay, RelayConfig, RelayStorage, open_sqlite};
use anyhow::{Context, Result, bail};
use chrono::Days;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yilian_core::agent::{AgentConfig, SyncAgent};
use yilian_core::model::*;
use yilian_core::net::{SessionOptions, WireStats, client_config, connect, enroll, sync_over};
use yilian_core::store::{DEFAULT_CODE_VALIDITY, OperatorRole};
use yilian_core::time::{now_ms, today};
use yilian_core::{DeviceKind, OrganizationKind, PatientId, Store, StoreOptions};
use yilian_testing::Consortium;

const SHIQIAO: &str = "shiqiao-village-clinic";
const DONGHE: &str = "donghe-village-clinic";
const COUNTY: &str = "county-peoples-hospital";
const TOWNSHIP: &str = "shiqiao-township-centre";
const DAY: i64 = 86_400_000;

struct Device {
    name: &'static str,
    store: Arc<Store>,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
}

impl Device {
    /// A new phone: its store (and Ed25519 key), a QUIC client presenting that key and pinning the
    /// relay, enrolled with a one-time code the consortium admin issued for `practitioner`.
    async fn enroll(
        dir: &Path,
        name: &'static str,
        practitioner: &str,
        relay: &Relay,
        admin: &Store,
    ) -> Result<Device> {
        let store = Store::open(dir.join(format!("{name}.db")), StoreOptions::default())
            .with_context(|| format!("opening {name}'s store"))?;
        let endpoint = quinn::Endpoint::client(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let client = client_config(relay.fingerprint, &store.device_key())?;
        let code =
            admin.issue_enrollment_code(practitioner, None, DeviceKind::Phone, DEFAULT_CODE_VALIDITY, "admin")?;
        let enrolled = enroll(&endpoint, &client, relay.addr, &code.code, name)
            .await
            .with_context(|| format!("enrolling {name}"))?;
        println!(
            "  {name:<8} enrolled with code {} for {} at {} (key {}…)",
            code.code,
            enrolled.practitioner,
            enrolled.organization,
            &store.device_public_key()[..16]
        );
        Ok(Device { name, store: Arc::new(store), endpoint, client })
    }

    /// One sync session with the relay over QUIC; prints what it cost.
    async fn sync(&self, relay: &Relay) -> Result<()> {
        let (conn, zero_rtt) = connect(&self.endpoint, &self.client, relay.addr).await?;
        let report = sync_over(
            &conn,
            &self.store,
            self.name,
            "relay",
            &SessionOptions::default(),
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await
        .with_context(|| format!("{} could not sync", self.name))?;
        let wire = WireStats::of(&conn);
        conn.close(quinn::VarInt::from_u32(0), b"done");
        let o = &report.outcome;
        println!(
            "  sync {:<8} pushed {:>3}, pulled {:>3} changes{}; {} round(s){}, protocol {:>6} B up {:>6} B down, UDP {:>6} B",
            self.name,
            o.sent,
            o.received,
            if o.snapshots > 0 { format!(" + {} record(s) whole", o.snapshots) } else { String::new() },
            report.rounds,
            if zero_rtt { " in 0-RTT" } else { " + handshake" },
            report.bytes_up,
            report.bytes_down,
            wire.tx_bytes + wire.rx_bytes,
        );
        for refused in &o.refused {
            println!("    refused by the relay: {refused}");
        }
        Ok(())
    }
}

fn resident(name: &str, sex: Sex, born: (i32, u32, u32), village: &str, org: &str, doctor: &str) -> NewPatient {
    NewPatient {
        id: None,
        demographics: Demographics {
            name: name.into(),
            sex,
            birth_date: chrono::NaiveDate::from_ymd_opt(born.0, born.1, born.2).unwrap_or_default(),
            national_id: None,
            phone: None,
            address: None,
            village: Some(village.into()),
        },
        practitioner_id: doctor.into(),
        organization_id: org.into(),
    }
}

fn follow_up(days_ago: i64, org: &str, doctor: &str, systolic: u16, diastolic: u16, glucose: Option<f64>) -> NewVisit {
    NewVisit {
        at: now_ms() - days_ago * DAY,
        organization_id: org.into(),
        practitioner_id: doctor.into(),
        kind: VisitKind::FollowUp,
        vitals: Vitals {
            systolic_mmhg: Some(systolic),
            diastolic_mmhg: Some(diastolic),
            fasting_glucose_mmol_l: glucose,
            ..Vitals::default()
        },
        symptoms: vec![],
        diagnoses: vec![],
        medicines: vec![Medicine {
            name: "氨氯地平 amlodipine".into(),
            dose: "5 mg".into(),
            frequency: "qd".into(),
            adherence: Adherence::Regular,
        }],
        lifestyle: Lifestyle::default(),
        notes: String::new(),
    }
}

fn enrol(store: &Store, p: PatientId, org: &str, doctor: &str, team: &str, icd10: &str) -> Result<()> {
    let today = today();
    store.sign_contract(
        p,
        NewContract {
            team_id: team.into(),
            practitioner_id: doctor.into(),
            organization_id: org.into(),
            start: today - Days::new(200),
            end: today + Days::new(165),
        },
    )?;
    store.add_condition(
        p,
        NewCondition {
            icd10: icd10.into(),
            diagnosed_on: today - Days::new(900),
            practitioner_id: doctor.into(),
            note: String::new(),
        },
    )?;
    Ok(())
}

/// The consortium's directory: the county hospital, a township centre and two village clinics
/// under it, their practitioners and the villages' family-doctor teams.
fn consortium(admin: &Store) -> Result<()> {
    let directory = Consortium::new()
        .organization(COUNTY, "县人民医院", OrganizationKind::CountyHospital, None)
        .organization(TOWNSHIP, "石桥镇卫生院", OrganizationKind::TownshipHealthCentre, Some(COUNTY))
        .organization(SHIQIAO, "石桥村卫生室", OrganizationKind::VillageClinic, Some(TOWNSHIP))
        .organization(DONGHE, "东河村卫生室", OrganizationKind::VillageClinic, Some(TOWNSHIP))
        .family_doctor("dr-wang", "王医生", SHIQIAO)
        .family_doctor("dr-zhao", "赵医生", DONGHE)
        .referral_desk("dr-sun", "孙医生", COUNTY)
        .team("team-shiqiao", "石桥家庭医生团队", SHIQIAO, &["dr-wang"])
        .team("team-donghe", "东河家庭医生团队", DONGHE, &["dr-zhao"]);
    directory.enter(admin)?;
    let (o, p, t) = (directory.organizations.len(), directory.practitioners.len(), directory.teams.len());
    println!("  {o} organizations, {p} practitioners, {t} teams");
    Ok(())
}

/// Runs the scenario and checks that every device ends with the relay's copy of each record in
/// its scope.
/// The dashboard stays up after the scenario when `serve` is set, until Ctrl-C.
pub async fn run(data_dir: Option<PathBuf>, http: SocketAddr, serve: bool) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let storage = open_sqlite(&dir.join("relay"))?;
    let relay = Relay::start(
        RelayConfig { data_dir: dir.join("relay"), listen: ([127, 0, 0, 1], 0).into(), name: "relay".into() },
        storage.clone(),
    )
    .await?;
    println!("Yilian demo — stores in {}", dir.display());
    println!("relay listening on {} (QUIC, mutual TLS), certificate {}", relay.addr, relay.fingerprint);
    let listener = tokio::net::TcpListener::bind(http).await.with_context(|| format!("binding {http}"))?;
    let http = listener.local_addr()?;
    let stop_http = CancellationToken::new();
    let state = AppState { storage: storage.clone(), revocations: relay.revocations(), metrics: relay.metrics() };
    let api = tokio::spawn(crate::http::serve(listener, state, stop_http.clone()));
    let token = storage.create_admin_token("demo-dashboard", OperatorRole::Analyst, None)?;
    println!("dashboard: http://{http}/dashboard#token={token}\n");
    println!("0. The consortium admin sets up the directory and enrolls three phones");
    consortium(&storage)?;
    let wang = Device::enroll(&dir, "dr-wang", "dr-wang", &relay, &storage).await?;
    let zhao = Device::enroll(&dir, "dr-zhao", "dr-zhao", &relay, &storage).await?;
    let county = Device::enroll(&dir, "county", "dr-sun", &relay, &storage).await?;

    println!("1. Offline in the villages");
    let liu = wang.store.create_patient(resident("刘桂兰", Sex::Female, (1951, 2, 3), "石桥村", SHIQIAO, "dr-wang"))?;
    enrol(&wang.store, liu, SHIQIAO, "dr-wang", "team-shiqiao", "I10")?;
    wang.store.record_visit(liu, follow_up(30, SHIQIAO, "dr-wang", 158, 96, None))?;
    wang.store.record_visit(liu, follow_up(14, SHIQIAO, "dr-wang", 162, 98, None))?;
    let chen = wang.store.create_patient(resident("陈建国", Sex::Male, (1960, 7, 21), "石桥村", SHIQIAO, "dr-wang"))?;
    enrol(&wang.store, chen, SHIQIAO, "dr-wang", "team-shiqiao", "E11.9")?;
    wang.store.record_visit(chen, follow_up(40, SHIQIAO, "dr-wang", 132, 84, Some(6.4)))?;
    let ma = zhao.store.create_patient(resident("马秀珍", Sex::Female, (1948, 11, 30), "东河村", DONGHE, "dr-zhao"))?;
    enrol(&zhao.store, ma, DONGHE, "dr-zhao", "team-donghe", "I10")?;
    zhao.store.record_visit(ma, follow_up(100, DONGHE, "dr-zhao", 136, 86, None))?;
    for s in wang.store.referral_suggestions(liu)? {
        println!("  dr-wang sees for 刘桂兰: {:?} — {}", s.kind, s.reason);
    }
    let up = wang.store.create_referral(
        liu,
        NewReferral {
            direction: Direction::Upward,
            from_organization_id: SHIQIAO.into(),
            from_practitioner_id: "dr-wang".into(),
            to_organization_id: COUNTY.into(),
            reason: "hypertension uncontrolled at two consecutive follow-ups".into(),
            urgency: Urgency::Urgent,
            clinical_summary: "158/96 then 162/98 mmHg on amlodipine 5 mg qd".into(),
            in_response_to: None,
        },
    )?;
    println!("  dr-wang refers 刘桂兰 up to the county hospital (referral {up})");

    println!("\n2. A link appears: everyone syncs with the consortium relay over QUIC");
    wang.sync(&relay).await?;
    zhao.sync(&relay).await?;
    county.sync(&relay).await?;
    println!(
        "  scopes: dr-wang {} record(s) (team), dr-zhao {} (team), county {} (the open referral)",
        storage.scope("dr-wang")?.len(),
        storage.scope("dr-zhao")?.len(),
        storage.scope("county")?.len()
    );
    for r in county.store.open_referrals(COUNTY)? {
        println!(
            "  county worklist: {} {:?} from {} [{}]",
            r.patient_name, r.direction, r.from_organization_id, r.status
        );
    }

    println!("\n3. The hospital acts while dr-wang is offline again");
    let desk = |status: TaskStatus, note: &str, summary: Option<&str>| NewReferralEvent {
        status,
        by_practitioner_id: "dr-sun".into(),
        by_organization_id: COUNTY.into(),
        note: note.into(),
        discharge_summary: summary.map(str::to_string),
    };
    county.store.add_referral_event(up, desk(TaskStatus::Received, "", None))?;
    county.store.add_referral_event(up, desk(TaskStatus::Accepted, "bed 12, cardiology", None))?;
    county.store.add_referral_event(up, desk(TaskStatus::InProgress, "admitted", None))?;
    county.store.add_referral_event(
        up,
        desk(TaskStatus::Completed, "discharged", Some("BP 132/84 on amlodipine 10 mg + losartan 50 mg")),
    )?;
    let down = county.store.create_referral(
        liu,
        NewReferral {
            direction: Direction::Downward,
            from_organization_id: COUNTY.into(),
            from_practitioner_id: "dr-sun".into(),
            to_organization_id: SHIQIAO.into(),
            reason: "continue management at the village clinic".into(),
            urgency: Urgency::Routine,
            clinical_summary: "recheck BP within two weeks".into(),
            in_response_to: Some(up),
        },
    )?;
    println!("  county: received, accepted, in-progress, completed; downward referral {down}");
    let visit = wang.store.visits(chen)?.first().map(|v| v.id).context("chen has a visit")?;
    wang.store.amend_visit(
        chen,
        visit,
        VisitAmendment {
            field: VisitField::FastingGlucoseMmolL(Some(7.4)),
            practitioner_id: "dr-wang".into(),
            reason: "lab result came back".into(),
        },
    )?;
    println!("  dr-wang, offline, corrects 陈建国's fasting glucose to 7.4 mmol/L");

    println!("\n4. Links again");
    county.sync(&relay).await?;
    wang.sync(&relay).await?;
    zhao.sync(&relay).await?;
    println!("  an idle sync:");
    wang.sync(&relay).await?;

    println!("\n5. Live: the sync agents stay connected");
    let agents: Vec<SyncAgent> = [&wang, &county]
        .iter()
        .map(|d| {
            let mut config = AgentConfig::new(relay.addr.to_string(), relay.fingerprint, d.name);
            config.debounce = Duration::from_millis(50);
            SyncAgent::start(d.store.clone(), config)
        })
        .collect::<yilian_core::Result<_>>()?;
    for (agent, name) in agents.iter().zip(["dr-wang", "county"]) {
        let status = agent.sync_and_wait(Duration::from_secs(30)).await?;
        println!("  {name}'s agent: {:?}, {} change(s) unacknowledged", status.state, status.unacknowledged);
    }
    let mut county_events = county.store.watch();
    county_events.borrow_and_update();
    let started = Instant::now();
    let village = |status: TaskStatus, note: &str| NewReferralEvent {
        status,
        by_practitioner_id: "dr-wang".into(),
        by_organization_id: SHIQIAO.into(),
        note: note.into(),
        discharge_summary: None,
    };
    wang.store.add_referral_event(down, village(TaskStatus::Received, ""))?;
    wang.store.add_referral_event(down, village(TaskStatus::Accepted, "follow-up booked"))?;
    // Wait for the county's store to commit the village's edits (no polling, no sleep).
    tokio::time::timeout(Duration::from_secs(10), async {
        while county.store.referral_status(down).map(|s| s.status).ok() != Some(TaskStatus::Accepted) {
            if county_events.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .context("the downward referral's acceptance did not reach the county within 10 s")?;
    println!(
        "  dr-wang accepts the downward referral; the county desk sees it {} ms later",
        started.elapsed().as_millis()
    );
    for agent in agents {
        agent.stop().await;
    }

    let mut held = 0;
    for d in [&wang, &zhao, &county] {
        let ids = d.store.patient_ids()?;
        for id in &ids {
            if d.store.export_json(*id)? != storage.export_json(*id)? {
                bail!("{} disagrees with the relay on record {id}", d.name);
            }
        }
        let scope = storage.scope("county")?;
        if d.name == "county" && ids.len() != scope.len() {
            bail!("the county holds {} records but its scope has {}", ids.len(), scope.len());
        }
        println!("  {:<8} holds {} record(s), each identical to the relay's", d.name, ids.len());
        held += ids.len();
    }
    if !storage.patient_ids()?.contains(&ma) || held != 4 {
        bail!("records are missing: {held} held");
    }
    let status = wang.store.referral_status(up)?;
    println!("  upward referral at dr-wang: {} ({} events)", status.status, status.history.len());
    for due in wang.store.due_follow_ups("dr-wang", today())? {
        let why: Vec<String> = due.reasons.iter().map(|r| r.describe()).collect();
        println!(
            "  dr-wang due: {} (due {}, {} days overdue): {}",
            due.name,
            due.due,
            due.days_overdue,
            why.join("; ")
        );
    }
    println!("  relay log holds {} changes", storage.last_seq()?);

    println!("\n6. dr-zhao's phone is lost: the admin revokes it");
    relay.revoke("dr-zhao", "admin", "phone reported lost")?;
    match zhao.sync(&relay).await {
        Ok(()) => bail!("a revoked phone was allowed to sync"),
        Err(e) => println!("  the lost phone tries to sync: {:#}", e),
    }
    relay.shutdown().await;
    println!("\nconverged");
    if serve {
        println!("dashboard: http://{http}/dashboard#token={token} — Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    stop_http.cancel();
    api.await??;
    Ok(())
}
