//! The life of one write fault, shared by every probe strategy: open it,
//! note what happens inside it, and classify and emit it when it completes.
//!
//! Completion is eager where the strategy sees the fault end (fexit,
//! kretprobe, or the tracepoint strategy's perf event when latency is
//! measured), and lazy otherwise: the tracepoint strategy then completes a
//! task's fault when the task is next seen outside it (its next fault, an
//! mmap lock taken outside the fault, its exit, or the final flush), and
//! binds allocations to the fault through the task's user registers
//! (docs/kernel.md §3).
use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        BPF_F_USER_STACK, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
    },
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated as gen},
    programs::tracing::StackIdContext,
};
use cowprof_common::{
    classify, event::is_kernel_address, FaultEvent, Pending, ProcCounts, Stat, TaskState, VmaInfo,
    TAG_FAULT,
};

use crate::{
    maps::{bump, config, count, is_target, EVENTS, KIND_COUNTS, PROC_COUNTS, STACKS},
    pending::{active, remember_vma, resolve_vma, vma_from_cache, Subject},
    read::{current_task, read_at},
    store::TASK_STATE,
    vma::{self, Space},
};

/// The current process, if it is followed.
#[inline(always)]
pub fn target_tgid() -> Option<u32> {
    #[expect(clippy::cast_possible_truncation, reason = "tgid is the upper half")]
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    is_target(tgid).then_some(tgid)
}

/// The current task's state; created when `create` is set (a write fault
/// is about to open a record).
#[inline(always)]
pub fn task_state(create: bool) -> Option<&'static mut TaskState> {
    let state = TASK_STATE.get(current_task(), create);
    if state.is_none() && create {
        count(Stat::PendingAllocFailed);
    }
    state
}

/// The current task's state if its process is followed; created when
/// `create` is set. A task found in the follow set once is marked in its
/// state, so its later faults skip the hash lookup (about 90 ns here):
/// a process leaves the set only when it exits. Tasks not followed are
/// looked up every time, and get no state.
#[inline(always)]
pub fn followed_state(create: bool) -> Option<&'static mut TaskState> {
    let task = current_task();
    if let Some(state) = TASK_STATE.get(task, false) {
        if state.followed != 0 {
            return Some(state);
        }
    }
    target_tgid()?;
    let state = task_state(create)?;
    state.followed = 1;
    Some(state)
}

/// Lazy completion: the current task is seen outside its record's fault, so
/// that fault is over. Completes the record, if one is open.
#[inline(always)]
pub fn finish(state: &mut TaskState) {
    if state.pending.active != 0 {
        let stack_id = state.pending.stack_id;
        complete(state, &Subject::current(), || stack_id);
    }
}

/// [`finish`] for the current task, if it has state.
#[inline(always)]
pub fn finish_current() {
    if let Some(state) = active() {
        finish(state);
    }
}

/// A write fault began: opens its record in `state`, `vma_found` unset.
/// The clock is read once here: it dates the fault, and with latency
/// measured it is the start. (`bpf_ktime_get_coarse_ns` would be cheaper,
/// but tracing programs may not call it: it is not NMI-safe.)
#[inline(always)]
pub fn open(state: &mut TaskState, addr: u64, ip: u64, error_code: u32) {
    // SAFETY: no preconditions.
    let start_ns = unsafe { bpf_ktime_get_ns() };
    state.pending = Pending {
        addr,
        ip,
        start_ns,
        error_code,
        active: 1,
        stack_id: -1,
        ..Pending::default()
    };
}

/// Takes the mapping from the task's cache when the address space has not
/// changed since the last lookup (two loads; safe with IRQs off). Under
/// lazy completion, also notes the address space the fault happened in.
#[inline(always)]
pub fn try_cache(state: &mut TaskState) {
    let mm: *const c_void = read_at(current_task().cast(), config().offsets.task_mm);
    let seq = vma::lock_seq_of(mm);
    if config().lazy != 0 {
        state.pending.mm = mm as u64;
    }
    if let Some(seq) = seq {
        if config().lazy != 0 {
            state.pending.seq = seq;
            state.pending.seq_known = 1;
        }
        vma_from_cache(state, seq);
    }
}

