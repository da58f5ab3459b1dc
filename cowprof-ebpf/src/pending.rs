//! Access to the current task's state: its fault in flight and its mapping
//! cache.

use aya_ebpf::{bindings::task_struct, helpers::generated::bpf_get_current_task_btf};
use cowprof_common::{BssInfo, Stat, TaskState, VmaInfo};

use crate::{
    maps::{config, count, TASK_STATE},
    vma,
};

/// The current task, as a trusted BTF pointer.
#[inline(always)]
pub fn current_task() -> *mut task_struct {
    // SAFETY: always valid in tracing programs.
    unsafe { bpf_get_current_task_btf() }
}

/// The current task's state, if a write fault is in flight.
#[inline(always)]
pub fn active() -> Option<&'static mut TaskState> {
    TASK_STATE
        .get(current_task(), false)
        .filter(|state| state.pending.active != 0)
}

/// Makes sure the pending fault knows its mapping: looks it up with
/// `bpf_find_vma` and remembers it in the task's cache.
///
/// Only call this where IRQs are enabled (docs/kernel.md §4).
#[inline(always)]
pub fn resolve_vma(state: &mut TaskState) {
    if state.pending.vma_found != 0 {
        return;
    }
    let task = current_task();
    // Read the sequence before the lookup, so a concurrent change to the
    // address space invalidates what we cache.
    let seq = vma::lock_seq(task);
    count(Stat::VmaLookups);
    if !vma::find_into(state.pending.addr, &mut state.pending.vma) {
        count(Stat::VmaLookupFailed);
        return;
    }
    remember_vma(state, seq);
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
pub fn remember_vma(state: &mut TaskState, seq: Option<u32>) {
    state.pending.vma_found = 1;
    state.pending.bss = bss_of(&state.pending.vma);
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
pub fn bss_of(info: &VmaInfo) -> BssInfo {
    if config().attribution == 0 || info.file_backed != 0 || info.vm_start == 0 {
        return BssInfo::default();
    }
    count(Stat::VmaLookups);
    match vma::find(info.vm_start - 1) {
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
