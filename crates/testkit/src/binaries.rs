//! The workspace's binaries, for tests that run them as a user would.
//!
//! A test target can name its own package's binaries (`CARGO_BIN_EXE_<name>`), not another
//! package's: `braze-sync`, `load-items` and `evaluate` are crates of their own. [`path`] builds
//! them once per test process with the cargo running the tests, with the flags `tests/run` builds
//! the workspace with, so the features resolve as they did for the tests and nothing is compiled
//! twice. When `tests/run` already built them, that is a no-op.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of the workspace binary `name`, built and fresh. Panics with cargo's own output when
/// the build fails: the test cannot run without it.
pub fn path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(build)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let binary = dir.join(name);
    assert!(
        binary.is_file(),
        "{} is not a binary of the workspace",
        binary.display()
    );
    binary
}

/// Builds every binary of the workspace and returns the directory they are in.
fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "--workspace", "--all-targets", "--features", "e2e"])
        .args(["--message-format", "json-render-diagnostics", "--quiet"])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --workspace failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // The directory of any binary target cargo reports (not a test, not an example) is the
    // directory of all of them.
    let is_bin = |message: &serde_json::Value| {
        let kinds = message["target"]["kind"].as_array();
        kinds.is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["profile"]["test"] == false && is_bin(message))
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .and_then(|binary| binary.parent().map(PathBuf::from))
        .ok_or_else(|| "cargo built no binary".to_owned())
}
