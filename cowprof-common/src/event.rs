//! Records that cross the kernel/userspace boundary.
#![expect(
    clippy::pub_underscore_fields,
    reason = "explicit padding of repr(C) records, public so both sides can build them"
)]

use crate::classify::FaultFacts;

/// Length of a task's `comm`.
pub const COMM_LEN: usize = 16;

/// The mapping a fault hit, as read from its `vm_area_struct`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaInfo {
    pub vm_start: u64,
    pub vm_end: u64,
    /// `vm_pgoff`, in pages.
    pub vm_pgoff: u64,
    pub vm_flags: u64,
    /// `vm_file->f_inode->i_ino`, 0 for anon mappings.
    pub ino: u64,
    /// `vm_file->f_inode->i_sb->s_dev` (kernel `dev_t`: major << 20 | minor).
    pub dev: u32,
    /// Non-zero when the mapping has a file.
    pub file_backed: u32,
    /// For anon mappings: one of the `ANON_*` labels.
    pub anon_kind: u32,
    pub _pad: u32,
}

/// `VmaInfo::anon_kind`: an anon mapping without a label.
pub const ANON_PLAIN: u32 = 0;
/// The mapping holds `mm->brk` (`[heap]`).
pub const ANON_HEAP: u32 = 1;
/// The mapping holds `mm->start_stack` (`[stack]`).
pub const ANON_STACK: u32 = 2;
/// Named with `PR_SET_VMA_ANON_NAME` (`[anon:NAME]`); `ino` then identifies
/// the name, sent as a [`FileRecord`] with `dev == ANON_NAME_DEV`.
pub const ANON_NAMED: u32 = 3;
/// The `dev` of name records of named anon mappings.
pub const ANON_NAME_DEV: u32 = u32::MAX;

/// For an anon mapping that starts where an image's writable file mapping
/// ends (that image's `.bss`, as Android's showmap labels it): the image,
/// and `base = prev.vm_start - prev.vm_pgoff * PAGE_SIZE`, the address file
/// offset 0 of that segment's mapping would have. `addr - base` is then a
/// file offset in the segment's memory image, `.bss` included.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BssInfo {
    pub base: u64,
    pub ino: u64,
    pub dev: u32,
    /// Non-zero when the anon mapping follows an image.
    pub found: u32,
}

/// Per-task state of a fault in progress, kept in task storage between the
/// fault's entry and its completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    pub addr: u64,
    pub ip: u64,
    pub start_ns: u64,
    pub error_code: u32,
    /// Non-zero while a write fault is in flight.
    pub active: u32,
    pub allocs: u32,
    pub alloc_zeroed: u32,
    pub file_to_anon: u32,
    pub vma_found: u32,
    /// Non-zero between a `VM_FAULT_RETRY` return and the retried call
    /// (fentry and kprobe strategies).
    pub retrying: u32,
    /// Non-zero when `wp_page_copy` was seen and told whether the old page
    /// was a page-cache page (fentry and kprobe strategies on v6.1).
    pub copy_seen: u32,
    /// Lazy completion: the user stack taken at entry (`--stacks`), or -1.
    pub stack_id: i32,
    /// Non-zero once the writer's mapping was found for this record (in
    /// `TaskState::code_cache`).
    pub code_found: u32,
    /// Non-zero when `seq` was read at entry.
    pub seq_known: u32,
    /// Lazy completion: `mm_lock_seq` and `task->mm` at entry, so a lookup
    /// made after the fault can tell whether the address space changed.
    pub seq: u32,
    pub mm: u64,
    /// Lazy completion of a kernel-mode fault: the syscall (user `orig_ax`
    /// and `ip`) it happened in; an allocation belongs to the fault only
    /// within that syscall and with `exc_page_fault` on the kernel stack.
    pub sys_nr: u64,
    pub sys_ip: u64,
    pub vma: VmaInfo,
    pub bss: BssInfo,
}

impl Pending {
    /// The facts classification needs.
    #[must_use]
    pub const fn facts(&self) -> FaultFacts {
        FaultFacts {
            error_code: self.error_code,
            vm_flags: self.vma.vm_flags,
            file_backed: self.vma.file_backed,
            vma_found: self.vma_found,
            allocs: self.allocs,
            alloc_zeroed: self.alloc_zeroed,
            file_to_anon: self.file_to_anon,
        }
    }
}