/// Sets the mapping from a `struct vm_area_struct *` the probe was given,
/// or from the task's cache, which also holds the `.bss` lookup.
#[inline(always)]
pub fn set_vma(state: &mut TaskState, vma_ptr: *const c_void) {
    let seq = vma::lock_seq(current_task());
    if seq.is_some_and(|seq| vma_from_cache(state, seq)) {
        return;
    }
    let refs = vma::read_vma(vma_ptr, &config().offsets, &mut state.pending.vma);
    if config().attribution != 0 {
        refs.announce(&state.pending.vma);
    }
    remember_vma(state, seq, Space::Current);
}

/// Makes `state.code_cache.vma` the mapping of the writing instruction:
/// from the cache, or a lookup (which also announces the code's file). It is
/// zeroed when the lookup fails. Done once per record.
///
/// `seq` is the address space's sequence when the caller knows it (inside
/// the fault, the one read at entry); otherwise it is read here, with two
/// probe reads that cost more than the rest.
#[inline(always)]
fn code_vma(state: &mut TaskState, space: Space, seq: Option<u32>) {
    if state.pending.code_found != 0 {
        return;
    }
    state.pending.code_found = 1;
    let ip = state.pending.ip;
    if is_kernel_address(ip) {
        // The kernel wrote (a kernel-mode fault on user memory).
        state.code_cache.vma = VmaInfo::default();
        return;
    }
    let seq = match seq {
        Some(seq) => Some(seq),
        None => vma::lock_seq(space.task()),
    };
    if let Some(seq) = seq {
        if state.code_cache.covers(ip, seq) {
            return;
        }
    }
    count(Stat::VmaLookups);
    state.code_cache.valid = 0;
    if !vma::find_into(space, ip, &mut state.code_cache.vma) {
        count(Stat::VmaLookupFailed);
        state.code_cache.vma = VmaInfo::default();
        return;
    }
    if let Some(seq) = seq {
        state.code_cache.seq = seq;
        state.code_cache.valid = 1;
    }
}

/// Lazy completion, at a point inside the fault where IRQs are on (an
/// allocation, or the fault taking the mmap lock): looks up now what
/// completion would otherwise look up with IRQs off, at the next fault's
/// entry, where `bpf_find_vma` pays a self-IPI (docs/kernel.md §4). Without
/// the per-task cache (before v6.4) that is every fault's writer.
#[inline(always)]
pub fn resolve_inside(state: &mut TaskState) {
    resolve_vma(state, Space::Current);
    if config().attribution != 0 && config().emit != 0 {
        // Entry read the sequence (when the kernel has one) for this fault.
        let seq = (state.pending.seq_known != 0).then_some(state.pending.seq);
        code_vma(state, Space::Current, seq);
    }
}

/// An order-0 movable page was allocated inside the fault.
#[inline(always)]
pub fn note_alloc(state: &mut TaskState, zeroed: bool) {
    state.pending.allocs += 1;
    if zeroed {
        state.pending.alloc_zeroed = 1;
    }
}

/// The user stack of the current task, when `--stacks` asked for it.
#[inline(always)]
pub fn user_stack<C: StackIdContext>(ctx: &C) -> i32 {
    if config().stacks == 0 {
        return -1;
    }
    match ctx.get_stackid(&STACKS, u64::from(BPF_F_USER_STACK)) {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "ids index a 16384-entry map"
        )]
        Ok(id) => id as i32,
        Err(_) => {
            count(Stat::StackFailed);
            -1
        }
    }
}

