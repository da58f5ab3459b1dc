//! Fault entry: `exceptions:page_fault_user` and `page_fault_kernel`, as BTF
//! tracepoints.
//!
//! arch/x86/include/asm/trace/exceptions.h:
//! ```c
//! DECLARE_EVENT_CLASS(x86_exceptions,
//!     TP_PROTO(unsigned long address, struct pt_regs *regs,
//!              unsigned long error_code),
//! ```
//! arch/x86/mm/fault.c, `trace_page_fault_entries()`:
//! ```c
//! if (user_mode(regs))
//!         trace_page_fault_user(address, regs, error_code);
//! else
//!         trace_page_fault_kernel(address, regs, error_code);
//! ```
//! Both fire from `handle_page_fault()` before `do_user_addr_fault()`, with
//! IRQs still disabled, so these programs look the mapping up only when a
//! lazily completed fault needs it. `page_fault_kernel` counts when the
//! kernel writes user memory on the process's behalf (`read(2)` into a
//! buffer, say): a COW fault all the same. Its faults on kernel addresses
//! are not ours.
//!
//! Under lazy completion a fault entry also ends the task's previous fault:
//! the task is running again, so that fault returned. For a kernel-mode
//! fault it notes what binds allocations to it (see `regs::inside`): the
//! syscall it interrupted, from the task's user registers. arch/x86/entry/entry_64.S
//! (`idtentry_body`) and entry_fred.c (`fred_entry_from_user`) store −1 in a
//! user exception's `orig_ax`; a syscall stores its number there.
use aya_ebpf::{
    bindings::pt_regs,
    macros::{btf_tracepoint, tracepoint},
    programs::{tracing::StackIdContext, BtfTracePointContext, TracePointContext},
};
use cowprof_common::{
    classify::{PF_USER, PF_WRITE},
    event::is_kernel_address,
};

use crate::{
    fault,
    maps::{config, stopping},
    regs,
};

#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user(ctx: BtfTracePointContext) -> i32 {
    let (address, error_code) = (ctx.arg(0), ctx.arg(2));
    try_fault_entry(&ctx, address, btf_ip(&ctx), error_code);
    0
}

/// Only writes: a kernel-mode read of user memory can come from another
/// context (a `copy_from_user_nofault()` in an NMI, say) while a user write
/// fault is open, and must not close it.
#[btf_tracepoint(function = "page_fault_kernel")]
pub fn page_fault_kernel(ctx: BtfTracePointContext) -> i32 {
    let address: u64 = ctx.arg(0);
    let error_code: u64 = ctx.arg(2);
    if !is_kernel_address(address) && error_code & u64::from(PF_WRITE) != 0 {
        try_fault_entry(&ctx, address, btf_ip(&ctx), error_code);
    }
    0
}

/// The faulting instruction, from the tracepoint's `struct pt_regs *`.
#[inline(always)]
fn btf_ip(ctx: &BtfTracePointContext) -> u64 {
    let regs: *const pt_regs = ctx.arg(1);
    // SAFETY: the tracepoint's pt_regs, a BTF pointer the verifier lets the
    // program load from directly (fault-safe).
    unsafe { (*regs).rip }
}

/// The classic tracepoints' records (v7.0+, see `tracepoints`):
/// `unsigned long address, ip, error_code`.
#[inline(always)]
fn record(ctx: &TracePointContext) -> (u64, u64, u64) {
    let off = &config().tracepoints;
    let field = |offset| crate::tracepoints::field::<u64>(ctx, offset);
    (
        field(off.fault_address),
        field(off.fault_ip),
        field(off.fault_error_code),
    )
}

#[tracepoint(category = "exceptions", name = "page_fault_user")]
pub fn tp_page_fault_user(ctx: TracePointContext) -> u32 {
    let (address, ip, error_code) = record(&ctx);
    try_fault_entry(&ctx, address, ip, error_code);
    0
}

#[tracepoint(category = "exceptions", name = "page_fault_kernel")]
pub fn tp_page_fault_kernel(ctx: TracePointContext) -> u32 {
    let (address, ip, error_code) = record(&ctx);
    if !is_kernel_address(address) && error_code & u64::from(PF_WRITE) != 0 {
        try_fault_entry(&ctx, address, ip, error_code);
    }
    0
}

#[inline(always)]
fn try_fault_entry<C: StackIdContext>(ctx: &C, address: u64, ip: u64, error_code: u64) {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "error codes fit in 32 bits"
    )]
    let error_code = error_code as u32;
    let write = error_code & PF_WRITE != 0;
    let lazy = config().lazy != 0;
    // State is created only for a write, which opens a record; a task
    // without one has nothing to complete either.
    let Some(state) = fault::followed_state(write) else {
        return;
    };
    if lazy {
        fault::finish(state);
        if stopping() {
            return;
        }
    }
    if !write {
        if !lazy {
            state.pending.active = 0;
        }
        return;
    }
    fault::open(state, address, ip, error_code);
    fault::try_cache(state);
    if !lazy {
        return;
    }
    // The user stack is the same now as when the fault ends.
    state.pending.stack_id = fault::user_stack(ctx);
    if error_code & PF_USER == 0 {
        let user = regs::user();
        state.pending.sys_nr = user.orig_ax;
        state.pending.sys_ip = user.ip;
    }
}
