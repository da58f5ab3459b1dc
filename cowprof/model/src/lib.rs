//! cowprof's model of a recording, the one place faults become numbers.
//!
//! - [`keys`]: the typed identities of a fault (mapping, image, section,
//!   symbol, page, writer, stack), small integers and no text;
//! - [`state`]: the aggregator, fed faults one at a time (a live
//!   recording) or grouped (a profile's events), with every view, the
//!   touch map and the latency histograms, and the folding of exited
//!   processes that bounds it;
//! - [`names`]: what turns keys into text, implemented by whoever learned
//!   the names (the live resolver, a profile's dictionary), and used only
//!   at the edge;
//! - [`waste`]: each image's writable pages never written, from the touch
//!   map and the image's layout.
//!
//! Nothing here knows of the kernel, files, the command line, terminals or
//! output formats: the crate boundary makes a back-edge a compile error.
pub mod counts;
pub mod diff;
pub mod keys;
pub mod names;
pub mod state;
pub mod views;
pub mod waste;

/// The page size cowprof assumes (x86-64).
pub const PAGE: u64 = 4096;
