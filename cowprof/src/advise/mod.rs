//! `cowprof advise DIR`: from a profile to a remedy. For each image, the
//! pages its written data costs now against the fewest it would need packed
//! together (lld's layout, [`plan`]), the never-written symbols riding on
//! written pages, the commit charge of its private writable mappings, the
//! pages only the dynamic loader writes (relocations), and an ordering file
//! a linker packs the written data with ([`ordering`]).
//!
//! It reads the images the profile names ([`image`]), as `perf report`
//! reads binaries, and refuses one that is not the file recorded.
/// How `advise` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AdviseFormat {
    #[default]
    Text,
    Json,
}

pub mod image;
pub mod ordering;
pub mod plan;
#[cfg(feature = "parquet")]
mod render;
#[cfg(feature = "parquet")]
mod verb;
#[cfg(feature = "parquet")]
mod writes;

#[cfg(feature = "parquet")]
pub use render::ImageAdvice;
#[cfg(feature = "parquet")]
pub use verb::{run, AdviseError, AdviseOptions};
