//! The state of a recording: every view at once, kept up to date one
//! group of faults at a time, and owned snapshots of it at any moment.
//!
//! It is the only code that turns faults into views, totals, the touch
//! map and latency histograms. It is fed faults one at a time by the live
//! collector, or grouped by every key by a profile's reader, and the
//! numbers do not depend on which: "first" means the earliest fault, and a
//! process's name is its main thread's latest (else its earliest fault's).
//!
//! It knows identities only ([`crate::keys`]): no names, no files, and
//! nothing of the command line, the terminal or the output formats.
pub mod retire;

use std::collections::BTreeMap;

use cowprof_common::{event::COMM_LEN, FileKey, Kind};
use hashbrown::{hash_map::Entry, HashMap, HashSet};

pub use crate::{
    counts::{KindCounts, Latencies, LatencySummary},
    views::{Facet, RowKey, Tally, View},
};
use crate::{
    keys::{Faults, MappingKey, Resolved, TextId},
    views,
};

/// What one process paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub comm: [u8; COMM_LEN],
    pub counts: KindCounts,
    /// Sum of per-fault latencies, in ns.
    pub latency_ns: u64,
    /// Found exited (and its every record applied).
    pub exited: bool,
    /// Which fault named it: its main thread's latest, else its earliest.
    named_by: (bool, u64),
}

impl Process {
    /// A process with no faults yet.
    #[must_use]
    pub fn new(pid: u32, comm: [u8; COMM_LEN]) -> Self {
        Self {
            pid,
            comm,
            ..Self::default()
        }
    }

    /// Takes the name of `faults` when it names the process better.
    fn name(&mut self, faults: &Faults) {
        let rank = if faults.main_thread {
            (true, faults.last_ns)
        } else {
            (false, u64::MAX - faults.first_ns)
        };
        if self.comm[0] == 0 || rank >= self.named_by {
            self.named_by = rank;
            self.comm = faults.comm;
        }
    }
}

/// One row of a view in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewRow {
    pub key: RowKey,
    pub counts: KindCounts,
    /// Distinct processes that wrote.
    pub processes: usize,
    pub first_writer: TextId,
}

/// A view's rows in a snapshot, most COW faults first.
#[derive(Clone, Debug)]
pub struct ViewRows {
    pub view: View,
    pub rows: Vec<ViewRow>,
    /// Rows the view has, before any cap.
    pub total_rows: usize,
}

/// One written image page: who wrote it, how often, and what first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TouchedPage {
    /// Processes that wrote it, sorted (but folded ones: see `others`).
    pub pids: Vec<u32>,
    /// Folded processes that wrote it (see [`retire`]).
    pub others: u32,
    /// Faults on it (every kind).
    pub faults: u64,
    /// The data symbol of the first write, when known.
    pub symbol: Option<u32>,
    /// The first writing instruction.
    pub first_writer: TextId,
    /// The first write's time.
    pub first_ns: u64,
}

/// The image pages written, and by which processes.
#[derive(Clone, Debug)]
pub struct TouchedImage {
    pub image: FileKey,
    /// Page (virtual address in the image) → who wrote it.
    pub pages: BTreeMap<u64, TouchedPage>,
}

/// One process's faults in one mapping (kept only when asked for, by
/// [`State::with_process_mappings`]: the live view drills down from a
/// process to its mappings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessMapping {
    pub pid: u32,
    /// File mappings are one row per file and process; anonymous ones are
    /// told apart by range.
    pub mapping: MappingKey,
    pub counts: KindCounts,
    pub first_writer: TextId,
}

/// One distinct write to an image (not a write notification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Write {
    pub pid: u32,
    /// The address written, in the image.
    pub vaddr: u64,
    /// The writing instruction.
    pub instruction: TextId,
    /// The page came from the file (`cow_copy_file`, `cow_fill_file`).
    pub from_file: bool,
}

