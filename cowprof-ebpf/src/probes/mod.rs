//! One file per probe. The tracepoint strategy (docs/kernel.md §3) is:
//!
//! 1. [`fault_entry`]: `exceptions:page_fault_user` opens a pending record for
//!    each user write fault of a followed process, taking the mapping from
//!    the task's cache when the address space has not changed (IRQs are off
//!    here: no lookups).
//! 2. [`page_alloc`] and [`rss_stat`] note, inside the fault, whether a page
//!    was allocated (zeroed or not) and whether a page-cache page became
//!    anon. The first allocation looks the mapping up if the cache missed:
//!    IRQs are on there, so `bpf_find_vma` is cheap.
//! 3. [`fault_done`]: the `PAGE_FAULTS_MIN`/`MAJ` software events, which fire
//!    when the fault completes, look up the mapping of faults that allocated
//!    nothing and missed the cache, classify, and emit the event. Only when
//!    latency is measured: otherwise faults complete lazily, when the task
//!    is next seen outside the fault, at [`fault_entry`], [`mmap_lock`],
//!    [`sched`] (exit), or the final [`flush`].
//! 4. [`sched`]: fork and exit keep the set of followed processes.
//!
//! The fentry and kprobe strategies replace 1 and 3 with the entry and return
//! of [`handle_mm_fault`], which hands them the vma, and mark protection
//! faults in [`do_wp_page`] and copies in [`wp_page_copy`] where it is not
//! inlined. 2 and 4 are shared by every strategy.
pub mod do_wp_page;
pub mod fault_done;
pub mod fault_entry;
pub mod flush;
pub mod handle_mm_fault;
pub mod mmap_lock;
pub mod page_alloc;
pub mod rss_stat;
pub mod sched;
pub mod wp_page_copy;
