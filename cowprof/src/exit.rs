//! Exit codes, documented in `--help` and the README: one per kind of
//! failure, the same for every verb.
/// A runtime failure not covered below.
pub const FAILURE: u8 = 1;
/// Bad usage (clap's own code).
pub const USAGE: u8 = 2;
/// Not enough privileges to load the probes.
pub const PRIVILEGES: u8 = 3;
/// The kernel lacks something the probes need.
pub const UNSUPPORTED: u8 = 4;
/// The target process or command cannot be found or run.
pub const TARGET: u8 = 5;
/// An output file cannot be written.
pub const OUTPUT: u8 = 6;
/// `--exact` was asked for and the accounting is incomplete (events
/// lost, or counters unreadable).
pub const INEXACT: u8 = 7;
/// A directory that is not a profile (`report`, `advise`, `top --replay`).
pub const NOT_A_PROFILE: u8 = 8;
/// A profile's manifest or Parquet file is corrupt.
pub const CORRUPT: u8 = 9;
/// A profile of another schema version.
pub const VERSION: u8 = 10;
/// `serve`: the listen address cannot be bound (in use, or not one of
/// this host's).
pub const LISTEN: u8 = 11;
/// `advise`: an image the profile names cannot be read, or is not the
/// file recorded.
pub const IMAGE: u8 = 12;
