//! cowprof: a copy-on-write fault profiler.
//!
//! The library holds everything; `main.rs` only parses arguments and maps
//! errors to exit codes.
pub mod attrib;
pub mod cli;
pub mod collect;
pub mod doctor;
pub mod kernel;
pub mod probe;
pub mod record;
pub mod report;
pub mod target;
