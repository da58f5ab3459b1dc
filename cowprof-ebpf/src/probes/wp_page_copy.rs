//! The copy itself: entry of `wp_page_copy()` where it is not inlined (v6.1;
//! inlined into `do_wp_page` by v6.12), fentry and kprobe strategies.
//!
//! mm/memory.c (v6.1):
//! ```c
//! static vm_fault_t wp_page_copy(struct vm_fault *vmf)
//! {
//!         struct page *old_page = vmf->page;   /* NULL for the zero page */
//! ```
//! The old page says which copy this is: none (the zero page), anon
//! (`page->mapping` has `PAGE_MAPPING_ANON` set) or page cache. On v6.1
//! `kmem:rss_stat` cannot tell, so this is the exact source there.
use core::ffi::c_void;

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};

use crate::{
    maps::config,
    pending::active,
    read::{read_at, try_read_at},
};

/// `PAGE_MAPPING_ANON` in include/linux/page-flags.h.
const PAGE_MAPPING_ANON: u64 = 0x1;

#[inline(always)]
fn on_copy(vmf: *const c_void) {
    let Some(state) = active() else {
        return;
    };
    let off = &config().offsets;
    let page: *const c_void = read_at(vmf, off.vmf_page);
    state.pending.copy_seen = 1;
    if page.is_null() {
        state.pending.alloc_zeroed = 1;
    } else {
        let mapping: u64 = try_read_at(page, off.page_mapping).unwrap_or(PAGE_MAPPING_ANON);
        if mapping & PAGE_MAPPING_ANON == 0 {
            state.pending.file_to_anon = 1;
        }
    }
}

#[fentry(function = "wp_page_copy")]
pub fn fentry_wp_page_copy(ctx: FEntryContext) -> i32 {
    on_copy(ctx.arg(0));
    0
}

#[kprobe]
pub fn kprobe_wp_page_copy(ctx: ProbeContext) -> u32 {
    if let Some(vmf) = ctx.arg(0) {
        on_copy(vmf);
    }
    0
}