/// Count-only mode: one more fault of `kind` for `who`'s process, in this
/// CPU's copy of its `PROC_COUNTS` entry.
#[inline(always)]
fn count_process(kind: u8, who: &Subject) {
    let tgid = who.tgid();
    let slot = usize::from(kind & 7);
    if let Some(counts) = PROC_COUNTS.get_ptr_mut(&tgid) {
        // SAFETY: this CPU's copy of a valid map value; slot < 8.
        unsafe { (*counts).kinds[slot] += 1 };
        return;
    }
    let mut fresh = ProcCounts {
        // SAFETY: no preconditions.
        comm_ns: unsafe { bpf_ktime_get_ns() },
        ..ProcCounts::default()
    };
    // SAFETY: `comm` is COMM_LEN bytes.
    unsafe { who.comm_into(fresh.comm.as_mut_ptr()) };
    fresh.kinds[slot] = 1;
    // When another CPU created the entry meanwhile, the insert fails; this
    // CPU's copy of theirs is zero, and the add goes there.
    if PROC_COUNTS
        .insert(&tgid, &fresh, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        return;
    }
    match PROC_COUNTS.get_ptr_mut(&tgid) {
        // SAFETY: as above.
        Some(counts) => unsafe { (*counts).kinds[slot] += 1 },
        None => count(Stat::ProcCountLost),
    }
}

/// `who`'s fault completed: classify it, count it and send it to userspace.
/// `stack` is asked for only when the fault is one cowprof reports.
#[inline(always)]
pub fn complete(state: &mut TaskState, who: &Subject, stack: impl FnOnce() -> i32) {
    state.pending.active = 0;
    // Faults that allocated nothing (reuse, write-notify) and missed the
    // cache are looked up here.
    resolve_vma(state, who.space);
    let mut facts = state.pending.facts();
    if config().offsets.rss_stat_exact == 0
        && state.pending.copy_seen == 0
        && state.pending.vma.file_backed != 0
    {
        // Without an exact rss_stat (before v6.2), a copy in a file mapping
        // is taken to be of a page-cache page.
        facts.file_to_anon = 1;
    }
    let Some(kind) = classify(&facts) else {
        return;
    };
    bump(&KIND_COUNTS, u32::from(kind as u8));
    if config().emit == 0 {
        count_process(kind as u8, who);
        return;
    }
    if config().attribution != 0 {
        code_vma(state, who.space, None);
    } else {
        state.code_cache.vma = VmaInfo::default();
    }
    let stack_id = stack();
    let Some(mut entry) = EVENTS.reserve::<FaultEvent>(0) else {
        count(Stat::RingbufLost);
        return;
    };
    let pending = &state.pending;
    // Lazy completion dates the fault at its entry and measures no latency.
    let (now, latency_ns) = if config().latency != 0 {
        // SAFETY: no preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        (now, now.saturating_sub(pending.start_ns))
    } else {
        (pending.start_ns, 0)
    };
    let pid_tgid = who.pid_tgid;
    let event = entry.as_mut_ptr();
    // Field by field into the reserved entry: a whole `FaultEvent` built on
    // the stack first would take 208 of the 512 bytes the verifier allows
    // across this program and the global functions it calls. Ring buffer
    // memory is not zeroed, so every field is written.
    // SAFETY: `event` points at the reserved entry.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "pid_tgid packs two u32; CPU ids fit in 16 bits"
    )]
    unsafe {
        (*event).tag = TAG_FAULT;
        (*event).kind = kind as u8;
        (*event)._pad = 0;
        (*event).cpu = gen::bpf_get_smp_processor_id() as u16;
        (*event).ts_ns = now;
        (*event).latency_ns = latency_ns;
        (*event).addr = pending.addr;
        (*event).ip = pending.ip;
        (*event).vma = pending.vma;
        (*event).bss = pending.bss;
        (*event).code = state.code_cache.vma;
        (*event).pid = (pid_tgid >> 32) as u32;
        (*event).tid = pid_tgid as u32;
        (*event).error_code = pending.error_code;
        (*event).stack_id = stack_id;
        // The helpers zero-fill the rest of the buffer.
        who.comm_into((&raw mut (*event).comm).cast());
    }
    // Wake the reader only when a quarter of the buffer is waiting; it polls
    // on a timer otherwise. A wakeup per event costs an IPI per fault.
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA.into());
    let wakeup = if waiting >= u64::from(config().wakeup_bytes) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(wakeup.into());
}
