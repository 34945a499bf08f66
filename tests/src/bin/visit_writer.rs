//! Records visits in a loop, round-robin over a few residents, and prints `<patient> <visit>` once
//! `record_visit` has returned, so a test can kill this process with SIGKILL at any instant and
//! then check that every printed visit is in the store.
//!
//! Usage: `visit_writer <store path>`

use std::io::Write;
use yilian_core::{Store, StoreOptions};

const RESIDENTS: usize = 8;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: visit_writer <store path>"))?;
    let store = Store::open(&path, StoreOptions { compact_every: 8, ..StoreOptions::default() })?;
    let mut patients = store.patient_ids()?;
    while patients.len() < RESIDENTS {
        patients.push(store.create_patient(yilian_tests::resident(&format!("崩溃测试{}", patients.len())))?);
    }
    let mut out = std::io::stdout().lock();
    for n in 0u64.. {
        let patient = patients[(n as usize) % patients.len()];
        let visit = store.record_visit(patient, yilian_tests::follow_up_visit(n))?;
        writeln!(out, "{patient} {visit}")?;
        out.flush()?;
    }
    Ok(())
}
