//! Live tests: real probes against workloads whose exact answer is known.
//!
//! Run as one binary with `--test-threads=1` (`cargo xtask test` does), as
//! root. Without BPF the tests skip with a one-line reason, unless
//! `COWPROF_REQUIRE_BPF=1`, where they fail instead.
mod accounting;
#[cfg(feature = "parquet")]
mod advise;
mod attribution;
mod count_only;
mod debuginfo;
mod doctor;
#[cfg(feature = "parquet")]
mod errors;
#[cfg(feature = "parquet")]
mod gate;
mod harness;
mod hostile;
#[cfg(feature = "parquet")]
mod killpoints;
mod kinds;
#[cfg(feature = "parquet")]
mod one_model;
mod pipeline;
mod privacy;
#[cfg(feature = "parquet")]
mod profiles;
mod prometheus;
mod serve;
mod smaps;
mod targets;
#[cfg(feature = "parquet")]
mod top;
mod unprivileged;
