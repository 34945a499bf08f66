//! The simulation's fixed set of seeds: 200 runs of the consortium with every fault, each
//! checked by the oracle. A failure prints the seed, the command that replays it and its trace.

use yilian_sim::oracle::Tally;
use yilian_sim::{Config, run};

#[test]
fn two_hundred_seeds_lose_leak_diverge_and_duplicate_nothing() -> anyhow::Result<()> {
    let config = Config::default();
    let mut tally = Tally::default();
    let mut reports = Vec::new();
    for seed in 0..200 {
        let outcome = run(seed, &config)?;
        tally.add(&outcome.tally);
        if !outcome.failures.is_empty() {
            reports.push(outcome.report());
        }
    }
    println!("{}", tally.summary());
    anyhow::ensure!(reports.is_empty(), "{} seed(s) failed:\n{}", reports.len(), reports.join("\n"));
    // The faults did happen: a run that injected none would prove nothing.
    anyhow::ensure!(tally.restores > 0 && tally.restored_found > 0, "{}", tally.summary());
    anyhow::ensure!(tally.relay_crashes > 0 && tally.early_deliveries > 0 && tally.cuts > 0, "{}", tally.summary());
    anyhow::ensure!(tally.synced_checks > 0 && tally.edits > 1000, "{}", tally.summary());
    Ok(())
}

#[test]
fn a_seed_replays_byte_for_byte() -> anyhow::Result<()> {
    let config = Config::default();
    for seed in [3, 1_323] {
        let (first, again) = (run(seed, &config)?, run(seed, &config)?);
        anyhow::ensure!(first.trace == again.trace, "seed {seed}: the traces differ");
        for (a, b) in first.fingerprints.iter().zip(&again.fingerprints) {
            anyhow::ensure!(a == b, "seed {seed}: {} ended with {} once and {} the next time", a.0, a.1, b.1);
        }
        anyhow::ensure!(first.fingerprints.len() == 6, "the relay and five phones: {:?}", first.fingerprints);
    }
    // The digests do tell runs apart.
    anyhow::ensure!(run(4, &config)?.fingerprints != run(3, &config)?.fingerprints);
    Ok(())
}
