//! The programs' in-kernel counters.
use aya::maps::{MapData, MapError, PerCpuArray};
use cowprof_common::{Kind, Stat};
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
            kernel_counts,
        })
    }
}
