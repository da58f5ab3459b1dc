//! `profile.json`: what a profile is and whether it is whole. Written when
//! recording starts (incomplete) and again when it ends, each time to a
//! temporary file that is synced and renamed, so it is never half-written.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ProfileError, MANIFEST, SCHEMA_VERSION};

/// The manifest of a profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub cowprof_version: String,
    /// The kernel release recorded on.
    pub kernel: String,
    pub strategy: String,
    /// What was recorded: the command line, `pid N` or `all`.
    pub target: String,
    /// Wall-clock start, in ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// `bpf_ktime_get_ns()` (`CLOCK_MONOTONIC`) at the start: events' `ts_ns`
    /// minus this is the time since the start.
    pub start_ktime_ns: u64,
    pub duration_s: f64,
    /// Whether the recording ended cleanly and every file is whole.
    pub complete: bool,
    /// Events parts written, in order (relative to the profile directory).
    pub parts: Vec<String>,
    /// Events written to the parts.
    pub events_written: u64,
    /// Events the writer could not take in time: not in the parts.
    pub events_dropped: u64,
    /// Events the kernel could not send (ring buffer full): not recorded.
    pub lost_events: u64,
    /// Faults per kind as the kernel counted them (lost ones included).
    pub kernel_totals: std::collections::BTreeMap<String, u64>,
    /// Why the recording stopped, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Problems that make the profile incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// A manifest for a recording starting now.
    #[must_use]
    pub fn start(strategy: &str, target: String, start_ktime_ns: u64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            cowprof_version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel: crate::kernel::release(),
            strategy: strategy.to_owned(),
            target,
            start_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            start_ktime_ns,
            ..Self::default()
        }
    }

    /// Writes the manifest into `dir`, atomically.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), ProfileError> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_vec_pretty(self).map_err(|e| ProfileError::Write {
            path: path.clone(),
            source: e.into(),
        })?;
        write_atomically(&path, &text)
    }

    /// Reads the manifest of the profile in `dir`.
    ///
    /// # Errors
    /// When there is none, it is not JSON of this shape, or of another
    /// schema version.
    pub fn read(dir: &Path) -> Result<Self, ProfileError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|_| ProfileError::NotAProfile(dir.to_owned()))?;
        Self::from_json(&text, path)
    }

    /// Parses manifest bytes read from `path`.
    ///
    /// # Errors
    /// When they are not JSON of this shape, or of another schema version.
    pub fn from_json(text: &[u8], path: PathBuf) -> Result<Self, ProfileError> {
        let version: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| ProfileError::Manifest {
                path: path.clone(),
                problem: e.to_string(),
            })?;
        let found = version["schema_version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ProfileError::Manifest {
                path: path.clone(),
                problem: "no schema_version".to_owned(),
            })?;
        if found != SCHEMA_VERSION {
            return Err(ProfileError::Version { path, found });
        }
        serde_json::from_value(version).map_err(|e| ProfileError::Manifest {
            path,
            problem: e.to_string(),
        })
    }
}

/// Writes `data` to `path` through a synced temporary file and a rename
/// ([`crate::output::write_atomically`]), private unless `--mode` says
/// otherwise.
///
/// # Errors
/// When any step fails.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), ProfileError> {
    crate::output::write_atomically(path, data).map_err(|source| ProfileError::Write {
        path: path.to_owned(),
        source,
    })
}
