//! Dependencies point one way, as docs/architecture.md draws them. A rule nobody runs comes back
//! (the `config` ↔ `recommender` cycle did, twice), so these tests read what cargo and the source
//! say and fail on an edge up or across:
//! - between crates, from `cargo metadata`: each crate may use only the crates [`CRATES`] allows,
//!   and the test kit is never a product's dependency;
//! - inside the crates where the order matters, from their `crate::` and `super::` paths: a module
//!   may use only modules of lower [`Layers`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Each workspace crate and the workspace crates its code may use, products last. Dev-dependencies
/// (tests, benches, examples) are free, except that only they may use the test kit.
const CRATES: &[(&str, &[&str])] = &[
    // The domain: the item model, the ports, the request flow.
    ("personalize-braze-core", &[]),
    // The ports' adapters: AWS, and the embedded model of local mode.
    ("personalize-braze-aws", &["personalize-braze-core"]),
    ("personalize-braze-local", &["personalize-braze-core"]),
    // Local paths and S3 objects for the batch tools.
    ("personalize-braze-files", &["personalize-braze-aws"]),
    // Braze's Catalogs API, for the batch tools.
    ("personalize-braze-catalogs", &[]),
    // The HTTP contract, over the core's service alone.
    ("personalize-braze-api", &["personalize-braze-core"]),
    // The products. The function carries none of the batch tools.
    (
        "personalize-braze",
        &[
            "personalize-braze-core",
            "personalize-braze-aws",
            "personalize-braze-local",
            "personalize-braze-api",
        ],
    ),
    (
        "braze-sync",
        &[
            "personalize-braze-core",
            "personalize-braze-aws",
            "personalize-braze-local",
            "personalize-braze-catalogs",
        ],
    ),
    (
        "import-currents",
        &["personalize-braze-core", "personalize-braze-files"],
    ),
    (
        "check-datasets",
        &["personalize-braze-core", "personalize-braze-files"],
    ),
    (
        "personalize-setup",
        &[
            "personalize-braze-core",
            "personalize-braze-local",
            "personalize-braze-files",
        ],
    ),
    (
        "load-items",
        &[
            "personalize-braze-core",
            "personalize-braze-aws",
            "personalize-braze-catalogs",
        ],
    ),
    (
        "evaluate",
        &[
            "personalize-braze-core",
            "personalize-braze-aws",
            "personalize-braze-local",
        ],
    ),
    // Fakes and process helpers, written without the products' code so they check it.
    ("personalize-braze-testkit", &[]),
];

const TEST_KIT: &str = "personalize-braze-testkit";

/// (crate, dependency, is a dev-dependency) for every edge between workspace crates.
fn crate_edges(metadata: &Value) -> BTreeSet<(String, String, bool)> {
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = BTreeSet::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let target = dependency["name"].as_str().unwrap_or_default();
            if members.contains(target) {
                let dev = dependency["kind"].as_str() == Some("dev");
                edges.insert((name.to_owned(), target.to_owned(), dev));
            }
        }
    }
    edges
}

fn workspace_metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON")
}

/// The crate edges that break [`CRATES`], each with why.
fn crate_violations(
    members: &BTreeSet<String>,
    edges: &BTreeSet<(String, String, bool)>,
) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = CRATES.iter().copied().collect();
    let mut wrong: Vec<String> = members
        .iter()
        .filter(|m| !allowed.contains_key(m.as_str()))
        .map(|m| format!("{m}: a crate CRATES does not place; say what it may use"))
        .collect();
    for (from, to, dev) in edges {
        if to == TEST_KIT && !dev {
            wrong.push(format!(
                "{from} depends on {to}: the test kit is for dev-dependencies only"
            ));
        } else if !dev
            && !allowed
                .get(from.as_str())
                .is_some_and(|a| a.contains(&to.as_str()))
        {
            wrong.push(format!(
                "{from} depends on {to}: not in what CRATES lets {from} use"
            ));
        }
    }
    wrong
}

