//! Where each task's [`TaskState`] lives: task storage (v5.11+), or, in the
//! object built for older kernels (`--features legacy`), a hash map keyed
//! by thread id that the exit probe empties. Both offer the same
//! `TASK_STATE.get(task, create)`.
//!
//! kernel/bpf/bpf_task_storage.c (v5.11+):
//! ```c
//! BPF_CALL_4(bpf_task_storage_get, struct bpf_map *, map, struct task_struct *,
//!            task, void *, value, u64, flags)
//! ```
use cowprof_common::TaskState;

#[cfg(feature = "legacy")]
pub use self::by_tid::TASK_STATE;
#[cfg(not(feature = "legacy"))]
pub use self::task_storage::TASK_STATE;

#[cfg(not(feature = "legacy"))]
mod task_storage {
    use core::{ffi::c_void, ptr};

    use aya_ebpf::{
        bindings::{bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE, task_struct, BPF_F_NO_PREALLOC},
        helpers::generated::bpf_task_storage_get,
        macros::btf_map,
    };

    use super::TaskState;

    /// `BPF_MAP_TYPE_TASK_STORAGE`, which aya-ebpf 0.2 does not define. The
    /// map's type, flags and key/value types are encoded in the field types,
    /// as libbpf's `__uint`/`__type` macros and aya-ebpf's own
    /// `InodeStorage` do.
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
            // SAFETY: `task` comes from bpf_get_current_task_btf() or an
            // iterator; the helper returns NULL or a pointer to a value of
            // this map.
            unsafe {
                bpf_task_storage_get(map, task, ptr::null_mut(), flags)
                    .cast::<T>()
                    .as_mut()
            }
        }

        /// Task storage is freed with its task.
        #[inline(always)]
        pub fn remove_current(&self) {}
    }

    /// The fault in flight of each task, and its last mapping lookup.
    #[btf_map]
    pub static TASK_STATE: TaskStorage<TaskState> = TaskStorage::new();
}

#[cfg(feature = "legacy")]
mod by_tid {
    use aya_ebpf::{
        bindings::{task_struct, BPF_NOEXIST},
        helpers::bpf_get_current_pid_tgid,
        macros::map,
        maps::{Array, HashMap},
    };

    use super::TaskState;
    use crate::{maps::config, read::read_at};

    /// Each thread's state, by thread id. Preallocated: a tracing program
    /// must not allocate. Userspace sizes it (`TASK_STATES`) at load time;
    /// a thread that finds it full has its fault counted as
    /// `pending_alloc_failed`.
    #[map]
    static TASK_STATES: HashMap<u32, TaskState> = HashMap::with_max_entries(32_768, 0);

    /// One zeroed value, copied into `TASK_STATES` for a new thread (too big
    /// for the 512-byte stack). Nothing writes it.
    #[map]
    static ZEROED: Array<TaskState> = Array::with_max_entries(1, 0);

    pub struct ByTid;

    impl ByTid {
        /// The state of `task` (its thread id read with the kernel's BTF
        /// offset), created zeroed when `create` is set.
        #[inline(always)]
        #[expect(clippy::unused_self, reason = "the same call as task storage's")]
        pub fn get(&self, task: *mut task_struct, create: bool) -> Option<&'static mut TaskState> {
            let tid: u32 = read_at(task.cast(), config().offsets.task_pid);
            if let Some(state) = TASK_STATES.get_ptr_mut(&tid) {
                // SAFETY: a value of the map, alive until the thread exits.
                return unsafe { state.as_mut() };
            }
            if !create {
                return None;
            }
            let zeroed = ZEROED.get(0)?;
            TASK_STATES
                .insert(&tid, zeroed, u64::from(BPF_NOEXIST))
                .ok()?;
            // SAFETY: as above.
            TASK_STATES
                .get_ptr_mut(&tid)
                .and_then(|state| unsafe { state.as_mut() })
        }

        /// The exiting thread's state goes with it.
        #[inline(always)]
        #[expect(clippy::unused_self, reason = "the same call as task storage's")]
        pub fn remove_current(&self) {
            #[expect(clippy::cast_possible_truncation, reason = "the pid is the lower half")]
            let tid = bpf_get_current_pid_tgid() as u32;
            let _ = TASK_STATES.remove(&tid);
        }
    }

    pub static TASK_STATE: ByTid = ByTid;
}
