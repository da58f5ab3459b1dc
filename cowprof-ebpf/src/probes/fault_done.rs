//! Fault completion: the `PERF_COUNT_SW_PAGE_FAULTS_MIN`/`MAJ` software events.
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
//! Everything about the fault is known here: classify, count and emit.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::perf_event,
    programs::PerfEventContext,
};
use cowprof_common::{classify, FaultEvent, Stat};

use crate::{
    maps::{bump, config, count, EVENTS, KIND_COUNTS},
    pending::{active, resolve_vma},
};

#[perf_event]
pub fn fault_done(ctx: PerfEventContext) -> u32 {
    let _ = try_fault_done(&ctx);
    0
}

fn try_fault_done(ctx: &PerfEventContext) -> Result<(), Stat> {
    let Some(state) = active() else {
        return Ok(());
    };
    // SAFETY: ctx points at the kernel's bpf_perf_event_data.
    let addr = unsafe { (*ctx.ctx).addr };
    if addr != state.pending.addr {
        count(Stat::CompletionUnmatched);
        return Ok(());
    }
    state.pending.active = 0;
    // Faults that allocated nothing (reuse, write-notify) and missed the
    // cache are looked up here. This is the costly place for a lookup, so the
    // cache matters most for them.
    resolve_vma(state);
    let pending = &state.pending;
    let Some(kind) = classify(&pending.facts()) else {
        return Ok(());
    };
    bump(&KIND_COUNTS, u32::from(kind as u8));
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let mut entry = EVENTS
        .reserve::<FaultEvent>(0)
        .ok_or(Stat::RingbufLost)
        .inspect_err(|s| count(*s))?;
    #[expect(clippy::cast_possible_truncation, reason = "pid_tgid packs two u32")]
    entry.write(FaultEvent {
        ts_ns: now,
        latency_ns: now.saturating_sub(pending.start_ns),
        addr,
        ip: pending.ip,
        vma: pending.vma,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        error_code: pending.error_code,
        kind: kind as u8,
        _pad: [0; 3],
        comm: bpf_get_current_comm().unwrap_or_default(),
    });
    let pending_bytes = EVENTS.query(BPF_RB_AVAIL_DATA.into());
    let wakeup = if pending_bytes >= u64::from(config().wakeup_bytes) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(wakeup.into());
    Ok(())
}
