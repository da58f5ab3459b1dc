//! Where setup keeps what it builds: outside the clone, so a new clone on the
//! same machine (CI) starts warm.
use std::path::PathBuf;

/// `$COWPROF_CACHE_DIR`, else `~/.cache/cowprof`.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COWPROF_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache").join("cowprof")
}

/// The workspace root (xtask's parent).
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
