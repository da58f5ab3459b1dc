//! Maps and the load-time configuration shared by every probe.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::{bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE, task_struct, BPF_F_NO_PREALLOC},
    helpers::generated::bpf_task_storage_get,
    macros::{btf_map, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf, StackTrace},
};
use cowprof_common::{
    event::{MAX_COUNTED, MAX_TARGETS},
    Config, FileKey, ProcCounts, Stat, TaskState,
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

/// `BPF_MAP_TYPE_TASK_STORAGE`, which aya-ebpf 0.2 does not define. The map's
/// type, flags and key/value types are encoded in the field types, as libbpf's
/// `__uint`/`__type` macros and aya-ebpf's own `InodeStorage` do.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders patched by the loader and never read.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
        }
    }

    /// The value of `task`, created zeroed when `create` is set.
    #[inline(always)]
    pub fn get(&self, task: *mut task_struct, create: bool) -> Option<&mut T> {
        let flags = if create {
            u64::from(aya_ebpf::bindings::BPF_LOCAL_STORAGE_GET_F_CREATE)
        } else {
            0
        };
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: `task` comes from bpf_get_current_task_btf(); the helper
        // returns NULL or a pointer to a value of this map.
        unsafe {
            bpf_task_storage_get(map, task, ptr::null_mut(), flags)
                .cast::<T>()
                .as_mut()
        }
    }
}

/// The fault in flight of each task, and its last mapping lookup.
#[btf_map]
pub static TASK_STATE: TaskStorage<TaskState> = TaskStorage::new();

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
    },
    exc_page_fault: [0, 0],
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
