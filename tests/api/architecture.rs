//! Dependencies point one way, as docs/architecture.md says: every `crate::` path in
//! `src/` must lead to a lower layer. A rule nobody runs comes back (the `config` ↔ `recommender`
//! cycle did, twice), so this test reads the source and fails on an edge up or across.

use std::collections::BTreeSet;
use std::path::Path;

/// The library's modules, from the bottom up. A module may use only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    // The shared vocabulary: limits, upstream failures, the item model, the dataset readers,
    // decoding and backoff.
    &["limits", "upstream", "item", "dataset", "encoding"],
    // What is computed from it: the request line's metrics, offline evaluation.
    &["metrics", "evaluation"],
    // The ports and their adapters.
    &["catalog", "recommender"],
    // The flows over the ports: a request, a batch file into Braze.
    &["service", "sync"],
    // HTTP.
    &["api"],
    // The environment, read once.
    &["config"],
    // The one wiring.
    &["startup"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every (from, to) edge between top-level modules that `crate::` paths in `text` make.
fn edges(from: &str, text: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            // `personalize_braze::…` names the crate from outside; only `crate::` is a module edge.
            if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + "crate::".len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !target.is_empty() && target != from {
                found.insert((from.to_owned(), target));
            }
        }
    }
    found
}

fn source_edges() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = BTreeSet::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            // The binaries use the library from outside; lib.rs only declares the modules.
            if first == "bin" || first == "main.rs" || first == "lib.rs" {
                continue;
            }
            let module = first.trim_end_matches(".rs").to_owned();
            all.extend(edges(&module, &std::fs::read_to_string(&path).unwrap()));
        }
    }
    all
}

/// The edges that break the layering, each with why.
fn violations(edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, to) in edges {
        match (layer(from), layer(to)) {
            (Some(a), Some(b)) if b < a => {}
            (Some(_), Some(_)) => wrong.push(format!(
                "{from} uses {to}: {to} is not below {from} (see LAYERS)"
            )),
            _ => wrong.push(format!(
                "{from} → {to}: a module LAYERS does not place; put it in a layer"
            )),
        }
    }
    wrong
}

#[test]
fn dependencies_point_one_way() {
    let edges = source_edges();
    assert!(
        edges.contains(&("service".into(), "recommender".into())),
        "the scan found the source: {edges:?}"
    );
    let wrong = violations(&edges);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_cycle_that_came_back_would_fail_it() {
    // `recommender/local.rs` importing `config` once more, beside `config` importing
    // `recommender` (as it does).
    let mut edges = source_edges();
    edges.extend(super::architecture::edges(
        "recommender",
        "use crate::config::{LOCAL_RECOMMENDERS, Promotion};\n// crate::api in a comment is no edge\n",
    ));
    let wrong = violations(&edges);
    assert_eq!(
        wrong,
        vec!["recommender uses config: config is not below recommender (see LAYERS)".to_owned()]
    );
    // Another crate's name ending in `crate` is not this crate.
    assert!(edges_of("use other_crate::api;").is_empty());
}

fn edges_of(text: &str) -> BTreeSet<(String, String)> {
    edges("item", text)
}
