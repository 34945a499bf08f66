//! The demo scenario: two village doctors and a county hospital referral desk record offline on
//! their own durable stores, then exchange their change logs and converge, through a closed-loop
//! referral (upward, accepted, completed, downward back to the village).
//!
//! Devices sync with a relay store through the real sync protocol (encoded frames, cursors,
//! batches) carried in process; the QUIC transport carries the same frames between machines.

use anyhow::{Context, Result, bail};
use chrono::Days;
use std::path::{Path, PathBuf};
use yilian_core::model::*;
use yilian_core::sync::{PerfectLink, sync_in_process};
use yilian_core::time::{now_ms, today};
use yilian_core::{PatientId, Store, StoreOptions};

const SHIQIAO: &str = "shiqiao-village-clinic";
const DONGHE: &str = "donghe-village-clinic";
const COUNTY: &str = "county-peoples-hospital";
const DAY: i64 = 86_400_000;

struct Device {
    name: &'static str,
    store: Store,
}

impl Device {
    fn open(dir: &Path, name: &'static str) -> Result<Device> {
        let store = Store::open(dir.join(format!("{name}.db")), StoreOptions::default())
            .with_context(|| format!("opening {name}'s store"))?;
        Ok(Device { name, store })
    }
}

/// One sync session of `device` with the relay, through real protocol frames in process.
fn sync(device: &Device, relay: &Device) -> Result<()> {
    let stats = sync_in_process(&device.store, device.name, &relay.store, relay.name, &mut PerfectLink)?;
    if let Some(e) = stats.child.error.or(stats.parent.error) {
        bail!("{} could not sync: {e}", device.name);
    }
    println!(
        "  sync {:<8} pushed {:>3}, pulled {:>3} changes; {} round trip(s), {:>6} B up, {:>6} B down{}",
        device.name,
        stats.child.sent,
        stats.child.received,
        stats.round_trips,
        stats.bytes_up,
        stats.bytes_down,
        if stats.child.synced { "" } else { " (not finished)" }
    );
    Ok(())
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

/// Runs the scenario and checks that every device ends with identical records.
pub fn run(data_dir: Option<PathBuf>) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    println!("Yilian demo — stores in {}\n", dir.display());
    let wang = Device::open(&dir, "dr-wang")?;
    let zhao = Device::open(&dir, "dr-zhao")?;
    let county = Device::open(&dir, "county")?;
    let relay = Device::open(&dir, "relay")?;

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

    println!("\n2. A link appears: everyone syncs with the consortium relay");
    sync(&wang, &relay)?;
    sync(&zhao, &relay)?;
    sync(&county, &relay)?;
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

    println!("\n4. Links again, then everyone has converged");
    sync(&county, &relay)?;
    sync(&wang, &relay)?;
    sync(&zhao, &relay)?;
    sync(&county, &relay)?;
    println!("  an idle sync:");
    sync(&wang, &relay)?;

    let devices = [&wang, &zhao, &county, &relay];
    let ids = county.store.patient_ids()?;
    for d in devices {
        if d.store.patient_ids()? != ids {
            bail!("{} holds different records", d.name);
        }
    }
    for id in &ids {
        let reference = county.store.export_json(*id)?;
        for d in devices {
            if d.store.export_json(*id)? != reference {
                bail!("{} disagrees on record {id}", d.name);
            }
        }
    }
    println!("  {} records identical on all {} devices", ids.len(), devices.len());
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
    for d in devices {
        println!("  {:<8} holds {} changes", d.name, d.store.last_seq()?);
    }
    println!("\nconverged");
    Ok(())
}
