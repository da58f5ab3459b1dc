//! Profiles on disk: a directory of Parquet files and a manifest, written
//! while recording (`record -o DIR`) and read back by `cowprof report`.
//! `docs/schema.md` documents every file and column.
//!
//! ```text
//! DIR/profile.json               the manifest
//! DIR/events/part-NNNNN.parquet  one row per fault; closed parts only
//! DIR/processes.parquet          written at the end
//! DIR/mappings.parquet
//! DIR/pages.parquet              the touch map, page by page
//! DIR/exits.parquet              the processes retired, where
//! ```
//!
//! Reading goes through the model: [`feed`] groups the events into
//! `cowprof_model::state::State`, [`dictionary`] names them.
pub mod contain;
pub mod dictionary;
pub mod feed;
#[cfg(test)]
mod feed_tests;
pub mod frames;
pub mod manifest;
pub mod offline;
pub mod read;
pub mod scan;
pub mod sink;
pub mod timeline;
pub mod verb;
pub mod writer;

use std::path::PathBuf;

/// The version of the profile format; readers refuse others.
pub const SCHEMA_VERSION: u32 = 1;
/// The key of the format version in each Parquet file's key-value metadata.
pub const SCHEMA_KEY: &str = "cowprof.schema_version";
/// The manifest's name in a profile directory.
pub const MANIFEST: &str = "profile.json";
/// The events parts' directory.
pub const EVENTS_DIR: &str = "events";

/// Why a profile cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot write {path}: {source}; check the directory is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Parquet { path: PathBuf, problem: String },
    #[error(
        "{0} is not a cowprof profile (no {MANIFEST}); record one with `cowprof record -o DIR`"
    )]
    NotAProfile(PathBuf),
    #[error("{path}: unreadable manifest: {problem}")]
    Manifest { path: PathBuf, problem: String },
    #[error("{path}: schema version {found} is not {SCHEMA_VERSION}; read it with the cowprof that wrote it")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: {problem}")]
    Corrupt { path: PathBuf, problem: String },
}

impl ProfileError {
    /// The exit code `report` uses for this error (documented in its help).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            ProfileError::Write { .. } | ProfileError::Parquet { .. } => exit::OUTPUT,
            ProfileError::NotAProfile(_) => exit::NOT_A_PROFILE,
            ProfileError::Manifest { .. } | ProfileError::Corrupt { .. } => exit::CORRUPT,
            ProfileError::Version { .. } => exit::VERSION,
        }
    }
}
