//! The fault envelope of the fentry and kprobe strategies: entry and return
//! of `handle_mm_fault()`.
//!
//! mm/memory.c (v5.8+):
//! ```c
//! vm_fault_t handle_mm_fault(struct vm_area_struct *vma, unsigned long address,
//!                            unsigned int flags, struct pt_regs *regs)
//! ```
//! The vma comes with the call, so these strategies never look mappings up.
//! `regs` is NULL for GUP faults (`get_user_pages()`), which no exception
//! raised and the tracepoint strategy cannot see; they are skipped.
//! Kernel-mode faults on user memory (`read(2)` into a buffer) lack
//! `FAULT_FLAG_USER` but are the process's COW faults all the same, as the
//! tracepoint strategy sees them through `page_fault_kernel`.
//!
//! A `VM_FAULT_RETRY` return (the per-VMA lock or the mmap lock was dropped)
//! is followed by a second call for the same address; the fault stays open
//! across it. Every write fault passes here, so writes to pages that are not
//! present (`do_cow_fault`, inlined on current kernels, hence
//! `cow_fill_file`) are caught too: a write fault that never reached
//! `do_wp_page` is a not-present write, classified by its mapping.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::pt_regs,
    helpers::bpf_probe_read_kernel,
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use cowprof_common::classify::{PF_USER, PF_WRITE};

use crate::{
    fault,
    pending::{active, Subject},
};

/// `enum fault_flag` in include/linux/mm_types.h, stable since v5.x.
const FAULT_FLAG_WRITE: u32 = 1 << 0;
const FAULT_FLAG_USER: u32 = 1 << 6;
/// `VM_FAULT_RETRY` and `VM_FAULT_ERROR` (OOM, SIGBUS, SIGSEGV, HWPOISON,
/// HWPOISON_LARGE, FALLBACK) in include/linux/mm_types.h.
const VM_FAULT_RETRY: u32 = 0x0400;
const VM_FAULT_ERROR: u32 = 0x0001 | 0x0002 | 0x0040 | 0x0010 | 0x0020 | 0x0800;

#[inline(always)]
fn on_entry(vma: *const c_void, address: u64, flags: u32, regs: *const pt_regs) {
    if regs.is_null() || fault::target_tgid().is_none() {
        return;
    }
    if flags & FAULT_FLAG_WRITE == 0 {
        // Close any write fault that never completed (one that failed with
        // SIGSEGV, say), so its state cannot leak into this one.
        if let Some(stale) = active() {
            stale.pending.active = 0;
        }
        return;
    }
    if let Some(state) = active() {
        if state.pending.retrying != 0 && state.pending.addr == address {
            // The retry of a fault already open: keep what it saw so far.
            state.pending.retrying = 0;
            fault::set_vma(state, vma);
            return;
        }
    }
    // SAFETY: regs is the fault's pt_regs; the read is checked.
    let ip = unsafe { bpf_probe_read_kernel(&raw const (*regs).rip) }.unwrap_or(0);
    let user = if flags & FAULT_FLAG_USER != 0 {
        PF_USER
    } else {
        0
    };
    if let Some(state) = fault::task_state(true) {
        fault::open(state, address, ip, PF_WRITE | user);
        fault::set_vma(state, vma);
    }
}

#[inline(always)]
fn on_return(ret: u32, stack: impl FnOnce() -> i32) {
    let Some(state) = active() else {
        return;
    };
    if ret & VM_FAULT_RETRY != 0 {
        state.pending.retrying = 1;
    } else if ret & VM_FAULT_ERROR != 0 {
        state.pending.active = 0;
    } else {
        fault::complete(state, &Subject::current(), stack);
    }
}

#[fentry(function = "handle_mm_fault")]
pub fn fentry_handle_mm_fault(ctx: FEntryContext) -> i32 {
    on_entry(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    0
}

/// The return value is read from the context slot after the four
/// arguments, as libbpf's `BPF_PROG` does. `bpf_get_func_ret` is avoided:
/// on v6.1 the verifier's scalar precision tracking took its result for 0
/// and dropped the `VM_FAULT_RETRY` branch, so retried faults were counted
/// twice.
#[fexit(function = "handle_mm_fault")]
pub fn fexit_handle_mm_fault(ctx: FExitContext) -> i32 {
    let ret: u64 = ctx.arg(4);
    #[expect(clippy::cast_possible_truncation, reason = "vm_fault_t is 32 bits")]
    on_return(ret as u32, || fault::user_stack(&ctx));
    0
}

#[kprobe]
pub fn kprobe_handle_mm_fault(ctx: ProbeContext) -> u32 {
    if let (Some(vma), Some(address), Some(flags), Some(regs)) =
        (ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3))
    {
        on_entry(vma, address, flags, regs);
    }
    0
}

#[kretprobe]
pub fn kretprobe_handle_mm_fault(ctx: RetProbeContext) -> u32 {
    on_return(ctx.ret(), || fault::user_stack(&ctx));
    0
}
