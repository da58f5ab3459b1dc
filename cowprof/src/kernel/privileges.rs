//! Whether this process may load and attach the probes.
use std::fs;

/// `CAP_SYS_ADMIN`, `CAP_PERFMON` and `CAP_BPF` from linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
#[must_use]
pub fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| caps_in_status(&status))
        .unwrap_or(0)
}

/// `CapEff` of `/proc/PID/status` text.
#[must_use]
pub fn caps_in_status(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Whether the capabilities needed for tracing programs are held: `CAP_BPF`
/// with `CAP_PERFMON`, or `CAP_SYS_ADMIN`.
#[must_use]
pub fn can_trace() -> bool {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}
