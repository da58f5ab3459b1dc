//! One file per probe. The tracepoint strategy (DESIGN.md §3) is:
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
//!    nothing and missed the cache, classify, and emit the event.
//! 4. [`sched`]: fork and exit keep the set of followed processes.
pub mod fault_done;
pub mod fault_entry;
pub mod page_alloc;
pub mod rss_stat;
pub mod sched;