#[test]
fn crates_depend_one_way() {
    let metadata = workspace_metadata();
    let members: BTreeSet<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(members.len(), CRATES.len(), "{members:?}");
    let edges = crate_edges(&metadata);
    assert!(
        edges.contains(&("braze-sync".into(), "personalize-braze-core".into(), false)),
        "cargo metadata was read: {edges:?}"
    );
    let wrong = crate_violations(&members, &edges);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_crate_rules_fail_on_an_edge_up_or_a_batch_tool_in_the_function() {
    let members: BTreeSet<String> = CRATES.iter().map(|(c, _)| c.to_string()).collect();
    let edge = |from: &str, to: &str, dev| (from.to_owned(), to.to_owned(), dev);
    // The cycle that came back, as crates: the embedded model reaching for the configuration.
    let up = BTreeSet::from([edge("personalize-braze-local", "personalize-braze", false)]);
    assert_eq!(
        crate_violations(&members, &up),
        [
            "personalize-braze-local depends on personalize-braze: not in what CRATES lets personalize-braze-local use"
        ]
    );
    let batch_in_function = BTreeSet::from([edge("personalize-braze", "braze-sync", false)]);
    assert_eq!(crate_violations(&members, &batch_in_function).len(), 1);
    let kit = BTreeSet::from([
        edge("braze-sync", TEST_KIT, false),
        edge("personalize-braze", TEST_KIT, true),
    ]);
    assert_eq!(
        crate_violations(&members, &kit),
        [
            "braze-sync depends on personalize-braze-testkit: the test kit is for dev-dependencies only"
        ]
    );
    let mut new = members.clone();
    new.insert("a-crate-nobody-placed".to_owned());
    assert_eq!(crate_violations(&new, &BTreeSet::new()).len(), 1);
}

/// A crate's top-level modules from the bottom up: a module may use only modules of lower layers.
type Layers = &'static [&'static [&'static str]];

/// The crates whose inner order matters, with their layers.
const MODULES: &[(&str, Layers)] = &[
    (
        "crates/core",
        &[
            // The vocabulary: limits, upstream failures, encodings; Personalize's dataset rules,
            // the item model; the dataset files read by those rules.
            &["limits", "upstream", "encoding"],
            &["rules", "item", "join"],
            &["dataset"],
            // The ports.
            &["catalog", "recommender", "env"],
            // Fallback answers, then the flow over them all.
            &["fallback"],
            &["service"],
        ],
    ),
    (
        "crates/api",
        &[
            &["parameter", "metrics"],
            &["json"],
            &["query"],
            &["error", "events", "render"],
            // The layer that writes each request's line (`lib.rs`, the router, uses it).
            &["request_line"],
        ],
    ),
    (
        "crates/local",
        &[
            &["factors", "filter", "popularity", "file_catalog"],
            &["cooccurrence"],
            &["evaluation"],
            // Trains the model that predicts each dataset's own held-out events best.
            &["tuning"],
            &["embedded"],
        ],
    ),
    (".", &[&["config"], &["startup"]]),
];

/// Every (from, to) edge between top-level modules that the paths in `text` make. `nested` says
/// whether the file is below its module's own file, where `super::` is the module itself.
fn module_edges(from: &str, text: &str, nested: bool) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let prefixes: &[&str] = if nested {
            &["crate::"]
        } else {
            &["crate::", "super::"]
        };
        for prefix in prefixes {
            for (at, _) in code.match_indices(prefix) {
                // `other_crate::…` or `super::super::…` from inside are not this prefix.
                if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let target: String = code[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !target.is_empty() && target != from && target != "super" {
                    found.insert((from.to_owned(), target));
                }
            }
        }
    }
    found
}

fn source_edges(crate_dir: &str) -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("src");
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
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            // The crate root declares the modules (and in the API, routes them all).
            if parts.len() == 1 && (parts[0] == "lib.rs" || parts[0] == "main.rs") {
                continue;
            }
            let module = parts[0].trim_end_matches(".rs").to_owned();
            let nested = parts.len() > 1 && parts[1] != "mod.rs";
            let text = std::fs::read_to_string(&path).unwrap();
            all.extend(module_edges(&module, &text, nested));
        }
    }
    all
}

/// The module edges that break `layers`, each with why.
fn module_violations(layers: Layers, edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let layer = |module: &str| layers.iter().position(|l| l.contains(&module));
    let mut wrong = Vec::new();
    for (from, to) in edges {
        match (layer(from), layer(to)) {
            (Some(a), Some(b)) if b < a => {}
            (Some(_), Some(_)) => wrong.push(format!(
                "{from} uses {to}: {to} is not below {from} (see MODULES)"
            )),
            _ => wrong.push(format!(
                "{from} → {to}: a module MODULES does not place; put it in a layer"
            )),
        }
    }
    wrong
}

#[test]
fn modules_depend_one_way_inside_the_crates() {
    let mut scanned = 0;
    for (crate_dir, layers) in MODULES {
        let edges = source_edges(crate_dir);
        scanned += edges.len();
        let wrong = module_violations(layers, &edges);
        assert!(wrong.is_empty(), "{crate_dir}: {}", wrong.join("\n"));
    }
    assert!(
        source_edges("crates/core").contains(&("service".into(), "recommender".into())),
        "the scan found the source ({scanned} edges)"
    );
}

#[test]
fn the_module_rules_fail_on_the_cycle_that_came_back() {
    // `startup` using `config` is down; `config` using `startup` would close a cycle.
    let (_, layers) = MODULES.iter().find(|(dir, _)| *dir == ".").unwrap();
    let mut edges = source_edges(".");
    edges.extend(module_edges(
        "config",
        "use crate::startup::app;\n// crate::api in a comment is no edge\n",
        false,
    ));
    assert_eq!(
        module_violations(layers, &edges),
        ["config uses startup: startup is not below config (see MODULES)"]
    );
    // Inside the core, a port reaching for the flow over it.
    let (_, core) = MODULES
        .iter()
        .find(|(dir, _)| *dir == "crates/core")
        .unwrap();
    let up = module_edges("recommender", "use super::service::Service;", false);
    assert_eq!(module_violations(core, &up).len(), 1);
    // Another crate's name ending in `crate`, or a nested file's `super::`, is no edge.
    assert!(module_edges("item", "use other_crate::api;", false).is_empty());
    assert!(module_edges("catalog", "use super::lru::Lru;", true).is_empty());
}