/// The last mapping a task looked up, valid while the mm's `mm_lock_seq`
/// (bumped whenever the mmap write lock is released) is unchanged.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VmaCache {
    pub vma: VmaInfo,
    pub bss: BssInfo,
    pub seq: u32,
    /// Non-zero when `vma` and `seq` hold a lookup.
    pub valid: u32,
}

impl VmaCache {
    /// The cached mapping, if it still covers `addr` at sequence `seq`.
    #[must_use]
    pub const fn hit(&self, addr: u64, seq: u32) -> Option<VmaInfo> {
        if self.covers(addr, seq) {
            Some(self.vma)
        } else {
            None
        }
    }

    /// Whether the cached mapping holds `addr` and is still current.
    #[must_use]
    pub const fn covers(&self, addr: u64, seq: u32) -> bool {
        self.valid != 0 && self.seq == seq && self.vma.vm_start <= addr && addr < self.vma.vm_end
    }
}

/// Everything a probe keeps per task (in task storage).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskState {
    pub pending: Pending,
    /// The mapping last written to.
    pub cache: VmaCache,
    /// The mapping of the last writing instruction.
    pub code_cache: VmaCache,
    /// Non-zero once the task was found in the follow set: its process
    /// stays followed until it exits, so later faults skip the lookup.
    pub followed: u32,
    pub _pad: u32,
}

/// Ring buffer record tags: every record starts with one.
pub const TAG_FAULT: u32 = 1;
pub const TAG_FILE: u32 = 2;

/// One classified fault, as sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultEvent {
    /// [`TAG_FAULT`].
    pub tag: u32,
    /// A [`crate::Kind`] discriminant.
    pub kind: u8,
    pub _pad: u8,
    /// The CPU the fault completed on.
    pub cpu: u16,
    /// `bpf_ktime_get_ns()` at completion.
    pub ts_ns: u64,
    /// Fault entry to completion, in ns.
    pub latency_ns: u64,
    /// The faulting user address.
    pub addr: u64,
    /// The instruction that wrote (user `ip`).
    pub ip: u64,
    /// The mapping written to.
    pub vma: VmaInfo,
    /// The image whose `.bss` an anon mapping is, if any.
    pub bss: BssInfo,
    /// The mapping of the writing instruction (`vm_start` 0 when unknown),
    /// so the writer can be symbolized after the process is gone.
    pub code: VmaInfo,
    /// Process (tgid) and thread (pid) of the writer.
    pub pid: u32,
    pub tid: u32,
    pub error_code: u32,
    /// The user stack's id in the `STACKS` map (`--stacks`), or -1.
    pub stack_id: i32,
    pub comm: [u8; COMM_LEN],
}

/// Path components kept per file: the name and up to this many ancestors.
pub const PATH_DEPTH: usize = 8;
/// Bytes kept per path component (NUL included).
pub const NAME_LEN: usize = 64;

/// A file's path, sent once per (dev, inode) the first time a mapping of it
/// is seen, so a process that exits at once is still attributed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileRecord {
    /// [`TAG_FILE`].
    pub tag: u32,
    /// Components filled in `names`; the last reached the file system root
    /// when `depth < PATH_DEPTH`.
    pub depth: u32,
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
    /// `names[0]` is the file's own name, then its parent's, and so on.
    pub names: [[u8; NAME_LEN]; PATH_DEPTH],
}

/// Key of the in-kernel set of files already announced.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

impl FileKey {
    /// The key of inode `ino` on device `dev` (kernel `dev_t` encoding).
    #[must_use]
    pub const fn new(ino: u64, dev: u32) -> Self {
        Self { ino, dev, _pad: 0 }
    }
}

