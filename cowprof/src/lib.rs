//! cowprof: a copy-on-write fault profiler.
//!
//! The library holds everything; `main.rs` only parses arguments and maps
//! errors to exit codes. Data flows one way: probe → decode → resolve →
//! state → report → sinks (see ARCHITECTURE.md).
pub mod advise;
pub mod cli;
pub mod collector;
pub mod decode;
pub mod doctor;
pub mod exit;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "parquet")]
pub mod gate;
pub mod kernel;
pub mod newest;
pub mod output;
pub mod probe;
#[cfg(feature = "parquet")]
pub mod profile;
pub mod record;
pub mod recording;
pub mod report;
pub mod resolve;
pub mod serve;
pub mod sink;
pub mod target;
pub mod top;
