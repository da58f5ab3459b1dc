//! Opening a profile: its manifest, and its closed events parts, each
//! checked before any is scanned so a bad file is named.
use std::path::{Path, PathBuf};

use polars::prelude::{ParquetReader, SerReader as _};

use super::{manifest::Manifest, ProfileError, EVENTS_DIR, SCHEMA_KEY, SCHEMA_VERSION};

/// A profile found on disk.
#[derive(Debug)]
pub struct Profile {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Closed events parts, in order.
    pub parts: Vec<PathBuf>,
    /// The events in each part.
    pub part_rows: Vec<u64>,
    /// Events in the parts.
    pub events: u64,
}

impl Profile {
    /// Whether the recording ended cleanly (else cowprof was killed, or
    /// failed, and the open part is missing).
    #[must_use]
    pub fn complete(&self) -> bool {
        self.manifest.complete
    }

    /// Opens the profile in `dir`.
    ///
    /// # Errors
    /// When `dir` is no profile, its manifest is unreadable or of another
    /// schema version, or a part is truncated or corrupt.
    pub fn open(dir: &Path) -> Result<Self, ProfileError> {
        let manifest = Manifest::read(dir)?;
        let events_dir = dir.join(EVENTS_DIR);
        let mut parts: Vec<PathBuf> = match std::fs::read_dir(&events_dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| is_part(p))
                .collect(),
            Err(_) => Vec::new(),
        };
        parts.sort();
        let part_rows = parts
            .iter()
            .map(|p| check_part(p))
            .collect::<Result<Vec<u64>, _>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
            events: part_rows.iter().sum(),
            parts,
            part_rows,
        })
    }

    /// Another Parquet file of the profile, checked, if it exists.
    ///
    /// # Errors
    /// When it exists but is truncated, corrupt or of another version.
    pub fn table(&self, name: &str) -> Result<Option<PathBuf>, ProfileError> {
        let path = self.dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        check_part(&path)?;
        Ok(Some(path))
    }
}

/// A closed events part: `part-NNNNN.parquet`; temporary files are hidden
/// and end in `.tmp`.
fn is_part(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
}

/// Reads a Parquet file's footer: its rows, after checking its version.
fn check_part(path: &Path) -> Result<u64, ProfileError> {
    let corrupt = |problem: String| ProfileError::Corrupt {
        path: path.to_owned(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| corrupt(e.to_string()))?;
    let mut reader = ParquetReader::new(file);
    let unreadable = |e: String| {
        corrupt(format!(
            "not a readable Parquet file ({e}); remove it or record again"
        ))
    };
    let metadata = super::contain::contained(|| reader.get_metadata().cloned())
        .map_err(unreadable)?
        .map_err(|e| unreadable(e.to_string()))?;
    let version = metadata
        .key_value_metadata()
        .as_ref()
        .and_then(|kv| kv.iter().find(|kv| kv.key == SCHEMA_KEY))
        .and_then(|kv| kv.value.as_deref()?.parse::<u32>().ok());
    match version {
        Some(SCHEMA_VERSION) => Ok(metadata.num_rows as u64),
        Some(found) => Err(ProfileError::Version {
            path: path.to_owned(),
            found,
        }),
        None => Err(corrupt(
            "not written by cowprof (no schema version)".to_owned(),
        )),
    }
}