/// Byte offsets of kernel struct fields, read from the running kernel's BTF
/// by userspace and handed to the programs, so one object runs on every
/// kernel without compile-time struct layouts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub vma_vm_start: u32,
    pub vma_vm_end: u32,
    pub vma_vm_pgoff: u32,
    pub vma_vm_flags: u32,
    pub vma_vm_file: u32,
    pub file_f_inode: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub sb_s_dev: u32,
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_mm: u32,
    /// `mm_struct.mm_lock_seq` (v6.4+, per-VMA locks); 0 when absent, which
    /// disables the per-task mapping cache.
    pub mm_lock_seq: u32,
    /// `vm_fault.page` and `page.mapping`, for the old page in
    /// `wp_page_copy` (fentry and kprobe strategies).
    pub vmf_page: u32,
    pub page_mapping: u32,
    /// Non-zero when `kmem:rss_stat` fires for every counter change (v6.2+,
    /// without `SPLIT_RSS_COUNTING`), so it can tell a page-cache copy from
    /// an anon one. Otherwise a copy in a file mapping counts as a file copy.
    pub rss_stat_exact: u32,
    /// `file.f_path.dentry`, `dentry.d_name.name` and `dentry.d_parent`.
    pub file_dentry: u32,
    pub dentry_name: u32,
    pub dentry_parent: u32,
    /// `vm_area_struct.vm_mm`, `mm_struct.start_brk`, `.brk`,
    /// `.start_stack`, and `vm_area_struct.anon_name` (0 when the kernel
    /// lacks `CONFIG_ANON_VMA_NAME`).
    pub vma_vm_mm: u32,
    pub mm_start_brk: u32,
    pub mm_brk: u32,
    pub mm_start_stack: u32,
    pub vma_anon_name: u32,
    /// `task_struct.flags` (`PF_EXITING`) and `task_struct.comm`.
    pub task_flags: u32,
    pub task_comm: u32,
    /// `mm_struct.mm_rb` and `vm_area_struct.vm_rb`: the address space's
    /// VMA red-black tree, walked where `bpf_find_vma` is missing (before
    /// v5.17). 0 from v6.1 on (maple tree).
    pub mm_mm_rb: u32,
    pub vma_vm_rb: u32,
}

/// Program configuration, set as a global before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// cowprof's own tgid, never traced.
    pub self_tgid: u32,
    /// Non-zero to trace every process (`-a`); otherwise only `TARGETS`.
    pub system_wide: u32,
    /// Non-zero to emit aya-log diagnostics on error paths.
    pub debug: u32,
    /// Wake the reader only once this many bytes wait in the ring buffer;
    /// below it userspace polls on a timer. One wakeup per event would cost
    /// an IPI per fault.
    pub wakeup_bytes: u32,
    /// Non-zero to record each fault's user stack (`--stacks`).
    pub stacks: u32,
    /// Non-zero to capture attribution in the kernel: file paths, the
    /// writer's mapping, `.bss`. The programs are loaded without it where the
    /// kernel's verifier cannot take them whole (v6.1: E2BIG); its branches
    /// are then dead code the verifier skips, as CONFIG is read-only.
    pub attribution: u32,
    /// Zero to count faults per process in the kernel (`PROC_COUNTS`) and
    /// send no events (`record --count-only`).
    pub emit: u32,
    /// Non-zero to measure each fault's latency (`--latency`): two clock
    /// reads per fault, and on the tracepoint strategy the perf-event
    /// completion.
    pub latency: u32,
    /// Non-zero when faults complete lazily (the tracepoint strategy without
    /// latency): at the task's next fault, its next mmap lock outside the
    /// fault, its exit, or the final flush.
    pub lazy: u32,
    pub _pad: u32,
    pub offsets: Offsets,
    /// `[start, end)` of `exc_page_fault()` in kernel text, from
    /// /proc/kallsyms (zero when unknown): a return address there means the
    /// task is inside a page fault.
    pub exc_page_fault: [u64; 2],
    pub tracepoints: TpOffsets,
}

/// Field offsets in classic (perf) tracepoint records, read from tracefs
/// `format` files, for the `tracepoint/` programs that replace the `tp_btf`
/// ones on kernels where those run preemptible (v7.0+). Zero where unused.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TpOffsets {
    /// `kmem:mm_page_alloc` `order` and `gfp_flags` (4 bytes before v5.19,
    /// 8 after: the low 4 are read).
    pub page_alloc_order: u32,
    pub page_alloc_gfp: u32,
    /// `kmem:rss_stat` `member`.
    pub rss_member: u32,
    /// `sched:sched_process_fork` `child_pid`.
    pub fork_child_pid: u32,
    /// `exceptions:page_fault_user`/`page_fault_kernel` (same layout).
    pub fault_address: u32,
    pub fault_ip: u32,
    pub fault_error_code: u32,
    /// `mmap_lock:mmap_lock_start_locking` `mm`.
    pub mmap_lock_mm: u32,
}

