//! Page allocations inside a fault: `kmem:mm_page_alloc`, as a BTF tracepoint.
//!
//! include/trace/events/kmem.h:
//! ```c
//! TRACE_EVENT(mm_page_alloc,
//!     TP_PROTO(struct page *page, unsigned int order,
//!              gfp_t gfp_flags, int migratetype),
//! ```
//! `wp_page_copy()` allocates the new page with `GFP_HIGHUSER_MOVABLE`, plus
//! `__GFP_ZERO` when the old PTE mapped the zero page
//! (`vma_alloc_zeroed_movable_folio`); `do_cow_fault()` does the same for the
//! anon copy of a page-cache page. Page tables and slab pages are not
//! movable, so they do not count.
//!
//! Under lazy completion a task's record stays open after its fault
//! returned, until the task faults again; an allocation counts only when
//! the task is still inside that fault (`regs::inside`), so a `read(2)` or
//! `MAP_POPULATE` between two faults does not make the first one a copy.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};

use crate::{
    fault,
    maps::config,
    pending::{active, resolve_vma},
    regs,
    vma::Space,
};

/// `___GFP_MOVABLE` (include/linux/gfp_types.h), stable since v4.x.
const GFP_MOVABLE: u32 = 0x08;
/// `___GFP_ZERO`.
const GFP_ZERO: u32 = 0x100;

/// `TP_PROTO(struct page *page, unsigned int order, gfp_t gfp_flags, int
/// migratetype)`.
#[btf_tracepoint(function = "mm_page_alloc")]
pub fn mm_page_alloc(ctx: BtfTracePointContext) -> i32 {
    try_mm_page_alloc(&ctx, ctx.arg(1), ctx.arg(2));
    0
}

/// The same as a classic tracepoint (v7.0+, see `tracepoints`): the record's
/// `unsigned int order` and `gfp_flags` (`unsigned long` since v5.19; its
/// low half on little-endian x86).
#[tracepoint(category = "kmem", name = "mm_page_alloc")]
pub fn tp_mm_page_alloc(ctx: TracePointContext) -> u32 {
    let off = &config().tracepoints;
    let order: u32 = crate::tracepoints::field(&ctx, off.page_alloc_order);
    let gfp: u32 = crate::tracepoints::field(&ctx, off.page_alloc_gfp);
    try_mm_page_alloc(&ctx, order, gfp);
    0
}

#[inline(always)]
fn try_mm_page_alloc<C: EbpfContext>(ctx: &C, order: u32, gfp: u32) {
    let Some(state) = active() else {
        return;
    };
    if order != 0 || gfp & GFP_MOVABLE == 0 {
        return;
    }
    if config().lazy != 0 && !regs::inside(ctx, &state.pending) {
        return;
    }
    fault::note_alloc(state, gfp & GFP_ZERO != 0);
    // IRQs are on inside the fault: the cheap place for a lookup.
    if config().lazy != 0 {
        fault::resolve_inside(state);
    } else {
        resolve_vma(state, Space::Current);
    }
}
