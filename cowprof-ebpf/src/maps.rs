//! Maps and the load-time configuration shared by every probe.

use core::ptr;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf, StackTrace},
};
use cowprof_common::{
    event::{MAX_COUNTED, MAX_TARGETS},
    Config, FileKey, ProcCounts, Stat,
};

/// Processes (tgids) to follow when not system-wide. Userspace seeds it; the
/// fork probe adds every descendant.
#[map]
pub static TARGETS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Classified faults. Userspace sizes it at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Files whose path was already sent to userspace.
#[map]
pub static SEEN_FILES: LruHashMap<FileKey, u8> = LruHashMap::with_max_entries(16_384, 0);

/// User stacks of faults (`--stacks`).
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(16_384, 0);

/// Counters indexed by [`Stat`].
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

/// Faults per kind, indexed by the kind's discriminant; counted in the kernel
/// so that totals stay exact even when the ring buffer overflows.
#[map]
pub static KIND_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(8, 0);

/// Written by userspace: slot 0 non-zero once the recording stops, so lazy
/// completion opens no new faults and the final flush sees every record.
#[map]
pub static CONTROL: Array<u32> = Array::with_max_entries(1, 0);

/// Whether the recording is stopping (see [`CONTROL`]).
#[inline(always)]
pub fn stopping() -> bool {
    CONTROL.get(0).is_some_and(|flag| *flag != 0)
}

/// Faults per process by kind, when no events are sent (count-only mode).
#[map]
pub static PROC_COUNTS: PerCpuHashMap<u32, ProcCounts> =
    PerCpuHashMap::with_max_entries(MAX_COUNTED, 0);

/// Set by userspace before load (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static CONFIG: Config = Config {
    self_tgid: 0,
    system_wide: 0,
    debug: 0,
    wakeup_bytes: 0,
    stacks: 0,
    attribution: 0,
    emit: 1,
    latency: 0,
    lazy: 0,
    _pad: 0,
    offsets: cowprof_common::Offsets {
        vma_vm_start: 0,
        vma_vm_end: 0,
        vma_vm_pgoff: 0,
        vma_vm_flags: 0,
        vma_vm_file: 0,
        file_f_inode: 0,
        inode_i_ino: 0,
        inode_i_sb: 0,
        sb_s_dev: 0,
        task_pid: 0,
        task_tgid: 0,
        task_mm: 0,
        mm_lock_seq: 0,
        vmf_page: 0,
        page_mapping: 0,
        rss_stat_exact: 0,
        file_dentry: 0,
        dentry_name: 0,
        dentry_parent: 0,
        vma_vm_mm: 0,
        mm_start_brk: 0,
        mm_brk: 0,
        mm_start_stack: 0,
        vma_anon_name: 0,
        task_flags: 0,
        task_comm: 0,
        mm_mm_rb: 0,
        vma_vm_rb: 0,
    },
    exc_page_fault: [0, 0],
    tracepoints: cowprof_common::TpOffsets {
        page_alloc_order: 0,
        page_alloc_gfp: 0,
        rss_member: 0,
        fork_child_pid: 0,
        fault_address: 0,
        fault_ip: 0,
        fault_error_code: 0,
        mmap_lock_mm: 0,
    },
};

/// The configuration. Its address passes through a volatile load, so the
/// compiler cannot fold the placeholder values above, and each use loads
/// only the field it reads. (A volatile read of the whole struct loaded all
/// 40 fields at every call.) The verifier still sees a read-only map value
/// and prunes the branches it decides.
#[inline(always)]
pub fn config() -> &'static Config {
    let address = &raw const CONFIG;
    // SAFETY: a volatile read of a local holding CONFIG's address, which is
    // valid and aligned for the program's lifetime.
    unsafe { &*ptr::read_volatile(&raw const address) }
}

/// Adds one to a statistics counter.
#[inline(always)]
pub fn count(stat: Stat) {
    bump(&STATS, stat as u32);
}

#[inline(always)]
pub fn bump(array: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = array.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, preemption is disabled while a program runs.
        unsafe { *slot += 1 };
    }
}

/// Whether faults of `tgid` are traced.
#[inline(always)]
pub fn is_target(tgid: u32) -> bool {
    let config = config();
    if tgid == config.self_tgid {
        return false;
    }
    // SAFETY: the value is only tested for presence.
    config.system_wide != 0 || unsafe { TARGETS.get(&tgid).is_some() }
}
