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
