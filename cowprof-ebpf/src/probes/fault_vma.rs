//! Mapping lookup: the `PERF_COUNT_SW_PAGE_FAULTS` software event.
//!
//! arch/x86/mm/fault.c, `do_user_addr_fault()`:
//! ```c
//! if (user_mode(regs)) {
//!         local_irq_enable();
//!         flags |= FAULT_FLAG_USER;
//! } ...
//! perf_sw_event(PERF_COUNT_SW_PAGE_FAULTS, 1, regs, address);
//! ```
//! IRQs are on here and the fault holds no mm lock yet, so `bpf_find_vma`
//! takes and drops the mmap read lock directly instead of deferring the
//! unlock through irq_work (DESIGN.md §4). The sample's `addr` is the faulting
//! address, which ties this event to the pending record.
use aya_ebpf::{macros::perf_event, programs::PerfEventContext};
use aya_log_ebpf::warn;
use cowprof_common::Stat;

use crate::{
    maps::{config, count},
    pending::{active, current_task},
    vma,
};

#[perf_event]
pub fn fault_vma(ctx: PerfEventContext) -> u32 {
    let _ = try_fault_vma(&ctx);
    0
}

fn try_fault_vma(ctx: &PerfEventContext) -> Result<(), Stat> {
    let Some(pending) = active() else {
        return Ok(());
    };
    // SAFETY: ctx points at the kernel's bpf_perf_event_data.
    let addr = unsafe { (*ctx.ctx).addr };
    if addr != pending.addr || pending.vma_found != 0 {
        return Ok(());
    }
    let Some(info) = vma::find(current_task(), addr) else {
        count(Stat::VmaLookupFailed);
        if config().debug != 0 {
            warn!(ctx, "bpf_find_vma failed for address {:x}", addr);
        }
        return Err(Stat::VmaLookupFailed);
    };
    pending.vma = info;
    pending.vma_found = 1;
    Ok(())
}