/// The section and data symbol at each address written.
pub type Named = BTreeMap<u64, (Option<u32>, Option<u32>)>;

/// The distinct writes to one image, and the section and data symbol at
/// each address written.
#[derive(Clone, Debug)]
pub struct ImageWrites {
    pub image: FileKey,
    pub writes: Vec<Write>,
    pub named: Named,
}

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotOptions {
    /// Keep the top N rows of each view (and processes); all when `None`.
    pub top: Option<usize>,
    /// Include the touch map (every image page written, per process).
    pub touch_map: bool,
}

/// An owned copy of the state at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub events: u64,
    pub totals: KindCounts,
    pub processes: Vec<Process>,
    /// Processes seen, folded ones included.
    pub total_processes: usize,
    /// Exited processes summed into the `(exited)` entry (see [`retire`]).
    pub folded_processes: u64,
    pub views: Vec<ViewRows>,
    pub latencies: Vec<(Kind, LatencySummary)>,
    /// Latency histograms per kind: (bucket upper bound in ns, faults).
    pub latency_buckets: Vec<(Kind, Vec<(u64, u64)>)>,
    pub touched: Vec<TouchedImage>,
    /// Per process and mapping (empty unless kept).
    pub process_mappings: Vec<ProcessMapping>,
    /// Per family and dimension (empty unless kept).
    pub crosses: Vec<((Facet, Facet), KindCounts)>,
    /// Per image, its distinct writes (empty unless kept).
    pub writes: Vec<ImageWrites>,
}

/// What a state keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each says whether one table is kept"
)]
pub struct Keep {
    /// The keyed views (in [`View::KEYED`] order).
    views: [bool; View::KEYED.len()],
    /// The touch map: every image page written, per process.
    pub touch_map: bool,
    /// Each process's faults per mapping (the live view drills down from
    /// a process to its mappings).
    pub process_mappings: bool,
    /// Faults per family and dimension of the gate ([`Facet`]).
    pub crosses: bool,
    /// Every distinct write to an image (the advisor's).
    pub writes: bool,
}

impl Keep {
    /// Every view and the touch map: a recording's.
    #[must_use]
    pub const fn all() -> Self {
        Self {
            views: [true; View::KEYED.len()],
            touch_map: true,
            process_mappings: false,
            crosses: false,
            writes: false,
        }
    }

    /// Only `views` (the process view is always kept), and the touch map
    /// when one of them lists image pages.
    #[must_use]
    pub fn only(views: &[View]) -> Self {
        let mut keep = Self {
            views: [false; View::KEYED.len()],
            touch_map: views.iter().any(|v| v.has_touch_map()),
            process_mappings: false,
            crosses: false,
            writes: false,
        };
        for (slot, view) in keep.views.iter_mut().zip(View::KEYED) {
            *slot = views.contains(view);
        }
        keep
    }

    /// These, and each process's faults per mapping.
    #[must_use]
    pub const fn with_process_mappings(self) -> Self {
        Self {
            process_mappings: true,
            ..self
        }
    }

    /// These, and the gate's families by dimensions.
    #[must_use]
    pub const fn with_crosses(self) -> Self {
        Self {
            crosses: true,
            ..self
        }
    }

    /// These, and every distinct write to an image.
    #[must_use]
    pub const fn with_writes(self) -> Self {
        Self {
            writes: true,
            ..self
        }
    }

    /// Whether `view` is kept.
    #[must_use]
    pub fn view(&self, view: View) -> bool {
        view == View::Process
            || View::KEYED
                .iter()
                .position(|v| *v == view)
                .is_some_and(|i| self.views[i])
    }
}

impl Default for Keep {
    fn default() -> Self {
        Self::all()
    }
}

