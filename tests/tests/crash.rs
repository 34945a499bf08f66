//! Kill -9 at random moments: a child process records visits in a loop and is killed with
//! SIGKILL; after every restart, every visit whose call had returned is in the store and the store
//! opens cleanly.

use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yilian_core::{PatientId, Store, StoreOptions, VisitId};

const KILLS: usize = 24;

#[test]
fn every_returned_visit_survives_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("device.db");
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acknowledged: BTreeSet<(PatientId, VisitId)> = BTreeSet::new();

    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_visit_writer"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut reader = BufReader::new(stdout);
        // Kill after a random number of acknowledged writes, sometimes before the first one.
        let writes_before_kill = rng.gen_range(0..40usize);
        let mut line = Vec::new();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen < writes_before_kill && Instant::now() < deadline {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            record(&line, &mut acknowledged)?;
            seen += 1;
        }
        child.kill()?; // SIGKILL on Unix
        child.wait()?;
        // Lines the child completed before it died are still in the pipe.
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            record(&line, &mut acknowledged)?;
        }

        let store = Store::open(&path, StoreOptions::default())?;
        store.check_integrity()?;
        if acknowledged.is_empty() {
            continue;
        }
        let mut stored = BTreeSet::new();
        for patient in store.patient_ids()? {
            stored.extend(store.visits(patient)?.into_iter().map(|v| (patient, v.id)));
        }
        let missing: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(missing.is_empty(), "round {round}: acknowledged visits lost: {missing:?} (seed {seed})");
    }
    assert!(
        acknowledged.len() > KILLS,
        "the writer made too little progress to prove anything: {}",
        acknowledged.len()
    );
    println!("{} kills, {} acknowledged visits all present", KILLS, acknowledged.len());
    Ok(())
}

/// Records a complete line (`<patient> <visit>`); a line cut by the kill has no newline and was
/// never acknowledged.
fn record(line: &[u8], acknowledged: &mut BTreeSet<(PatientId, VisitId)>) -> anyhow::Result<()> {
    if let Some(text) = line.strip_suffix(b"\n") {
        let (patient, visit) = std::str::from_utf8(text)?
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad line {:?}", String::from_utf8_lossy(text)))?;
        acknowledged.insert((patient.parse()?, visit.parse()?));
    }
    Ok(())
}
