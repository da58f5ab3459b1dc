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
    bindings::pt_regs, helpers::bpf_probe_read_kernel, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use cowprof_common::classify::PF_WRITE;

use crate::fault;

#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user(ctx: BtfTracePointContext) -> i32 {
    try_page_fault_user(&ctx);
    0
}

fn try_page_fault_user(ctx: &BtfTracePointContext) {
    if fault::target_tgid().is_none() {
        return;
    }
    let address: u64 = ctx.arg(0);
    let regs: *const pt_regs = ctx.arg(1);
    let error_code: u64 = ctx.arg(2);
    #[expect(
        clippy::cast_possible_truncation,
        reason = "error codes fit in 32 bits"
    )]
    let error_code = error_code as u32;
    if error_code & PF_WRITE == 0 {
        fault::close_stale();
        return;
    }
    // SAFETY: regs is the tracepoint's pt_regs; the read is checked.
    let ip = unsafe { bpf_probe_read_kernel(&raw const (*regs).rip) }.unwrap_or(0);
    if let Some(state) = fault::open(address, ip, error_code) {
        fault::try_cache(state);
    }
}
