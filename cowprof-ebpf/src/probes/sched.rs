//! Following descendants: `sched:sched_process_fork` and `sched_process_exit`,
//! as BTF tracepoints.
//!
//! include/trace/events/sched.h:
//! ```c
//! TRACE_EVENT(sched_process_fork,
//!     TP_PROTO(struct task_struct *parent, struct task_struct *child),
//! ```
//! `kernel_clone()` fires it before `wake_up_new_task()`, so the child is in
//! the follow set before it can run. It fires for threads too; a thread
//! shares its parent's tgid, which is already followed.
//!
//! The classic tracepoint (v7.0+, see `tracepoints`) has only the child's
//! pid: `pid_t child_pid`, which for a thread is its thread id. Every child
//! of a followed process is put in the set, threads too, and every thread
//! leaves it at exit, so a thread id never outlives its thread there.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::warn;
use cowprof_common::Stat;

use crate::{
    maps::{config, count, PROC_COUNTS, TARGETS},
    read::read_at,
    store::TASK_STATE,
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    if followed_parent() {
        let child: *const c_void = ctx.arg(1);
        let pid: u32 = read_at(child, config().offsets.task_pid);
        let tgid: u32 = read_at(child, config().offsets.task_tgid);
        if pid != 0 && pid == tgid {
            let _ = follow(&ctx, pid);
        }
    }
    0
}

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn tp_sched_process_fork(ctx: TracePointContext) -> u32 {
    if followed_parent() {
        let pid: u32 = crate::tracepoints::field(&ctx, config().tracepoints.fork_child_pid);
        if pid != 0 {
            let _ = follow(&ctx, pid);
        }
    }
    0
}

/// Whether the forking process is followed (never when system-wide).
#[inline(always)]
fn followed_parent() -> bool {
    if config().system_wide != 0 {
        return false;
    }
    #[expect(clippy::cast_possible_truncation, reason = "tgid is the upper half")]
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: presence test only.
    unsafe { TARGETS.get(&parent).is_some() }
}

#[inline(always)]
fn follow<C: EbpfContext>(ctx: &C, pid: u32) -> Result<(), Stat> {
    let config = config();
    TARGETS.insert(&pid, &1, 0).map_err(|_| {
        count(Stat::TargetInsertFailed);
        if config.debug != 0 {
            warn!(ctx, "cannot follow child {}: TARGETS is full", pid);
        }
        Stat::TargetInsertFailed
    })
}

/// include/trace/events/sched.h: `sched_process_exit(struct task_struct *p, ...)`,
/// fired from `do_exit()` in the exiting task (every thread), after
/// `exit_mm()`. Under lazy completion the thread's last fault completes
/// here if the mmap lock `exit_mm()` takes did not complete it first
/// (`mmap_lock`); its mapping can no longer be looked up.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(_ctx: BtfTracePointContext) -> i32 {
    on_exit();
    0
}

/// The same as a classic tracepoint (v7.0+): nothing of the record is read.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn tp_sched_process_exit(_ctx: TracePointContext) -> u32 {
    on_exit();
    0
}

#[inline(always)]
fn on_exit() {
    if config().lazy != 0 {
        crate::fault::finish_current();
    }
    TASK_STATE.remove_current();
    let pid_tgid = bpf_get_current_pid_tgid();
    #[expect(clippy::cast_possible_truncation, reason = "pid_tgid packs two u32")]
    let (tgid, pid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // A process leaves the set when its main thread exits; a thread, which
    // only the classic fork program puts there (its offset is set only
    // where that program is used), when it does.
    let threads_followed = config().tracepoints.fork_child_pid != 0;
    if config().system_wide == 0 && (pid == tgid || threads_followed) {
        let _ = TARGETS.remove(&pid);
    }
    if pid != tgid {
        return;
    }
    if config().emit == 0 {
        // Count-only mode: name the process after what it ran last (its
        // first fault may predate an exec).
        if let Some(counts) = PROC_COUNTS.get_ptr_mut(&tgid) {
            if let Ok(comm) = bpf_get_current_comm() {
                // SAFETY: this CPU's copy of a valid map value.
                unsafe {
                    (*counts).comm = comm;
                    (*counts).comm_ns = bpf_ktime_get_ns();
                }
            }
        }
    }
}
