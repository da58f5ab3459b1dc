//! Fault entry: `exceptions:page_fault_user`, as a BTF tracepoint.
//!
//! arch/x86/include/asm/trace/exceptions.h:
//! ```c
//! DECLARE_EVENT_CLASS(x86_exceptions,
//!     TP_PROTO(unsigned long address, struct pt_regs *regs,
//!              unsigned long error_code),
//! ```
//! It fires from `handle_page_fault()` before `do_user_addr_fault()`, with
//! IRQs still disabled, so this program only records and never looks up the
//! mapping.
use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use cowprof_common::{classify::PF_WRITE, Pending, Stat};

use crate::{
    maps::{count, is_target, TASK_STATE},
    pending::current_task,
    vma,
};

#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user(ctx: BtfTracePointContext) -> i32 {
    let _ = try_page_fault_user(&ctx);
    0
}

fn try_page_fault_user(ctx: &BtfTracePointContext) -> Result<(), Stat> {
    #[expect(clippy::cast_possible_truncation, reason = "tgid is the upper half")]
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_target(tgid) {
        return Ok(());
    }
    let address: u64 = ctx.arg(0);
    let regs: *const pt_regs = ctx.arg(1);
    let error_code: u64 = ctx.arg(2);
    let task = current_task();
    #[expect(
        clippy::cast_possible_truncation,
        reason = "error codes fit in 32 bits"
    )]
    let error_code = error_code as u32;
    if error_code & PF_WRITE == 0 {
        // A read fault closes any write fault that never completed (one that
        // failed with SIGSEGV, say), so its state cannot leak into this one.
        if let Some(stale) = TASK_STATE.get(task, false) {
            stale.pending.active = 0;
        }
        return Ok(());
    }
    let state = TASK_STATE
        .get(task, true)
        .ok_or(Stat::PendingAllocFailed)
        .inspect_err(|s| count(*s))?;
    // SAFETY: regs is the tracepoint's pt_regs; the read is checked.
    let ip = unsafe { bpf_probe_read_kernel(&raw const (*regs).rip) }.unwrap_or(0);
    state.pending = Pending {
        addr: address,
        ip,
        // SAFETY: no preconditions.
        start_ns: unsafe { bpf_ktime_get_ns() },
        error_code,
        active: 1,
        ..Pending::default()
    };
    // The mapping from the cache, when the address space is unchanged since
    // the last lookup. Reading the sequence is two loads, safe with IRQs off.
    if let Some(seq) = vma::lock_seq(task) {
        if let Some(info) = state.cache.hit(address, seq) {
            state.pending.vma = info;
            state.pending.vma_found = 1;
        }
    }
    Ok(())
}
