//! Lazy completion's checkpoint between faults: `mmap_lock:mmap_lock_start_locking`,
//! as a BTF tracepoint (tracepoint strategy without latency only).
//!
//! include/trace/events/mmap_lock.h (v5.10+; v6.13 dropped `memcg_path`,
//! `mm` stays first):
//! ```c
//! DECLARE_EVENT_CLASS(mmap_lock,
//!     TP_PROTO(struct mm_struct *mm, const char *memcg_path, bool write),
//! ```
//! include/linux/mmap_lock.h fires it from `mmap_read_lock()` and
//! `mmap_write_lock()` before the lock is taken, so the address space is
//! still as the fault left it. Three cases reach it while a record is open:
//! - the task is still inside its fault (v6.1 takes the lock in every fault;
//!   later kernels when the per-VMA lock fails): IRQs are on, so this is the
//!   cheap place to look the mappings (written, and writing code) up;
//! - a syscall is about to change the address space (`mmap`, `munmap`,
//!   `mprotect`, `brk`...): the fault is over and completes now, while its
//!   mapping can still be looked up;
//! - the task is exiting (`PF_EXITING`, set by `exit_signals()` before
//!   `exit_mm()` takes the lock): likewise.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};

use crate::{
    fault,
    maps::config,
    pending::active,
    read::{current_task, read_at},
    regs,
};

/// `PF_EXITING` in include/linux/sched.h.
const PF_EXITING: u32 = 0x0000_0004;

/// `TP_PROTO(struct mm_struct *mm, ...)`.
#[btf_tracepoint(function = "mmap_lock_start_locking")]
pub fn mmap_lock_start_locking(ctx: BtfTracePointContext) -> i32 {
    try_mmap_lock(&ctx, ctx.arg(0));
    0
}

/// The same as a classic tracepoint (v7.0+): the record's `mm` pointer.
#[tracepoint(category = "mmap_lock", name = "mmap_lock_start_locking")]
pub fn tp_mmap_lock_start_locking(ctx: TracePointContext) -> u32 {
    let mm: u64 = crate::tracepoints::field(&ctx, config().tracepoints.mmap_lock_mm);
    try_mmap_lock(&ctx, mm);
    0
}

#[inline(always)]
fn try_mmap_lock<C: EbpfContext>(ctx: &C, mm: u64) {
    let Some(state) = active() else {
        return;
    };
    let task = current_task();
    let off = &config().offsets;
    let own: u64 = read_at(task.cast(), off.task_mm);
    if mm != own {
        // Another process's address space (/proc/PID/maps, ptrace).
        return;
    }
    let flags: u32 = read_at(task.cast(), off.task_flags);
    if flags & PF_EXITING == 0 && regs::inside(ctx, &state.pending) {
        fault::resolve_inside(state);
        return;
    }
    fault::finish(state);
}
