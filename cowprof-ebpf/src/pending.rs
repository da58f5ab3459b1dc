//! Access to a task's state (its fault in flight and its mapping cache), and
//! the task whose fault is being completed.

use aya_ebpf::{
    bindings::task_struct,
    helpers::{bpf_get_current_pid_tgid, generated as gen},
};
use cowprof_common::{event::COMM_LEN, BssInfo, Stat, TaskState, VmaInfo};

use crate::{
    maps::{config, count},
    read::{current_task, read_at},
    store::TASK_STATE,
    vma::{self, Space},
};

/// The current task's state, if a write fault is in flight.
#[inline(always)]
pub fn active() -> Option<&'static mut TaskState> {
    TASK_STATE
        .get(current_task(), false)
        .filter(|state| state.pending.active != 0)
}

/// The task whose fault completes: the current one (cheap helpers), or one
/// the final flush visits (fields read with the kernel's BTF offsets).
#[derive(Clone, Copy)]
pub struct Subject {
    pub space: Space,
    pub pid_tgid: u64,
}

impl Subject {
    #[inline(always)]
    pub fn current() -> Self {
        Self {
            space: Space::Current,
            pid_tgid: bpf_get_current_pid_tgid(),
        }
    }

    #[inline(always)]
    pub fn of(task: *mut task_struct) -> Self {
        let off = &config().offsets;
        let pid: u32 = read_at(task.cast(), off.task_pid);
        let tgid: u32 = read_at(task.cast(), off.task_tgid);
        Self {
            space: Space::Task(task),
            pid_tgid: (u64::from(tgid) << 32) | u64::from(pid),
        }
    }

    #[inline(always)]
    pub fn tgid(&self) -> u32 {
        #[expect(clippy::cast_possible_truncation, reason = "tgid is the upper half")]
        let tgid = (self.pid_tgid >> 32) as u32;
        tgid
    }

    /// Writes the task's comm (`COMM_LEN` bytes, NUL-padded) to `dst`.
    ///
    /// # Safety
    /// `dst` must point at `COMM_LEN` writable bytes.
    #[inline(always)]
    pub unsafe fn comm_into(&self, dst: *mut u8) {
        match self.space {
            // SAFETY: the caller's promise; the helpers write at most
            // COMM_LEN bytes and zero-fill the rest.
            Space::Current => unsafe {
                gen::bpf_get_current_comm(dst.cast(), COMM_LEN as u32);
            },
            Space::Task(task) => unsafe {
                gen::bpf_probe_read_kernel_str(
                    dst.cast(),
                    COMM_LEN as u32,
                    task.cast::<u8>()
                        .add(config().offsets.task_comm as usize)
                        .cast(),
                );
            },
        }
    }
}

/// Makes sure the pending fault knows its mapping: looks it up with
/// `bpf_find_vma` and remembers it in the task's cache.
///
/// Cheap only where IRQs are enabled (docs/kernel.md §4). A lookup made
/// after the fault (lazy completion) searches the address space as it is
/// then: when it is no longer the fault's (`exec`), nothing is looked up;
/// when it changed meanwhile (another thread mapped or unmapped memory), the
/// lookup is counted as late.
#[inline(always)]
pub fn resolve_vma(state: &mut TaskState, space: Space) {
    if state.pending.vma_found != 0 {
        return;
    }
    let task = space.task();
    // Read the sequence before the lookup, so a concurrent change to the
    // address space invalidates what we cache.
    let seq = vma::lock_seq(task);
    if state.pending.mm != 0 {
        let mm: u64 = read_at(task.cast(), config().offsets.task_mm);
        if mm != state.pending.mm {
            count(Stat::VmaLookupFailed);
            return;
        }
        if state.pending.seq_known != 0 && seq.is_some_and(|seq| seq != state.pending.seq) {
            count(Stat::LateLookup);
        }
    }
    count(Stat::VmaLookups);
    if !vma::find_into(space, state.pending.addr, &mut state.pending.vma) {
        count(Stat::VmaLookupFailed);
        return;
    }
    remember_vma(state, seq, space);
}

/// Takes the pending fault's mapping from the task's cache, if the cache
/// holds its address and the address space is still at `seq`.
#[inline(always)]
pub fn vma_from_cache(state: &mut TaskState, seq: u32) -> bool {
    let Some(info) = state.cache.hit(state.pending.addr, seq) else {
        return false;
    };
    state.pending.vma = info;
    state.pending.bss = state.cache.bss;
    state.pending.vma_found = 1;
    true
}

/// The pending fault's mapping was just read: find its `.bss` image and
/// cache both for the task, keyed by `seq` (read before the mapping).
#[inline(always)]
pub fn remember_vma(state: &mut TaskState, seq: Option<u32>, space: Space) {
    state.pending.vma_found = 1;
    state.pending.bss = bss_of(&state.pending.vma, space);
    if let Some(seq) = seq {
        state.cache.vma = state.pending.vma;
        state.cache.bss = state.pending.bss;
        state.cache.seq = seq;
        state.cache.valid = 1;
    }
}

/// `VM_WRITE` from include/linux/mm.h.
const VM_WRITE: u64 = 0x2;

/// For an anon mapping, the image whose writable file mapping ends where it
/// starts (its `.bss`), found with one more lookup.
#[inline(always)]
pub fn bss_of(info: &VmaInfo, space: Space) -> BssInfo {
    if config().attribution == 0 || info.file_backed != 0 || info.vm_start == 0 {
        return BssInfo::default();
    }
    count(Stat::VmaLookups);
    match vma::find(space, info.vm_start - 1) {
        Some(prev)
            if prev.file_backed != 0
                && prev.vm_end == info.vm_start
                && prev.vm_flags & VM_WRITE != 0 =>
        {
            BssInfo {
                base: prev.vm_start.wrapping_sub(prev.vm_pgoff * 4096),
                ino: prev.ino,
                dev: prev.dev,
                found: 1,
            }
        }
        _ => BssInfo::default(),
    }
}