/// Every view of a recording.
#[derive(Clone, Default)]
pub struct State {
    keep: Keep,
    events: u64,
    totals: KindCounts,
    processes: HashMap<u32, Process>,
    views: [HashMap<RowKey, Tally>; View::ALL.len() - 1],
    /// Image → page → who wrote it.
    touched: HashMap<FileKey, BTreeMap<u64, TouchedPage>>,
    latencies: Latencies,
    /// (pid, mapping) → faults, when kept.
    process_mappings: HashMap<(u32, MappingKey), Tally>,
    /// (family, dimension) → faults, when kept.
    crosses: HashMap<(Facet, Facet), KindCounts>,
    /// Image → its distinct writes, and the section and symbol at each
    /// address written, when kept.
    writes: HashMap<FileKey, (HashSet<Write>, Named)>,
    /// Exited processes: which keep rows of their own.
    retire: retire::Retirement,
}

/// Sorts `rows` by `weight`, heaviest first, keeping the top `n`.
fn top<T>(rows: &mut Vec<T>, n: Option<usize>, weight: impl Fn(&T) -> u64) {
    if let Some(n) = n.filter(|n| *n < rows.len()) {
        if n > 0 {
            rows.select_nth_unstable_by(n - 1, |a, b| weight(b).cmp(&weight(a)));
        }
        rows.truncate(n);
    }
    rows.sort_by_key(|r| std::cmp::Reverse(weight(r)));
}

impl State {
    /// A state that keeps `keep`.
    #[must_use]
    pub fn new(keep: Keep) -> Self {
        Self {
            keep,
            ..Self::default()
        }
    }

    /// A state that also keeps each process's faults per mapping (one more
    /// table updated per fault).
    #[must_use]
    pub fn with_process_mappings() -> Self {
        Self::new(Keep::all().with_process_mappings())
    }

    /// What this state keeps.
    #[must_use]
    pub fn keeps(&self) -> Keep {
        self.keep
    }

    /// Accounts one resolved fault: in every view, and its latency.
    pub fn apply(&mut self, event: &Resolved) {
        self.add(&Faults::one(event));
        self.latencies.record(event.kind, event.latency_ns);
    }

    /// Records `n` faults of `kind` that took `ns` each (the histograms of
    /// faults fed by [`State::add`], which keeps no latency but its sum).
    pub fn record_latency(&mut self, kind: Kind, ns: u64, n: u64) {
        self.latencies.record_n(kind, ns, n);
    }

