//! `/proc/PID/stat`, parsed by `procfs` behind a check of its shape, and
//! `/proc/PID/status`, parsed by `procfs`.
//!
//! procfs-core 0.18.0 slices the line around the command's parentheses by
//! byte index (`stat.rs`, `FromRead for Stat`): bytes outside the
//! parentheses that are not ASCII, a `(` at the very start, or a line
//! ending at the `)` make it panic (found by the `proc_text` fuzz target).
//! The kernel writes the pid and everything after the command itself, so
//! real files are never like that; the check keeps a panic out of cowprof
//! whatever the bytes.
use procfs::{
    process::{Stat, Status},
    FromRead as _,
};

/// Parses the contents of a `stat` file; `None` when it is not one.
#[must_use]
pub fn parse(bytes: &[u8]) -> Option<Stat> {
    let line = String::from_utf8_lossy(bytes);
    let line = line.trim();
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let tail = line.get(close..)?;
    let well_formed =
        open > 0 && close > open && line[..open].is_ascii() && tail.is_ascii() && tail.len() > 2;
    if !well_formed {
        return None;
    }
    Stat::from_read(bytes).ok()
}

/// The stat of `pid`, or of cowprof itself when `None`.
#[must_use]
pub fn read(pid: Option<u32>) -> Option<Stat> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    parse(&std::fs::read(path).ok()?)
}

/// Parses the contents of a `status` file; `None` when it is not one.
#[must_use]
pub fn status(bytes: &[u8]) -> Option<Status> {
    Status::from_read(bytes).ok()
}

/// The status of cowprof itself.
#[must_use]
pub fn own_status() -> Option<Status> {
    status(&std::fs::read("/proc/self/status").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_and_broken_lines() {
        let me = read(None).expect("our own stat");
        assert_eq!(me.pid, i32::try_from(std::process::id()).expect("a pid"));
        for bad in [
            &b"11211\xba(cat) R 1 2 3"[..],
            b"(cat) R 1",
            b"1 (cat)",
            b"1 (cat)\n",
            b"1 )cat( R",
            b"1 (cat) \xff",
        ] {
            assert!(parse(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        let status = own_status().expect("our own status");
        assert!(status.vmhwm.is_some_and(|kib| kib > 0));
        assert_eq!(
            status.pid,
            i32::try_from(std::process::id()).expect("a pid")
        );
    }
}
