//! One file per probe. The tracepoint strategy (DESIGN.md §3) is:
//!
//! 1. [`fault_entry`]: `exceptions:page_fault_user` opens a pending record for
//!    each user write fault of a followed process (IRQs off: no lookups here).
//! 2. [`fault_vma`]: the `PAGE_FAULTS` software event, which fires right
//!    after the fault handler enables IRQs, looks up the mapping.
//! 3. [`page_alloc`] and [`rss_stat`] note, inside the fault, whether a page
//!    was allocated (zeroed or not) and whether a page-cache page became anon.
//! 4. [`fault_done`]: the `PAGE_FAULTS_MIN`/`MAJ` software events, which fire
//!    when the fault completes, classify it and emit the event.
//! 5. [`sched`]: fork and exit keep the set of followed processes.
pub mod fault_done;
pub mod fault_entry;
pub mod fault_vma;
pub mod page_alloc;
pub mod rss_stat;
pub mod sched;