    /// Accounts `faults` in every view (but the latency histograms: see
    /// [`State::record_latency`]).
    pub fn add(&mut self, faults: &Faults) {
        let pid = faults.pid;
        self.events += faults.counts.all();
        self.totals.merge(&faults.counts);
        if self.processes.get(&pid).is_some_and(|p| p.exited) {
            // The pid was reused: the process found exited was another
            // one. It joins the folded ones (and, just below, leaves the
            // rows' lists of writers), so no entry collects a pid's lives.
            self.fold(pid);
        }
        let (process, fresh) = match self.processes.entry(pid) {
            Entry::Occupied(entry) => (entry.into_mut(), false),
            Entry::Vacant(entry) => (entry.insert(Process::new(pid, [0; COMM_LEN])), true),
        };
        process.name(faults);
        process.counts.merge(&faults.counts);
        process.latency_ns += faults.latency_ns;
        if fresh && self.retire.was_folded(pid) {
            // A new process with a folded one's pid (folded above, or
            // earlier): the old one leaves the rows' lists first, so the
            // new one counts anew.
            self.compact();
        }
        for ((view, rows), kept) in View::KEYED.iter().zip(&mut self.views).zip(self.keep.views) {
            let Some(key) = kept.then(|| RowKey::of(*view, faults)).flatten() else {
                continue;
            };
            let tally = match rows.entry(key) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    if let RowKey::Mapping(mapping) = key {
                        if mapping.pid != 0 {
                            self.retire.own_row(pid, mapping);
                        }
                    }
                    entry.insert(Tally::default())
                }
            };
            if tally.add(faults) {
                self.retire.paired();
            }
        }
        if let Some(image) = faults.loc.image.filter(|_| self.keep.touch_map) {
            let page = self
                .touched
                .entry(image)
                .or_default()
                .entry(faults.loc.page)
                .or_insert_with(|| TouchedPage {
                    first_ns: u64::MAX,
                    ..TouchedPage::default()
                });
            page.faults += faults.counts.all();
            if faults.first_ns < page.first_ns {
                page.first_ns = faults.first_ns;
                page.symbol = faults.loc.symbol;
                page.first_writer = faults.instruction;
            }
            if views::add_pid(&mut page.pids, pid) {
                self.retire.paired();
            }
        }
        if self.keep.process_mappings {
            let mapping = MappingKey {
                pid,
                ..faults.mapping
            };
            match self.process_mappings.entry((pid, mapping)) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    self.retire.own_row(pid, mapping);
                    entry.insert(Tally::default())
                }
            }
            .count(faults);
        }
        if let Some(image) = faults.loc.image.filter(|_| self.keep.writes) {
            let vaddr = faults.loc.page + u64::from(faults.offset);
            let (writes, named) = self.writes.entry(image).or_default();
            for kind in Kind::ALL {
                if faults.counts.get(kind) > 0 && kind != Kind::WriteNotify {
                    writes.insert(Write {
                        pid,
                        vaddr,
                        instruction: faults.instruction,
                        from_file: matches!(kind, Kind::CowCopyFile | Kind::CowFillFile),
                    });
                }
            }
            named
                .entry(vaddr)
                .or_insert((faults.loc.section, faults.loc.symbol));
        }
        if self.keep.crosses {
            for family in Facet::families(faults).into_iter().flatten() {
                for dimension in Facet::dimensions(faults).into_iter().flatten() {
                    if !Facet::same_breakdown(family, dimension) {
                        self.crosses
                            .entry((family, dimension))
                            .or_default()
                            .merge(&faults.counts);
                    }
                }
            }
        }
    }

    /// Accounts faults counted in the kernel per process (count-only mode:
    /// no events, so no latency or attribution).
    pub fn add_counted(&mut self, pid: u32, comm: [u8; COMM_LEN], counts: &KindCounts) {
        self.events += counts.all();
        self.totals.merge(counts);
        let process = self
            .processes
            .entry(pid)
            .or_insert_with(|| Process::new(pid, comm));
        process.counts.merge(counts);
    }

    /// Faults accounted so far.
    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Counts summed over processes.
    #[must_use]
    pub fn totals(&self) -> KindCounts {
        self.totals
    }

    /// An owned copy of every view (and, if asked, the touch map). With a
    /// cap, only the rows kept are copied.
    #[must_use]
    pub fn snapshot(&self, options: SnapshotOptions) -> Snapshot {
        let views = View::KEYED
            .iter()
            .zip(&self.views)
            .map(|(view, rows)| {
                let mut kept: Vec<(&RowKey, &Tally)> = rows.iter().collect();
                top(&mut kept, options.top, |(_, t)| t.counts.cow_total());
                ViewRows {
                    view: *view,
                    rows: kept.into_iter().map(|(k, t)| ViewRow::new(*k, t)).collect(),
                    total_rows: rows.len(),
                }
            })
            .collect();
        let touched = if options.touch_map {
            self.touched
                .iter()
                .map(|(image, pages)| {
                    let mut pages = pages.clone();
                    // Folded processes not yet compacted away leave the
                    // copy, as compaction would take them: a snapshot does
                    // not depend on when compactions ran.
                    for page in pages.values_mut() {
                        page.forget(&|pid| self.retire.was_folded(pid));
                    }
                    TouchedImage {
                        image: *image,
                        pages,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let process_mappings = self
            .process_mappings
            .iter()
            .map(|((pid, mapping), tally)| ProcessMapping {
                pid: *pid,
                mapping: *mapping,
                counts: tally.counts,
                first_writer: tally.first_writer,
            })
            .collect();
        let mut snapshot = self.snapshot_with(views, touched, options.top);
        snapshot.process_mappings = process_mappings;
        snapshot.crosses = self.crosses.iter().map(|(k, c)| (*k, *c)).collect();
        snapshot.writes = self
            .writes
            .iter()
            .map(|(image, (writes, named))| {
                let mut writes: Vec<Write> = writes.iter().copied().collect();
                writes.sort_unstable();
                ImageWrites {
                    image: *image,
                    writes,
                    named: named.clone(),
                }
            })
            .collect();
        snapshot
    }

    /// Ends the recording's growth: frees every row's list of processes
    /// (keeping their number), so naming the rows at the end adds nothing
    /// to the peak once the caller returns the memory to the system.
    pub fn freeze(&mut self) {
        for rows in &mut self.views {
            rows.values_mut().for_each(Tally::freeze);
        }
    }

    /// Takes the rows of `view` out of the state, one at a time: the end of
    /// a recording names them without a second copy of every row.
    pub fn take_rows(&mut self, view: View) -> impl Iterator<Item = ViewRow> {
        let rows = View::KEYED
            .iter()
            .position(|v| *v == view)
            .map(|i| std::mem::take(&mut self.views[i]))
            .unwrap_or_default();
        rows.into_iter()
            .map(|(key, tally)| ViewRow::new(key, &tally))
    }

    /// The state as a snapshot without view rows (take them with
    /// [`State::take_rows`]), the touch map moved rather than copied.
    #[must_use]
    pub fn into_snapshot(mut self) -> Snapshot {
        self.compact();
        let touched = std::mem::take(&mut self.touched)
            .into_iter()
            .map(|(image, pages)| TouchedImage { image, pages })
            .collect();
        self.snapshot_with(Vec::new(), touched, None)
    }

    fn snapshot_with(
        &self,
        views: Vec<ViewRows>,
        touched: Vec<TouchedImage>,
        cap: Option<usize>,
    ) -> Snapshot {
        let mut processes: Vec<Process> = self.processes.values().copied().collect();
        let folded_processes = self.retire.folded_processes();
        let folded_entry = usize::from(self.processes.contains_key(&retire::FOLDED_PID));
        let total_processes = (processes.len() - folded_entry)
            .saturating_add(usize::try_from(folded_processes).unwrap_or(usize::MAX));
        top(&mut processes, cap, |p| p.counts.cow_total());
        Snapshot {
            events: self.events,
            totals: self.totals,
            processes,
            total_processes,
            folded_processes,
            views,
            latencies: self.latencies.summary(),
            latency_buckets: self.latencies.buckets(),
            touched,
            process_mappings: Vec::new(),
            crosses: Vec::new(),
            writes: Vec::new(),
        }
    }
}

impl ViewRow {
    fn new(key: RowKey, tally: &Tally) -> Self {
        Self {
            key,
            counts: tally.counts,
            processes: tally.processes(),
            first_writer: tally.first_writer,
        }
    }
}

impl TouchedPage {
    /// Distinct processes that wrote it.
    #[must_use]
    pub fn processes(&self) -> usize {
        self.pids.len() + self.others as usize
    }

    /// Takes the processes in `gone` out of the list, still counting them.
    fn forget(&mut self, gone: &impl Fn(u32) -> bool) {
        views::forget_pids(&mut self.pids, &mut self.others, gone);
    }
}

impl Snapshot {
    /// The rows of `view` (empty for the process view, or a view the
    /// snapshot left out).
    #[must_use]
    pub fn rows(&self, view: View) -> &[ViewRow] {
        self.views
            .iter()
            .find(|v| v.view == view)
            .map_or(&[], |v| v.rows.as_slice())
    }
}

#[cfg(test)]
mod tests;
