//! Access to the current task's fault in flight.

use aya_ebpf::{bindings::task_struct, helpers::generated::bpf_get_current_task_btf};
use cowprof_common::Pending;

use crate::maps::PENDING;

/// The current task, as a trusted BTF pointer.
#[inline(always)]
pub fn current_task() -> *mut task_struct {
    // SAFETY: always valid in tracing programs.
    unsafe { bpf_get_current_task_btf() }
}

/// The current task's pending write fault, if one is in flight.
#[inline(always)]
pub fn active() -> Option<&'static mut Pending> {
    PENDING
        .get(current_task(), false)
        .filter(|pending| pending.active != 0)
}
