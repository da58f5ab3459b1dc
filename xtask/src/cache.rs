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

/// The workspace root: the nearest directory, from the current one up,
/// that holds `xtask/Cargo.toml` (cargo runs `cargo xtask` in the
/// directory it was called from, inside the clone). The path compiled in
/// is only a fallback: two clones sharing `CARGO_TARGET_DIR` (as CI clones
/// here do) can share one xtask binary, whose compiled-in path would name
/// the other clone.
pub fn workspace() -> PathBuf {
    let here = std::env::current_dir().ok();
    let found = here.iter().flat_map(|dir| dir.ancestors()).find(|dir| {
        dir.join("xtask").join("Cargo.toml").is_file() && dir.join("Cargo.toml").is_file()
    });
    if let Some(dir) = found {
        return dir.to_path_buf();
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
