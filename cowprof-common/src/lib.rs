//! Types shared by the eBPF programs and the userspace collector, and the one
//! classification function every probe strategy uses.
//!
//! Everything here is `#![no_std]`, `#[repr(C)]` and `Copy`, with its size
//! asserted at compile time so that the kernel and userspace views of a record
//! can never drift apart.
#![no_std]

pub mod classify;
pub mod event;

pub use classify::{classify, FaultFacts, Kind};
pub use event::{
    BssInfo, Config, FaultEvent, FileKey, FileRecord, Offsets, Pending, ProcCounts, Stat,
    TaskState, TpOffsets, VmaCache, VmaInfo, TAG_FAULT, TAG_FILE,
};
