//! The programs' in-kernel counters.
use aya::maps::{MapData, MapError, PerCpuArray, PerCpuHashMap};
use cowprof_common::{event::COMM_LEN, Kind, ProcCounts, Stat};
use serde::Serialize;

/// Counters from the kernel side, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProbeStats {
    /// Events that did not fit in the ring buffer and were lost.
    pub lost_events: u64,
    pub vma_lookup_failed: u64,
    pub pending_alloc_failed: u64,
    pub completion_unmatched: u64,
    pub target_insert_failed: u64,
    /// `bpf_find_vma` calls; every other fault's mapping came from the
    /// per-task cache.
    pub vma_lookups: u64,
    /// File path records lost; those files show as device and inode.
    pub file_records_lost: u64,
    /// Count-only mode: faults not counted per process (the table of
    /// processes was full); the kernel totals include them.
    pub process_counts_lost: u64,
    /// `--stacks`: faults whose user stack could not be taken (reported
    /// under `[no stack]`).
    pub stack_failures: u64,
    /// Lazy completion: faults whose mapping was looked up after their
    /// address space had changed (another thread mapped or unmapped memory
    /// meanwhile); their mapping is the one at the address then.
    pub late_lookups: u64,
    /// Runs of the programs that see faults (`handle_mm_fault`,
    /// `do_wp_page`, `wp_page_copy`, `page_fault_*`) the kernel skipped
    /// because the same program was already running on that CPU
    /// (`recursion_misses` of `bpf_prog_info`): an fentry program runs with
    /// only migration off, so under full or lazy preemption a task
    /// preempted inside it makes the next task on that CPU skip it. The
    /// faults those runs would have seen are missing. (Other programs'
    /// misses are their own nesting, harmless: `bpf_find_vma` takes the
    /// mmap lock inside the `mmap_lock` probe.)
    pub recursion_misses: u64,
    /// Faults per kind counted in the kernel, indexed like `Kind::ALL`.
    #[serde(skip)]
    pub kernel_counts: [u64; 6],
}

impl ProbeStats {
    pub(super) fn read(
        stats: &PerCpuArray<MapData, u64>,
        kinds: &PerCpuArray<MapData, u64>,
    ) -> Result<Self, MapError> {
        let sum = |array: &PerCpuArray<MapData, u64>, index: u32| -> Result<u64, MapError> {
            Ok(array.get(&index, 0)?.iter().sum())
        };
        let mut kernel_counts = [0; 6];
        for (slot, kind) in kernel_counts.iter_mut().zip(Kind::ALL) {
            *slot = sum(kinds, u32::from(kind as u8))?;
        }
        Ok(Self {
            lost_events: sum(stats, Stat::RingbufLost as u32)?,
            vma_lookup_failed: sum(stats, Stat::VmaLookupFailed as u32)?,
            pending_alloc_failed: sum(stats, Stat::PendingAllocFailed as u32)?,
            completion_unmatched: sum(stats, Stat::CompletionUnmatched as u32)?,
            target_insert_failed: sum(stats, Stat::TargetInsertFailed as u32)?,
            vma_lookups: sum(stats, Stat::VmaLookups as u32)?,
            file_records_lost: sum(stats, Stat::FileRecordLost as u32)?,
            process_counts_lost: sum(stats, Stat::ProcCountLost as u32)?,
            stack_failures: sum(stats, Stat::StackFailed as u32)?,
            late_lookups: sum(stats, Stat::LateLookup as u32)?,
            recursion_misses: 0,
            kernel_counts,
        })
    }
}

/// One process's faults, counted in the kernel (count-only mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedProcess {
    pub pid: u32,
    pub comm: [u8; COMM_LEN],
    /// Indexed like `Kind::ALL`.
    pub counts: [u64; 6],
}

/// Each process's counts, summed over CPUs, with its newest comm.
pub(super) fn process_counts(
    map: &PerCpuHashMap<MapData, u32, ProcCounts>,
) -> Result<Vec<CountedProcess>, MapError> {
    map.iter()
        .map(|entry| {
            let (pid, per_cpu) = entry?;
            let mut counts = [0; 6];
            for cpu in per_cpu.iter() {
                for (slot, kind) in counts.iter_mut().zip(Kind::ALL) {
                    *slot += cpu.kinds[usize::from(kind as u8)];
                }
            }
            let comm = per_cpu
                .iter()
                .max_by_key(|cpu| cpu.comm_ns)
                .map_or([0; COMM_LEN], |cpu| cpu.comm);
            Ok(CountedProcess { pid, comm, counts })
        })
        .collect()
}

/// One program's cost, from the kernel's BPF run-time statistics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramStat {
    pub program: String,
    pub runs: u64,
    /// Mean time per run, in ns (the statistics add two clock reads).
    pub mean_ns: f64,
}

/// Whether the program named `name` sees faults: a run of it skipped is a
/// fault missed, or a followed child lost (`sched_process_fork`). Misses of
/// the others are runs nested in an interrupt over one of their own, which
/// no fault of a followed task is.
#[must_use]
pub fn sees_faults(name: &str) -> bool {
    [
        "handle_mm_fault",
        "do_wp_page",
        "wp_page_copy",
        "sched_process_fork",
    ]
    .iter()
    .any(|f| name.ends_with(f))
        || name.trim_start_matches("tp_").starts_with("page_fault_")
}

/// The kernel's count of skipped runs of the program behind `fd`
/// (`recursion_misses` of `bpf_prog_info`, Linux 5.12+; `None` when the
/// kernel does not say). aya 0.14's `ProgramInfo` does not expose it.
#[must_use]
pub fn recursion_misses(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};
    use std::os::fd::AsRawFd as _;

    // SAFETY: both are plain C structs, valid when zeroed.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = u32::try_from(fd.as_raw_fd()).ok()?;
    attr.info.info_len = u32::try_from(std::mem::size_of::<bpf_prog_info>()).ok()?;
    attr.info.info = (&raw mut info) as u64;
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD writes at most `info_len` bytes to
    // `info`, which lives until the call returns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD,
            &raw mut attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    (rc == 0).then_some(info.recursion_misses)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_programs_that_see_faults() {
        for name in [
            "fentry_handle_mm_fault",
            "fexit_handle_mm_fault",
            "kretprobe_handle_mm_fault",
            "fentry_do_wp_page",
            "kprobe_wp_page_copy",
            "page_fault_user",
            "page_fault_kernel",
            "tp_page_fault_user",
            "sched_process_fork",
            "tp_sched_process_fork",
        ] {
            assert!(super::sees_faults(name), "{name}");
        }
        for name in [
            "mmap_lock_start_locking",
            "tp_mmap_lock_start_locking",
            "mm_page_alloc",
            "tp_mm_page_alloc",
            "rss_stat",
            "flush_pending",
        ] {
            assert!(!super::sees_faults(name), "{name}");
        }
    }
}
