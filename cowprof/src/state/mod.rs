//! The state of a recording: every view at once, kept up to date one
//! resolved fault at a time, and owned snapshots of it at any moment.
//!
//! It knows identities only (`resolve::keys`): no names, no files, and
//! nothing of the command line, the terminal or the output formats.
pub mod counts;
pub mod retire;
pub mod views;

use std::collections::BTreeMap;

use cowprof_common::{event::COMM_LEN, FileKey, Kind};
use hashbrown::{hash_map::Entry, HashMap};

pub use self::{
    counts::{KindCounts, Latencies, LatencySummary},
    views::{RowKey, Tally, View},
};
use crate::{
    decode::comm_bytes,
    resolve::keys::{MappingKey, Resolved, TextId},
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
}

/// One row of a view in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewRow {
    pub key: RowKey,
    pub counts: KindCounts,
    /// Distinct processes that wrote.
    pub processes: usize,
    pub first_writer: crate::resolve::keys::TextId,
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
}

/// Every view of a recording.
#[derive(Default)]
pub struct State {
    events: u64,
    totals: KindCounts,
    processes: HashMap<u32, Process>,
    views: [HashMap<RowKey, Tally>; View::ALL.len() - 1],
    /// Image → page → who wrote it.
    touched: HashMap<FileKey, BTreeMap<u64, TouchedPage>>,
    latencies: Latencies,
    /// (pid, mapping) → faults, when kept.
    process_mappings: Option<HashMap<(u32, MappingKey), Tally>>,
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
    /// A state that also keeps each process's faults per mapping (one more
    /// table updated per fault).
    #[must_use]
    pub fn with_process_mappings() -> Self {
        Self {
            process_mappings: Some(HashMap::new()),
            ..Self::default()
        }
    }

    /// Accounts one resolved fault in every view.
    pub fn apply(&mut self, event: &Resolved) {
        self.events += 1;
        self.totals.add(event.kind);
        if self.processes.get(&event.pid).is_some_and(|p| p.exited) {
            // The pid was reused: the process found exited was another
            // one. It joins the folded ones (and, just below, leaves the
            // rows' lists of writers), so no entry collects a pid's lives.
            self.fold(event.pid);
        }
        let (process, fresh) = match self.processes.entry(event.pid) {
            Entry::Occupied(entry) => (entry.into_mut(), false),
            Entry::Vacant(entry) => (
                entry.insert(Process {
                    pid: event.pid,
                    ..Process::default()
                }),
                true,
            ),
        };
        // The last comm wins: after an exec it names the new program.
        if (process.comm[0] == 0 || event.tid == event.pid)
            && comm_bytes(&process.comm) != comm_bytes(&event.comm)
        {
            process.comm = event.comm;
        }
        process.counts.add(event.kind);
        process.latency_ns += event.latency_ns;
        if fresh && self.retire.was_folded(event.pid) {
            // A new process with a folded one's pid (folded above, or
            // earlier): the old one leaves the rows' lists first, so the
            // new one counts anew.
            self.compact();
        }
        self.latencies.record(event.kind, event.latency_ns);
        for (view, rows) in View::KEYED.iter().zip(&mut self.views) {
            let Some(key) = RowKey::of(*view, event) else {
                continue;
            };
            let tally = match rows.entry(key) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    if let RowKey::Mapping(mapping) = key {
                        if mapping.pid != 0 {
                            self.retire.own_row(event.pid, mapping);
                        }
                    }
                    entry.insert(Tally::new(event.instruction))
                }
            };
            if tally.add(event.kind, event.pid) {
                self.retire.paired();
            }
        }
        if let Some(image) = event.loc.image {
            let page = self
                .touched
                .entry(image)
                .or_default()
                .entry(event.loc.page)
                .or_insert_with(|| TouchedPage {
                    symbol: event.loc.symbol,
                    first_writer: event.instruction,
                    ..TouchedPage::default()
                });
            page.faults += 1;
            if views::add_pid(&mut page.pids, event.pid) {
                self.retire.paired();
            }
        }
        if let Some(table) = &mut self.process_mappings {
            let mapping = MappingKey {
                pid: event.pid,
                ..event.mapping
            };
            match table.entry((event.pid, mapping)) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    self.retire.own_row(event.pid, mapping);
                    entry.insert(Tally::new(event.instruction))
                }
            }
            .counts
            .add(event.kind);
        }
    }

    /// Accounts faults counted in the kernel per process (count-only mode:
    /// no events, so no latency or attribution).
    pub fn add_counted(&mut self, pid: u32, comm: [u8; COMM_LEN], counts: &KindCounts) {
        self.events += counts.all();
        self.totals.merge(counts);
        let process = self.processes.entry(pid).or_insert_with(|| Process {
            pid,
            comm,
            ..Process::default()
        });
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
                .map(|(image, pages)| TouchedImage {
                    image: *image,
                    pages: pages.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let process_mappings = self
            .process_mappings
            .iter()
            .flatten()
            .map(|((pid, mapping), tally)| ProcessMapping {
                pid: *pid,
                mapping: *mapping,
                counts: tally.counts,
                first_writer: tally.first_writer,
            })
            .collect();
        let mut snapshot = self.snapshot_with(views, touched, options.top);
        snapshot.process_mappings = process_mappings;
        snapshot
    }

    /// Ends the recording's growth: frees every row's list of processes
    /// (keeping their number) and returns the freed memory to the system,
    /// so naming the rows at the end adds nothing to the peak.
    pub fn freeze(&mut self) {
        for rows in &mut self.views {
            rows.values_mut().for_each(Tally::freeze);
        }
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
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
