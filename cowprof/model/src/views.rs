//! The dimensions faults are aggregated by, and what each row counts.
use cowprof_common::FileKey;
use serde::Serialize;

use super::counts::KindCounts;
use crate::keys::{Faults, MapKey, MappingKey, StackKey, TextId, COMM_LEN};

/// A dimension to aggregate by (`record --by`). Its names (`strum`, and
/// serde's for the JSON) are lower-case.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    pub const ALL: &'static [View] = <View as strum::VariantArray>::VARIANTS;

    /// The views the state keeps rows for: all but the process view, which
    /// is its own table.
    pub const KEYED: &'static [View] = View::ALL.split_at(1).1;

    #[must_use]
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The view named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<View> {
        name.parse().ok()
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
    pub fn of(view: View, event: &Faults) -> Option<RowKey> {
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

/// What the gate breaks faults down by, crossed: a family (what one of
/// its metrics counts) by a dimension (who contributed to it). `All` is
/// every fault, so `(family, All)` is a family's total and `(All, dim)` a
/// dimension's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Facet {
    All,
    Comm([u8; COMM_LEN]),
    Image(FileKey),
    Section(FileKey, Option<u32>),
    Symbol(FileKey, Option<u32>, u32),
    Writer(TextId),
    /// A data symbol of an image, whatever section holds it.
    ImageSymbol(FileKey, u32),
    Stack(StackKey),
}

impl Facet {
    /// The families `faults` count in: every fault, its process's name,
    /// and for image pages its image, section and (known) data symbol.
    #[must_use]
    pub fn families(faults: &Faults) -> [Option<Facet>; 5] {
        let loc = &faults.loc;
        [
            Some(Facet::All),
            Some(Facet::Comm(faults.comm)),
            loc.image.map(Facet::Image),
            loc.image.map(|i| Facet::Section(i, loc.section)),
            loc.image
                .zip(loc.symbol)
                .map(|(i, s)| Facet::Symbol(i, loc.section, s)),
        ]
    }

    /// The dimensions `faults` contribute in: every fault, the writer, and
    /// for image pages the section and (known) data symbol, and the stack
    /// when stacks were recorded.
    #[must_use]
    pub fn dimensions(faults: &Faults) -> [Option<Facet>; 5] {
        let loc = &faults.loc;
        [
            Some(Facet::All),
            Some(Facet::Writer(faults.writer)),
            loc.image.map(|i| Facet::Section(i, loc.section)),
            loc.image
                .zip(loc.symbol)
                .map(|(i, s)| Facet::ImageSymbol(i, s)),
            (faults.stack != StackKey::NotRecorded).then_some(Facet::Stack(faults.stack)),
        ]
    }

    /// Whether a family and a dimension are the same breakdown (a section
    /// by sections): such pairs are not kept.
    #[must_use]
    pub fn same_breakdown(family: Facet, dimension: Facet) -> bool {
        matches!(
            (family, dimension),
            (Facet::Section(..), Facet::Section(..)) | (Facet::Symbol(..), Facet::ImageSymbol(..))
        )
    }
}

/// What a row has counted.
#[derive(Clone, Debug)]
pub struct Tally {
    pub counts: KindCounts,
    /// Distinct writers, sorted: four bytes per (row, process). Processes
    /// folded away (see [`crate::state::retire`]) leave it and are counted
    /// in `others`.
    pub pids: Vec<u32>,
    /// The earliest fault's writing instruction, and that fault's time:
    /// "first" means earliest, whatever order faults are fed in.
    pub first_writer: TextId,
    pub first_ns: u64,
    /// Processes that wrote and are no longer in `pids`: folded exited
    /// ones, and all of them once the row is frozen.
    others: u32,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            counts: KindCounts::default(),
            pids: Vec::new(),
            first_writer: TextId::default(),
            first_ns: u64::MAX,
            others: 0,
        }
    }
}

impl Tally {
    /// Counts `faults`, and their process among the row's writers.
    /// Returns whether the process is new to the row.
    pub fn add(&mut self, faults: &Faults) -> bool {
        self.count(faults);
        add_pid(&mut self.pids, faults.pid)
    }

    /// Counts `faults`, not keeping their process (a row of one process).
    pub fn count(&mut self, faults: &Faults) {
        self.counts.merge(&faults.counts);
        self.first(faults.first_ns, faults.instruction);
    }

    fn first(&mut self, at: u64, writer: TextId) {
        if at < self.first_ns {
            self.first_ns = at;
            self.first_writer = writer;
        }
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
        self.first(other.first_ns, other.first_writer);
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
