//! Finding the shared data (conformance suites, corpora) beside the checkout.
//!
//! One environment variable, `PTT_SHARED`, names the folder; without it the
//! default is `../shared` relative to the workspace root. When the variable is
//! unset and the folder is missing (a user's fresh clone), tests that need it
//! print that they were skipped and why. When the variable is set (as `.ci/run`
//! does), a missing suite is a failure.

use std::path::{Path, PathBuf};

/// The environment variable that names the shared data folder.
pub const ENV: &str = "PTT_SHARED";

/// Where the shared data is, and whether its absence is an error.
#[derive(Debug, Clone)]
pub struct SharedData {
    /// The folder.
    pub root: PathBuf,
    /// True when `PTT_SHARED` named it explicitly.
    pub required: bool,
}

impl SharedData {
    /// Reads `PTT_SHARED`, or falls back to `../shared` beside the workspace.
    pub fn locate() -> Self {
        match std::env::var_os(ENV) {
            Some(dir) if !dir.is_empty() => SharedData {
                root: PathBuf::from(dir),
                required: true,
            },
            _ => SharedData {
                root: workspace_root().join("..").join("shared"),
                required: false,
            },
        }
    }
}

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ptt-testkit sits inside the workspace")
        .to_path_buf()
}

/// The path of `relative` inside the shared data, or `None` after printing why
/// the calling test is skipped.
///
/// Panics when `PTT_SHARED` is set and the path does not exist, so that CI
/// never passes with a suite missing.
pub fn shared_suite(relative: &str) -> Option<PathBuf> {
    let shared = SharedData::locate();
    let path = shared.root.join(relative);
    if path.exists() {
        return Some(path);
    }
    if shared.required {
        panic!(
            "{ENV}={} is set but {} does not exist: the suite is missing",
            shared.root.display(),
            path.display()
        );
    }
    println!(
        "skipped: {} not found; set {ENV} to the folder that holds the shared \
         conformance data and corpora to run this test",
        path.display()
    );
    None
}
