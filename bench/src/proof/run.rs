//! Running the lanes: one Yilian and one automerge-repo lane per profile, all at once.

use super::dataset::{self, Dataset, Payload, Step};
use super::report::{LaneReport, ScenarioReport};
use super::{Engine, Figures, Scenario, automerge, link_bound, yilian};
use crate::link::{Link, LinkProfile};
use crate::workload::Params;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Profiles, each with a lane per engine.
    pub profiles: Vec<LinkProfile>,
    /// The consortium to sync.
    pub params: Params,
    /// Seed of the links' loss and jitter draws.
    pub seed: u64,
    /// Work directory.
    pub dir: PathBuf,
    /// The proof binary, run again as the Yilian device.
    pub program: PathBuf,
    /// How long the cut scenario's link stays down.
    pub cut: Duration,
    /// The longest automerge-repo may take for a first sync, before its cap.
    pub peer_first_cap: Duration,
    /// Its cap for the other scenarios.
    pub peer_cap: Duration,
    /// Run the automerge-repo lanes too (off: Yilian alone, for tuning runs).
    pub with_peer: bool,
    /// When the run started: progress lines on stderr say how far into it each step ends.
    pub started: Instant,
}

/// A progress line on stderr, stamped with the seconds since the run started (a default run
/// takes many minutes; these lines show which lane or step sets its length).
fn progress(plan: &Plan, what: std::fmt::Arguments<'_>) {
    eprintln!("[{:7.1} s] {what}", plan.started.elapsed().as_secs_f64());
}

/// Makes the dataset and runs every lane; returns the dataset and one report per lane.
pub async fn run(plan: &Plan) -> Result<(Arc<Dataset>, Vec<LaneReport>)> {
    let (dir, params) = (plan.dir.join("data"), plan.params.clone());
    let dataset = tokio::task::spawn_blocking(move || dataset::build(&dir, &params)).await??;
    progress(plan, format_args!("dataset built: {} documents", dataset.documents));
    let dataset = Arc::new(dataset);
    // Yilian's lanes start at once; automerge-repo's wait for its server storage to be seeded
    // (a minute in node), which runs beside them instead of before them.
    let mut lanes = tokio::task::JoinSet::new();
    for (i, profile) in plan.profiles.iter().enumerate() {
        let (profile, data, plan2) = (profile.clone(), dataset.clone(), plan.clone());
        lanes.spawn(async move { yilian_lane(lane_index(i, Engine::Yilian), profile, &data, &plan2).await });
    }
    if plan.with_peer {
        let template = automerge::seed_template(&dataset).await.context("seeding automerge-repo's server storage")?;
        progress(plan, format_args!("automerge-repo's server storage seeded"));
        for (i, profile) in plan.profiles.iter().enumerate() {
            let (profile, data, plan2, template) = (profile.clone(), dataset.clone(), plan.clone(), template.clone());
            let index = lane_index(i, Engine::AutomergeRepo);
            lanes.spawn(async move { automerge_lane(index, profile, &data, &template, &plan2).await });
        }
    }
    let mut reports = Vec::new();
    while let Some(report) = lanes.join_next().await {
        reports.push(report?);
    }
    let order =
        |r: &LaneReport| (plan.profiles.iter().position(|p| p.name == r.profile), r.engine == Engine::AutomergeRepo);
    reports.sort_by_key(order);
    Ok((dataset, reports))
}

/// What `scenario` moves, and the step the server gains first.
fn scenario_data(dataset: &Dataset, scenario: Scenario) -> (Option<&Step>, Option<Payload>) {
    match scenario {
        Scenario::First => (None, Some(dataset.base.clone())),
        Scenario::Idle => (None, None),
        Scenario::Incremental => (Some(&dataset.day), Some(dataset.day.payload.clone())),
        Scenario::Cut => (Some(&dataset.week), Some(dataset.week.payload.clone())),
    }
}

/// The link's bound for Yilian to deliver `payload`: its compressed content plus signatures at
/// the link's bandwidth, over the share of time the link is up, plus four round trips
/// (handshake, hello, changes, acknowledgement).
pub fn bound(profile: &LinkProfile, payload: &Payload) -> Duration {
    let serialization = profile.serialization(payload.compressed_bytes + payload.signature_bytes);
    serialization.div_f64(profile.availability()) + link_bound(profile, 0, 4)
}

fn cut(dataset: &Dataset, plan: &Plan, scenario: Scenario) -> Option<(u64, Duration)> {
    (scenario == Scenario::Cut).then_some((dataset.week.payload.compressed_bytes / 2, plan.cut))
}

