//! The dimensions faults are aggregated by, and what each row counts.
use cowprof_common::{FileKey, Kind};
use serde::Serialize;

use super::counts::KindCounts;
use crate::resolve::keys::{MapKey, MappingKey, Resolved, StackKey, TextId};

/// A dimension to aggregate by (`record --by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    Process,
    Mapping,
    Image,
    Section,
    Symbol,
    Page,
    Writer,
    /// User stacks (needs `--stacks`).
    Stack,
}

impl View {
    /// Every view, in report order.
    pub const ALL: [View; 8] = [
        View::Process,
        View::Mapping,
        View::Image,
        View::Section,
        View::Symbol,
        View::Page,
        View::Writer,
        View::Stack,
    ];

    /// The views the state keeps rows for: all but the process view, which
    /// is its own table.
    pub const KEYED: &'static [View] = View::ALL.split_at(1).1;

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            View::Process => "process",
            View::Mapping => "mapping",
            View::Image => "image",
            View::Section => "section",
            View::Symbol => "symbol",
            View::Page => "page",
            View::Writer => "writer",
            View::Stack => "stack",
        }
    }

    /// The view named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Whether the view lists image pages, and so comes with the touch map.
    #[must_use]
    pub const fn has_touch_map(self) -> bool {
        matches!(
            self,
            View::Image | View::Section | View::Symbol | View::Page
        )
    }
}

/// A row's identity: small integers, named only when a report is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKey {
    Mapping(MappingKey),
    Image(FileKey),
    Section(FileKey, Option<u32>),
    Symbol(FileKey, Option<u32>, Option<u32>),
    /// A page of an image, by its virtual address there.
    ImagePage(FileKey, Option<u32>, u64),
    /// A page of another mapping, by address (or file offset).
    Page(MapKey, u64),
    Writer(TextId),
    Stack(StackKey),
}

impl RowKey {
    /// The row of `event` in `view`, if it has one there: image views hold
    /// image pages only; the others every fault.
    #[must_use]
    pub fn of(view: View, event: &Resolved) -> Option<RowKey> {
        let loc = &event.loc;
        Some(match (view, loc.image) {
            (View::Mapping, _) => RowKey::Mapping(event.mapping),
            (View::Image, Some(image)) => RowKey::Image(image),
            (View::Section, Some(image)) => RowKey::Section(image, loc.section),
            (View::Symbol, Some(image)) => RowKey::Symbol(image, loc.section, loc.symbol),
            (View::Page, Some(image)) => RowKey::ImagePage(image, loc.section, loc.page),
            (View::Page, None) => RowKey::Page(event.mapping.map, loc.page),
            (View::Writer, _) => RowKey::Writer(event.writer),
            (View::Stack, _) if event.stack != StackKey::NotRecorded => RowKey::Stack(event.stack),
            _ => return None,
        })
    }
}

/// What a row has counted.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub counts: KindCounts,
    /// Distinct writers, sorted: four bytes per (row, process). Processes
    /// folded away (see [`super::retire`]) leave it and are counted in
    /// `others`.
    pub pids: Vec<u32>,
    /// The first writing instruction.
    pub first_writer: TextId,
    /// Processes that wrote and are no longer in `pids`: folded exited
    /// ones, and all of them once the row is frozen.
    others: u32,
}

impl Tally {
    /// A row first written by `first_writer`.
    #[must_use]
    pub fn new(first_writer: TextId) -> Self {
        Self {
            first_writer,
            ..Self::default()
        }
    }

    /// Counts one fault of `kind` by `pid`. Returns whether `pid` is new
    /// to the row.
    pub fn add(&mut self, kind: Kind, pid: u32) -> bool {
        self.counts.add(kind);
        add_pid(&mut self.pids, pid)
    }

    /// Distinct processes that wrote.
    #[must_use]
    pub fn processes(&self) -> usize {
        self.pids.len() + self.others as usize
    }

    /// Keeps the number of processes and frees their list: the row takes no
    /// more processes.
    pub fn freeze(&mut self) {
        self.others = u32::try_from(self.processes()).unwrap_or(u32::MAX);
        self.pids = Vec::new();
    }

    /// Takes the processes in `gone` out of the list, still counting them.
    pub fn forget(&mut self, gone: &impl Fn(u32) -> bool) {
        forget_pids(&mut self.pids, &mut self.others, gone);
    }

    /// Adds `other`'s faults, and its processes when `processes` (rows
    /// folded into one, each process counted once).
    pub fn merge(&mut self, other: &Tally, processes: bool) {
        self.counts.merge(&other.counts);
        if processes {
            self.others = self
                .others
                .saturating_add(u32::try_from(other.processes()).unwrap_or(u32::MAX));
        }
    }
}

/// Takes the pids in `gone` out of `pids`, counting them in `others`. The
/// room stays: new writers take it again, and lists between compactions
/// never hold more than the kept processes and a few hundred folded ones,
/// so their high-water mark is their bound (shrinking and growing again
/// only churned the allocator).
pub fn forget_pids(pids: &mut Vec<u32>, others: &mut u32, gone: &impl Fn(u32) -> bool) {
    let before = pids.len();
    pids.retain(|pid| !gone(*pid));
    let left = u32::try_from(before - pids.len()).unwrap_or(u32::MAX);
    *others = others.saturating_add(left);
}

/// Adds `pid` to the sorted set `pids`. Returns whether it was new.
pub fn add_pid(pids: &mut Vec<u32>, pid: u32) -> bool {
    let Err(at) = pids.binary_search(&pid) else {
        return false;
    };
    // Grow by a quarter, not double: with 10 million (page, process)
    // pairs the doubling slack alone was tens of MiB.
    if pids.len() == pids.capacity() {
        pids.reserve_exact((pids.len() / 4).max(2));
    }
    pids.insert(at, pid);
    true
}
