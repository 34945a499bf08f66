//! The data every lane of the proof syncs, made once: a village doctor's records (the relay's
//! starting point), a day's work and a week's work after it, each as Yilian changes and in the
//! files the automerge-repo peer reads (the same Automerge documents and change bytes).

use crate::workload::{self, Params, Population};
use anyhow::{Context, Result, ensure};
use chrono::Duration;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use yilian_core::store::StoredChange;
use yilian_core::sync::{PerfectLink, sync_in_process};
use yilian_core::{Durability, IncomingChange, PatientId, Store, StoreOptions};

/// What must cross the link for one step, measured without any transport.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Payload {
    /// Automerge changes in it.
    pub changes: usize,
    /// The content: document saves without DEFLATE (first sync) or raw change bytes (later steps).
    pub content_bytes: u64,
    /// The content compressed with zstd at level 19: the figure "bytes / payload" divides by.
    pub compressed_bytes: u64,
    /// Yilian's Ed25519 signatures of those changes (64 bytes each, incompressible): part of what
    /// Yilian must deliver, absent from automerge-repo.
    pub signature_bytes: u64,
}

impl Payload {
    fn of(content: &[u8], changes: usize, signatures: usize) -> Result<Payload> {
        Ok(Payload {
            changes,
            content_bytes: content.len() as u64,
            compressed_bytes: zstd::bulk::compress(content, 19)?.len() as u64,
            signature_bytes: signatures as u64 * 64,
        })
    }
}

/// A step of the story: the changes the relay gains, and the file the peer's server applies.
#[derive(Clone, Debug)]
pub struct Step {
    /// The changes, in log order.
    pub changes: Vec<StoredChange>,
    /// `[u32 doc index][u32 len][change]` records for `peer.mjs apply`.
    pub peer_file: PathBuf,
    /// Its size.
    pub payload: Payload,
}

/// Everything the lanes start from.
#[derive(Debug)]
pub struct Dataset {
    /// Where the files live.
    pub dir: PathBuf,
    /// The relay's storage with the doctor's records (copied for each lane).
    pub relay_template: PathBuf,
    /// `[u32 len][Automerge save]` per document, for `peer.mjs seed`.
    pub peer_documents: PathBuf,
    /// Patient documents.
    pub documents: usize,
    /// The first sync's payload.
    pub base: Payload,
    /// A day's work: visits at the clinic and the county desk moving referrals.
    pub day: Step,
    /// The week after that day (the cut scenario's payload).
    pub week: Step,
}

/// Visits and county-desk referral events in one working day.
pub const DAY_VISITS: usize = 50;
/// Referral events in one working day.
pub const DAY_REFERRAL_EVENTS: usize = 2;
/// Working days in the cut scenario's week.
pub const WEEK_DAYS: u64 = 5;

/// Makes the dataset for `params` in `dir`.
pub fn build(dir: &Path, params: &Params) -> Result<Dataset> {
    std::fs::create_dir_all(dir)?;
    let open =
        |name: &str| Store::open(dir.join(name), StoreOptions { durability: Durability::Off, ..Default::default() });
    let source = open("source.db")?;
    let mut population = workload::populate(&source, params)?;
    let relay_template = dir.join("relay-template.db");
    {
        let relay = Store::open(&relay_template, StoreOptions::default())?;
        population.consortium.register(&relay)?;
        let report = sync_in_process(&source, "source", &relay, "relay-template", &mut PerfectLink)?;
        ensure!(report.child.synced, "the relay template did not receive the records: {report:?}");
    }
    let ids: Vec<PatientId> = population.residents.iter().map(|r| r.id).collect();
    let index: HashMap<PatientId, u32> = ids.iter().enumerate().map(|(i, id)| (*id, i as u32)).collect();
    let peer_documents = dir.join("documents.bin");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&peer_documents)?);
    let mut saves = Vec::new();
    let mut signatures = 0;
    for id in &ids {
        let snapshot = source.document_snapshot(*id)?;
        file.write_all(&(snapshot.bytes.len() as u32).to_le_bytes())?;
        file.write_all(&snapshot.bytes)?;
        // The payload is measured at its smallest: saves without DEFLATE, which zstd then shares
        // across records (half the size of the DEFLATEd saves compressed together).
        saves.extend_from_slice(&automerge::Automerge::load(&snapshot.bytes)?.save_nocompress());
        signatures += snapshot.signatures.len();
    }
    file.flush()?;
    let base = Payload::of(&saves, source.last_seq()? as usize, signatures)?;
    let day = step(&source, &mut population, &index, dir.join("day.bin"), 1..=1)?;
    let week = step(&source, &mut population, &index, dir.join("week.bin"), 2..=1 + WEEK_DAYS)?;
    Ok(Dataset { dir: dir.to_path_buf(), relay_template, peer_documents, documents: ids.len(), base, day, week })
}

/// Working days `days` (counted from the population's `as_of`) on `source`, returned as a step.
fn step(
    source: &Store,
    population: &mut Population,
    index: &HashMap<PatientId, u32>,
    peer_file: PathBuf,
    days: std::ops::RangeInclusive<u64>,
) -> Result<Step> {
    let before = source.last_seq()?;
    let open = population.residents.iter().filter(|r| r.open_referral.is_some()).count();
    for n in days {
        let date = population.params.as_of + Duration::days(n as i64);
        let seed = population.params.seed + n;
        workload::day_of_work(source, population, date, DAY_VISITS, DAY_REFERRAL_EVENTS.min(open), seed)?;
    }
    let changes = source.changes_since(before, usize::MAX)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&peer_file)?);
    let mut content = Vec::new();
    for change in &changes {
        let doc = index.get(&change.doc_id).with_context(|| format!("change to unknown document {}", change.doc_id))?;
        file.write_all(&doc.to_le_bytes())?;
        file.write_all(&(change.bytes.len() as u32).to_le_bytes())?;
        file.write_all(&change.bytes)?;
        content.extend_from_slice(&change.bytes);
    }
    file.flush()?;
    let signed = changes.iter().filter(|c| c.signature.is_some()).count();
    let payload = Payload::of(&content, changes.len(), signed)?;
    Ok(Step { changes, peer_file, payload })
}

impl Step {
    /// Hands the step's changes to a relay's storage (they were made elsewhere in the consortium).
    pub fn deliver_to(&self, relay: &Store) -> Result<()> {
        let changes = self
            .changes
            .iter()
            .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes.clone(), signature: c.signature.clone() })
            .collect();
        relay.apply_remote_changes(changes)?;
        Ok(())
    }
}
