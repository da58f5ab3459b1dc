//! Lazy completion's final flush: a task iterator (`iter/task`, v5.8+) that
//! userspace runs once the recording stops, completing every record still
//! open (each task's last fault, which no later event has ended).
//!
//! kernel/bpf/task_iter.c:
//! ```c
//! struct bpf_iter__task {
//!     __bpf_md_ptr(struct bpf_iter_meta *, meta);
//!     __bpf_md_ptr(struct task_struct *, task);
//! };
//! ```
//! `task` is NULL on the last call. Userspace first sets `CONTROL`, so no
//! task opens a new record meanwhile, and gives faults in flight a moment
//! to return.
use core::ffi::c_void;

use aya_ebpf::bindings::task_struct;

use crate::{fault, pending::Subject, store::TASK_STATE};

/// The iterator's context (`struct bpf_iter__task`).
#[repr(C)]
pub struct IterTask {
    meta: *mut c_void,
    task: *mut task_struct,
}

/// Entry point: aya 0.14 loads `iter/` sections as iterators; aya-ebpf has
/// no macro for them, so the section is named by hand.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub extern "C" fn flush_pending(ctx: *mut IterTask) -> i32 {
    // SAFETY: the kernel passes a valid context.
    let task = unsafe { (*ctx).task };
    if !task.is_null() {
        try_flush(task);
    }
    0
}

#[inline(always)]
fn try_flush(task: *mut task_struct) {
    let Some(state) = TASK_STATE.get(task, false) else {
        return;
    };
    if state.pending.active == 0 {
        return;
    }
    let stack_id = state.pending.stack_id;
    fault::complete(state, &Subject::of(task), || stack_id);
}
