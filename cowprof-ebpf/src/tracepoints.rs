//! Reading classic (perf) tracepoint records, for the `tracepoint/`
//! programs that stand in for the `tp_btf` ones from v7.0.
//!
//! From v7.0 a tracepoint's callbacks run under SRCU-fast instead of with
//! preemption off, and a BPF raw tracepoint program only with migration
//! disabled. include/linux/tracepoint.h (v7.0), `__DECLARE_TRACE`:
//! ```c
//! guard(srcu_fast_notrace)(&tracepoint_srcu);
//! __DO_TRACE_CALL(name, TP_ARGS(args));
//! ```
//! kernel/trace/bpf_trace.c (v7.0), `__bpf_trace_run()`:
//! ```c
//! rcu_read_lock_dont_migrate();
//! if (unlikely(!bpf_prog_get_recursion_context(prog))) {
//!         bpf_prog_inc_misses_counter(prog);
//!         goto out;
//! ```
//! The recursion context is one counter per CPU and program, so while a task
//! is preempted inside a `tp_btf` program, every other task's event on that
//! CPU skips it. The perf handler that runs a classic tracepoint program
//! keeps preemption off (include/trace/perf.h, `perf_trace_##call`:
//! `guard(preempt_notrace)();`), so these programs see every event. Their
//! records' field offsets come from tracefs `format` files, read by
//! userspace into `Config::tracepoints`.
use aya_ebpf::programs::TracePointContext;

/// The record's field at `offset`; zero if it cannot be read.
#[inline(always)]
pub fn field<T: Copy + Default>(ctx: &TracePointContext, offset: u32) -> T {
    // SAFETY: a checked read within the record the kernel passed.
    unsafe { ctx.read_at::<T>(offset as usize) }.unwrap_or_default()
}