/// Faults of one process by kind (indexed by `Kind` discriminant), counted
/// in the kernel when events are not sent (`Config::emit == 0`). One copy
/// per CPU; the comm is set in the copy of the CPU that created the entry
/// and refreshed in the one where the process exits, so the newest wins.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcCounts {
    pub kinds: [u64; 8],
    pub comm: [u8; COMM_LEN],
    /// When `comm` was written (`bpf_ktime_get_ns`); 0 when never.
    pub comm_ns: u64,
}

/// Indices of the per-CPU statistics array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Events that did not fit in the ring buffer.
    RingbufLost = 0,
    /// Write faults whose mapping could not be looked up.
    VmaLookupFailed = 1,
    /// Task storage could not be allocated for a fault.
    PendingAllocFailed = 2,
    /// Completions seen with no matching fault entry.
    CompletionUnmatched = 3,
    /// Targets that could not be added to the follow set.
    TargetInsertFailed = 4,
    /// Mapping lookups made (`bpf_find_vma` calls); the rest hit the cache.
    VmaLookups = 5,
    /// File path records that did not fit in the ring buffer; those files
    /// are reported by device and inode.
    FileRecordLost = 6,
    /// Faults not counted per process in count-only mode because
    /// `PROC_COUNTS` was full; the kernel totals include them.
    ProcCountLost = 7,
    /// `--stacks`: faults whose user stack could not be taken
    /// (`bpf_get_stackid` failed: a full map or a hash collision); they are
    /// reported under `[no stack]`.
    StackFailed = 8,
    /// Lazy completion: faults whose mapping was looked up after their
    /// address space had changed (another thread mapped or unmapped memory
    /// meanwhile); their mapping is the one at the address then.
    LateLookup = 9,
}

impl Stat {
    /// Number of statistics slots.
    pub const COUNT: u32 = 10;
}

/// Whether `address` is in the kernel half of the address space (x86-64:
/// bit 63 set): a fault's instruction pointer there means the kernel wrote
/// user memory on the process's behalf.
#[must_use]
pub const fn is_kernel_address(address: u64) -> bool {
    address >> 63 != 0
}

/// Processes counted in one count-only recording (size of `PROC_COUNTS`;
/// entries stay until the recording ends, so a reused pid adds to the
/// earlier process's counts).
pub const MAX_COUNTED: u32 = 16_384;

/// Maximum number of processes followed at once (size of `TARGETS`).
pub const MAX_TARGETS: u32 = 65_536;

const _: () = assert!(core::mem::size_of::<VmaInfo>() == 56);
const _: () = assert!(core::mem::size_of::<Pending>() == 176);
const _: () = assert!(core::mem::size_of::<FaultEvent>() == 208);
const _: () = assert!(core::mem::size_of::<TaskState>() == 360);
const _: () = assert!(core::mem::size_of::<FileRecord>() == 536);
const _: () = assert!(core::mem::size_of::<Offsets>() == 112);
const _: () = assert!(core::mem::size_of::<TpOffsets>() == 32);
const _: () = assert!(core::mem::size_of::<Config>() == 200);
const _: () = assert!(core::mem::size_of::<ProcCounts>() == 88);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C) structs of integers with explicit padding.
    unsafe impl aya::Pod for super::FaultEvent {}
    unsafe impl aya::Pod for super::FileRecord {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::ProcCounts {}
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::TpOffsets {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vma_cache_hits_only_inside_the_range_at_the_same_sequence() {
        let cache = VmaCache {
            vma: VmaInfo {
                vm_start: 0x1000,
                vm_end: 0x3000,
                ..VmaInfo::default()
            },
            bss: BssInfo::default(),
            seq: 7,
            valid: 1,
        };
        assert!(cache.hit(0x1000, 7).is_some());
        assert!(cache.hit(0x2fff, 7).is_some());
        assert!(cache.hit(0x3000, 7).is_none(), "end is exclusive");
        assert!(cache.hit(0x0fff, 7).is_none());
        assert!(cache.hit(0x2000, 8).is_none(), "the address space changed");
        assert!(VmaCache::default().hit(0, 0).is_none(), "empty cache");
    }
}
