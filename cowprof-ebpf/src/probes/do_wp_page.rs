//! The write-protect path: entry of `do_wp_page()` (fentry and kprobe
//! strategies).
//!
//! mm/memory.c: `static vm_fault_t do_wp_page(struct vm_fault *vmf)`, called
//! from `handle_pte_fault()` for a write to a present PTE that is not
//! writable. It marks the open fault as a protection fault (the x86 `PF_PROT`
//! bit the tracepoint strategy reads from the error code), which is what
//! separates copies and reuses from fills and first touches.
use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use cowprof_common::classify::PF_PROT;

use crate::pending::active;

#[inline(always)]
fn on_wp() {
    if let Some(state) = active() {
        state.pending.error_code |= PF_PROT;
    }
}

#[fentry(function = "do_wp_page")]
pub fn fentry_do_wp_page(_ctx: FEntryContext) -> i32 {
    on_wp();
    0
}

#[kprobe]
pub fn kprobe_do_wp_page(_ctx: ProbeContext) -> u32 {
    on_wp();
    0
}
