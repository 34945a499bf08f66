//! The documentation points at files that exist: every repository path a README or a document
//! under `docs/` names (in backticks or as a link) is checked against the tree.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Paths a markdown text names: `code spans` and link targets that look like repository paths.
fn named_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push(part.to_string());
        }
    }
    for piece in text.split("](").skip(1) {
        if let Some(end) = piece.find(')') {
            out.push(piece[..end].to_string());
        }
    }
    const ROOTS: [&str; 9] = ["core/", "relay/", "ffi/", "android/", "ios/", "tests/", "scripts/", "docs/", ".ci/"];
    out.into_iter()
        .map(|p| p.trim_start_matches("../").to_string())
        .filter(|p| ROOTS.iter().any(|root| p.starts_with(root)))
        // Patterns and placeholders name no single file.
        .filter(|p| !p.contains(['{', '*', '<', ' ', '…', '#']))
        .collect()
}

#[test]
fn every_path_the_documentation_names_exists() {
    let root = repository();
    let mut documents = vec![root.join("README.md"), root.join("android/README.md"), root.join("ios/README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        documents.push(entry.unwrap().path());
    }
    let mut missing = Vec::new();
    let mut checked = 0;
    for document in documents.iter().filter(|d| d.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(document).unwrap();
        let base = if document.starts_with(root.join("docs")) { root.join("docs") } else { root.clone() };
        for path in named_paths(&text) {
            checked += 1;
            let exists = root.join(&path).exists() || base.join(&path).exists();
            if !exists {
                missing.push(format!("{}: {path}", document.strip_prefix(&root).unwrap_or(document).display()));
            }
        }
    }
    assert!(missing.is_empty(), "paths named but not in the repository:\n{}", missing.join("\n"));
    assert!(checked > 50, "only {checked} paths found: the check reads nothing");
}
