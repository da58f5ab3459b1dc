//! Facts about the running kernel: BTF layouts, tracefs, privileges, the
//! preemption model and `/proc/PID/stat`.
pub mod btf;
pub mod preempt;
pub mod privileges;
pub mod procstat;
pub mod tracefs;

/// The running kernel's release (`uname -r`), empty when unreadable.
#[must_use]
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `CLOCK_MONOTONIC` now, in ns: the clock of the events' `ts_ns`
/// (`bpf_ktime_get_ns`).
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}
