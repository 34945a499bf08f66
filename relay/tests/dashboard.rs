//! The console's message catalogues: both languages have every key, and every key the page uses
//! (in its HTML, in its script, and for every status, urgency, direction and side the API sends)
//! is in them.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use yilian_core::model::{Direction, TaskStatus, Urgency};
use yilian_relay::http::dashboard::CATALOGUES;

fn keys(catalogue: &str) -> BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(catalogue).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_string_the_console_shows_is_in_both_catalogues() {
    let (zh, en) = (keys(CATALOGUES[0].1), keys(CATALOGUES[1].1));
    assert_eq!(zh.symmetric_difference(&en).collect::<Vec<_>>(), Vec::<&String>::new(), "keys in one catalogue only");
    let html = include_str!("../dashboard/index.html");
    let script = include_str!("../dashboard/app.js");
    let mut used = BTreeSet::new();
    for attribute in ["data-i18n=\"", "data-i18n-aria=\""] {
        used.extend(html.split(attribute).skip(1).filter_map(|s| s.split('"').next()).map(str::to_string));
    }
    // Calls of `t('key'`, not of other functions whose name ends in t (`get('token')`).
    for (at, _) in script.match_indices("t('") {
        let before = script[..at].chars().next_back().unwrap_or(' ');
        if !(before.is_alphanumeric() || before == '_' || before == '.' || before == '$') {
            used.extend(script[at + 3..].split('\'').next().map(str::to_string));
        }
    }
    // Keys listed for a table's headings: `['worklist.resident', ...].map((k) => t(k))`.
    used.extend(
        script
            .split('\'')
            .filter(|s| s.contains('.') && s.chars().all(|c| c.is_ascii_lowercase() || "._-0123456789".contains(c)))
            .filter(|s| zh.iter().any(|k| k.split('.').next() == s.split('.').next()))
            .map(str::to_string),
    );
    let json = |v: String| v.trim_matches('"').to_string();
    for status in TaskStatus::ALL {
        used.insert(format!("status.{}", status.as_str()));
    }
    for urgency in [Urgency::Routine, Urgency::Urgent, Urgency::Emergency] {
        used.insert(format!("urgency.{}", json(serde_json::to_string(&urgency).unwrap())));
    }
    for direction in [Direction::Upward, Direction::Downward] {
        used.insert(format!("direction.{}", json(serde_json::to_string(&direction).unwrap())));
    }
    used.extend(["side.incoming".to_string(), "side.outgoing".to_string()]);
    assert!(used.len() > 40, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|k| !zh.contains(*k)).collect();
    assert!(missing.is_empty(), "keys the page uses but the catalogues lack: {missing:?}");
}
