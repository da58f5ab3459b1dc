//! Page-cache page turned anon: `kmem:rss_stat`, as a BTF tracepoint.
//!
//! include/trace/events/kmem.h (v6.2+):
//! ```c
//! TRACE_EVENT(rss_stat,
//!     TP_PROTO(struct mm_struct *mm, int member),
//! ```
//! mm/memory.c `wp_page_copy()`:
//! ```c
//! if (!folio_test_anon(old_folio)) {
//!         dec_mm_counter(mm, mm_counter_file(old_folio));
//!         inc_mm_counter(mm, MM_ANONPAGES);
//! }
//! ```
//! So a file counter changing during a private write fault means the page
//! copied was a page-cache page, not an anon page shared after fork.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};

use crate::{maps::config, pending::active, regs};

/// `MM_FILEPAGES` and `MM_SHMEMPAGES` of `enum` in include/linux/mm_types_task.h.
const MM_FILEPAGES: i32 = 0;
const MM_SHMEMPAGES: i32 = 3;

#[btf_tracepoint(function = "rss_stat")]
pub fn rss_stat(ctx: BtfTracePointContext) -> i32 {
    try_rss_stat(&ctx, ctx.arg(1));
    0
}

/// The same as a classic tracepoint (v7.0+): the record's `int member`.
#[tracepoint(category = "kmem", name = "rss_stat")]
pub fn tp_rss_stat(ctx: TracePointContext) -> u32 {
    let member: i32 = crate::tracepoints::field(&ctx, config().tracepoints.rss_member);
    try_rss_stat(&ctx, member);
    0
}

#[inline(always)]
fn try_rss_stat<C: EbpfContext>(ctx: &C, member: i32) {
    // Before v6.2 (SPLIT_RSS_COUNTING) the tracepoint fires when a task's
    // cached counters are synced at the start of a fault, not when a page
    // moves, so it says nothing about the page copied.
    if config().offsets.rss_stat_exact == 0 {
        return;
    }
    let Some(state) = active() else {
        return;
    };
    if member != MM_FILEPAGES && member != MM_SHMEMPAGES {
        return;
    }
    // Lazy completion: the record may outlive its fault (see page_alloc).
    if config().lazy == 0 || regs::inside(ctx, &state.pending) {
        state.pending.file_to_anon = 1;
    }
}
