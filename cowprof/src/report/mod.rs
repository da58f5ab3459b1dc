//! A report: a snapshot of the model with every key named, owned and ready
//! for the sinks that read whole reports (the summary, the profile's end
//! tables, `top`, `report` and the replay). Built by [`naming`], live in the
//! collector thread and offline by the profile's reader; each event is
//! named for the event sinks by [`events`], and the exporter's sums by
//! [`tallies`].
pub mod events;
pub mod naming;
pub mod tallies;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::probe::ProbeStats;
use cowprof_model::state::{KindCounts, LatencySummary, View};
use cowprof_model::waste::Pages;

/// What one process paid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessSummary {
    pub pid: u32,
    pub comm: String,
    pub counts: KindCounts,
    /// Sum of per-fault latencies, in ns.
    pub latency_ns: u64,
}

/// One row of a view, as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Row {
    pub key: String,
    pub counts: KindCounts,
    pub copies: u64,
    /// Distinct processes that wrote.
    pub processes: usize,
    /// The code that wrote first.
    pub first_writer: String,
}

/// Writable pages of one image, or of one of its sections or symbols,
/// named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Waste {
    pub name: String,
    #[serde(flatten)]
    pub pages: Pages,
}

/// The touch map of one image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImageWaste {
    #[serde(flatten)]
    pub total: Waste,
    pub sections: Vec<Waste>,
    /// Data symbols of the writable segments, most pages never written first
    /// (at most [`SYMBOLS_PER_IMAGE`]).
    pub symbols: Vec<Waste>,
    /// Per process: (pid, pages it touched, writable pages it left untouched).
    pub per_process: Vec<(u32, u64, u64)>,
}

/// One writable page of an image: the touch map, page by page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageRow {
    pub image: String,
    /// The page's virtual address in the image.
    pub page: u64,
    pub section: String,
    pub written: bool,
    /// Processes that wrote it.
    pub processes: u32,
    /// Faults on it.
    pub faults: u64,
    /// The data symbol first written there (empty when unwritten or unknown).
    pub symbol: String,
    /// The code that wrote it first (empty when unwritten).
    pub first_writer: String,
}

/// One process's faults in one mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessMappingRow {
    pub pid: u32,
    /// The mapping's name, as the mapping view names it (anonymous
    /// mappings with their range).
    pub mapping: String,
    pub counts: KindCounts,
    pub first_writer: String,
}

/// How `report` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

/// Sorts a view's rows as every output shows them: most COW faults first,
/// then by key.
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.counts
            .cow_total()
            .cmp(&a.counts.cow_total())
            .then_with(|| a.key.cmp(&b.key))
    });
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Sorts processes: most COW faults first, then by pid.
pub fn sort_processes(processes: &mut [ProcessSummary]) {
    processes.sort_by(|a, b| {
        b.counts
            .cow_total()
            .cmp(&a.counts.cow_total())
            .then(a.pid.cmp(&b.pid))
    });
}

/// How many symbols each image's touch map lists.
pub const SYMBOLS_PER_IMAGE: usize = 50;

/// A named snapshot.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Faults accounted.
    pub events: u64,
    /// Processes, most COW faults first (the top N when capped).
    pub processes: Vec<ProcessSummary>,
    pub total_processes: usize,
    /// Exited processes summed into the `(exited)` entry, pid 0: past the
    /// heaviest exited ones, processes do not keep rows of their own.
    #[serde(skip_serializing_if = "is_zero")]
    pub folded_processes: u64,
    /// The views asked for, their rows most COW faults first.
    pub views: BTreeMap<View, Vec<Row>>,
    /// Writable image pages never written, per image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waste: Vec<ImageWaste>,
    /// The touch map page by page (profiles keep it; summaries do not).
    #[serde(skip)]
    pub pages: Vec<PageRow>,
    pub totals: KindCounts,
    /// Per-fault latency percentiles per kind.
    pub latency: BTreeMap<&'static str, LatencySummary>,
    /// Latency histograms per kind: (bucket upper bound in ns, faults).
    #[serde(skip)]
    pub latency_histogram: BTreeMap<&'static str, Vec<(u64, u64)>>,
    /// Per process and mapping (only when the collector keeps them).
    #[serde(skip)]
    pub process_mappings: Vec<ProcessMappingRow>,
    /// Files whose writers show as `image+0xoff`: no symbol covers them and
    /// no debug information was found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unnamed_writers: Vec<String>,
    /// The programs' counters at the moment of the snapshot.
    #[serde(rename = "probe_stats")]
    pub kernel: ProbeStats,
}

impl Report {
    /// Counts per kind counted in the kernel (events lost included).
    #[must_use]
    pub fn kernel_totals(&self) -> KindCounts {
        KindCounts::from_array(self.kernel.kernel_counts)
    }
}