fn scenario_report(
    scenario: Scenario,
    figures: Figures,
    payload: Option<Payload>,
    bound: Option<Duration>,
) -> ScenarioReport {
    let bytes_per_payload = payload.as_ref().map(|p| figures.wire() as f64 / p.compressed_bytes.max(1) as f64);
    ScenarioReport { scenario, figures, payload, bytes_per_payload, bound_seconds: bound.map(|b| b.as_secs_f64()) }
}

async fn yilian_lane(index: u8, profile: LinkProfile, dataset: &Dataset, plan: &Plan) -> LaneReport {
    let mut report = LaneReport {
        profile: profile.name.clone(),
        engine: Engine::Yilian,
        scenarios: Vec::new(),
        converged: None,
        error: None,
    };
    let outcome = async {
        let link = Link::start(index, profile.clone(), plan.seed + u64::from(index)).context("starting the link")?;
        let lane = yilian::Lane::start(&lane_dir(plan, index), dataset, &link, &plan.program).await?;
        for scenario in Scenario::ALL {
            let (step, payload) = scenario_data(dataset, scenario);
            if let Some(step) = step {
                step.deliver_to(lane.storage())?;
            }
            let bound = payload.as_ref().map(|p| bound(&profile, p));
            // Yilian is expected to finish: its cap only stops a run that went wrong.
            let cap = bound.unwrap_or_default() * 4 + plan.cut + Duration::from_secs(120);
            let figures = lane.run(&link, scenario, cut(dataset, plan, scenario), cap).await?;
            scenario_progress(plan, &profile, Engine::Yilian, scenario, &figures);
            if !figures.complete {
                lane.catch_up()?;
            }
            report.scenarios.push(scenario_report(scenario, figures, payload, bound));
        }
        report.converged = Some(lane.converged()?);
        lane.stop().await;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = outcome {
        report.error = Some(format!("{e:#}"));
    }
    report
}

async fn automerge_lane(
    index: u8,
    profile: LinkProfile,
    dataset: &Dataset,
    template: &Path,
    plan: &Plan,
) -> LaneReport {
    let mut report = LaneReport {
        profile: profile.name.clone(),
        engine: Engine::AutomergeRepo,
        scenarios: Vec::new(),
        converged: None,
        error: None,
    };
    let outcome = async {
        let link = Link::start(index, profile.clone(), plan.seed + u64::from(index)).context("starting the link")?;
        let mut lane = automerge::Lane::start(&lane_dir(plan, index), dataset, template, &link).await?;
        let mut delivered: Vec<&Step> = Vec::new();
        for scenario in Scenario::ALL {
            let (step, payload) = scenario_data(dataset, scenario);
            if let Some(step) = step {
                lane.deliver(step, &link).await?;
                delivered.push(step);
            }
            let cap = match scenario {
                Scenario::First => plan.peer_first_cap,
                Scenario::Cut => plan.peer_cap + plan.cut,
                _ => plan.peer_cap,
            };
            let figures = lane.run(&link, scenario, cut(dataset, plan, scenario), cap).await?;
            scenario_progress(plan, &profile, Engine::AutomergeRepo, scenario, &figures);
            if !figures.complete {
                // After the first sync the client holds the documents: only the step it missed
                // is applied (re-seeding 2,000 documents per scenario cost minutes a lane).
                let reseed = scenario == Scenario::First;
                let missed = if reseed { delivered.clone() } else { step.into_iter().collect() };
                lane.catch_up(&missed, reseed).await?;
                progress(plan, format_args!("{} AutomergeRepo: caught up without the link", profile.name));
            }
            report.scenarios.push(scenario_report(scenario, figures, payload, None));
        }
        lane.stop().await
    }
    .await;
    if let Err(e) = outcome {
        report.error = Some(format!("{e:#}"));
    }
    report
}

fn scenario_progress(plan: &Plan, profile: &LinkProfile, engine: Engine, scenario: Scenario, figures: &Figures) {
    let end = if figures.complete { "done" } else { "at its cap" };
    let what = format_args!("{} {engine:?}: {} {end} in {:.1} s", profile.name, scenario.label(), figures.seconds);
    progress(plan, what);
}

/// The lane's number: it names the link's addresses and the lane's folder (odd for Yilian, the
/// next even one for automerge-repo on the same profile).
fn lane_index(profile: usize, engine: Engine) -> u8 {
    2 * profile as u8 + 1 + u8::from(engine == Engine::AutomergeRepo)
}

fn lane_dir(plan: &Plan, index: u8) -> PathBuf {
    plan.dir.join(format!("lane-{index}"))
}
