//! Whether this process may load and attach the probes.
/// `CAP_SYS_ADMIN`, `CAP_PERFMON` and `CAP_BPF` from linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
#[must_use]
pub fn effective_caps() -> u64 {
    super::procstat::own_status().map_or(0, |s| s.capeff)
}

/// Whether the capabilities needed for tracing programs are held: `CAP_BPF`
/// with `CAP_PERFMON`, or `CAP_SYS_ADMIN`.
#[must_use]
pub fn can_trace() -> bool {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}
