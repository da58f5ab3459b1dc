//! Fault completion (tracepoint strategy): the `PERF_COUNT_SW_PAGE_FAULTS_MIN`
//! and `MAJ` software events.
//!
//! mm/memory.c, `mm_account_fault()`, at the end of `handle_mm_fault()`:
//! ```c
//! if (ret & VM_FAULT_RETRY) return;   /* accounted on the retry */
//! ...
//! if (ret & VM_FAULT_ERROR) return;
//! ...
//! if (major) perf_sw_event(PERF_COUNT_SW_PAGE_FAULTS_MAJ, 1, regs, address);
//! else       perf_sw_event(PERF_COUNT_SW_PAGE_FAULTS_MIN, 1, regs, address);
//! ```
//! The sample's `addr` is the faulting address, which ties the event to the
//! pending fault. Attached only when latency is measured (`--latency`);
//! otherwise faults complete lazily (see `fault`).
use aya_ebpf::{macros::perf_event, programs::PerfEventContext};
use cowprof_common::Stat;

use crate::{
    fault,
    maps::count,
    pending::{active, Subject},
};

#[perf_event]
pub fn fault_done(ctx: PerfEventContext) -> u32 {
    try_fault_done(&ctx);
    0
}

fn try_fault_done(ctx: &PerfEventContext) {
    let Some(state) = active() else {
        return;
    };
    // SAFETY: ctx points at the kernel's bpf_perf_event_data.
    let addr = unsafe { (*ctx.ctx).addr };
    if addr != state.pending.addr {
        count(Stat::CompletionUnmatched);
        return;
    }
    fault::complete(state, &Subject::current(), || fault::user_stack(ctx));
}
