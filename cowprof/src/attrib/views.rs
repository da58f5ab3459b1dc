//! Aggregations by mapping, image, section, symbol, page and writer, and
//! the per-image touch map that finds writable pages never written.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use cowprof_common::{FaultEvent, FileKey, Kind};
use serde::Serialize;

use super::{Attributor, Loc, MapKey};
use crate::collect::KindCounts;

/// A dimension to aggregate by (`record --by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
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

/// One row of a view, as reported.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub key: String,
    pub counts: KindCounts,
    pub copies: u64,
    /// Distinct processes that wrote.
    pub processes: usize,
    /// The code that wrote first.
    pub first_writer: String,
}

/// A row's identity: small integers, named only when the view is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RowKey {
    /// Anon mappings are told apart by range and process.
    Mapping(MapKey, u64, u64, u32),
    Writer(u32),
    Image(FileKey),
    Section(FileKey, Option<u32>),
    Symbol(FileKey, Option<u32>, u32),
    ImagePage(FileKey, Option<u32>, u64),
    Page(MapKey, u64),
    Stack(u32),
}

/// What a row has counted.
#[derive(Clone, Debug, Default)]
struct Tally {
    counts: KindCounts,
    copies: u64,
    /// Distinct writers, sorted: four bytes per (row, process).
    pids: Vec<u32>,
    /// Interned name of the first writing instruction.
    first_writer: u32,
}

impl Tally {
    fn add(&mut self, kind: Kind, pid: u32) {
        self.counts.add(kind);
        if kind.is_copy() {
            self.copies += 1;
        }
        if let Err(at) = self.pids.binary_search(&pid) {
            // Grow by a quarter, not double: with 10 million (page, process)
            // pairs the doubling slack alone was tens of MiB.
            if self.pids.len() == self.pids.capacity() {
                self.pids.reserve_exact((self.pids.len() / 4).max(2));
            }
            self.pids.insert(at, pid);
        }
    }
}

/// Strings stored once, referred to by index.
#[derive(Default)]
struct Interner {
    strings: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(text.to_owned());
        self.index.insert(text.to_owned(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", String::as_str)
    }
}

/// Writable pages of one image, or of one of its sections.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Waste {
    pub name: String,
    pub writable_pages: u64,
    pub touched_pages: u64,
    pub untouched_pages: u64,
    pub untouched_bytes: u64,
}

/// The touch map of one image.
#[derive(Clone, Debug, Default, Serialize)]
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

/// How many symbols each image's touch map lists.
pub const SYMBOLS_PER_IMAGE: usize = 50;

/// Writable pages of each data symbol of `image`, written or not.
fn symbol_waste(image: &super::Image, pages: &BTreeMap<u64, BTreeSet<u32>>) -> Vec<Waste> {
    let writable = |addr: u64| {
        image
            .segments
            .iter()
            .any(|s| s.writable && (s.vaddr..s.vaddr + s.mem_size).contains(&addr))
    };
    let mut out: Vec<Waste> = image
        .data
        .iter()
        .filter(|s| s.size > 0 && writable(s.addr))
        .map(|s| {
            let first = s.addr & !0xfff;
            let last = (s.addr + s.size - 1) & !0xfff;
            let mut w = Waste {
                name: s.name.clone(),
                ..Waste::default()
            };
            for page in (first..=last).step_by(4096) {
                w.writable_pages += 1;
                if pages.contains_key(&page) {
                    w.touched_pages += 1;
                } else {
                    w.untouched_pages += 1;
                }
            }
            w.untouched_bytes = w.untouched_pages * 4096;
            w
        })
        .collect();
    out.sort_by(|a, b| {
        b.untouched_pages
            .cmp(&a.untouched_pages)
            .then_with(|| a.name.cmp(&b.name))
    });
    out.truncate(SYMBOLS_PER_IMAGE);
    out
}

/// The aggregation asked for with `--by`, fed one event at a time. Only
/// that view is built: its rows are keyed by identity, so an event costs a
/// few hash lookups and no allocation once its row exists.
#[derive(Default)]
pub struct Views {
    by: Option<View>,
    rows: HashMap<RowKey, Tally>,
    /// Image pages touched: image → vaddr page → pids (image, section,
    /// symbol and page views).
    touched: HashMap<FileKey, BTreeMap<u64, BTreeSet<u32>>>,
    /// Writer of each code location (dev, inode, file offset): the
    /// interned instruction and function.
    writers: HashMap<(u32, u64, u64), (u32, u32)>,
    names: Interner,
}

impl Views {
    /// Views that aggregate by `by` (the process view is the summary's own
    /// table and needs nothing here).
    #[must_use]
    pub fn new(by: View) -> Self {
        let mut views = Self {
            by: (by != View::Process).then_some(by),
            ..Self::default()
        };
        // Index 0 is the empty name: the first writer of rows that have
        // none (stacks).
        views.names.intern("");
        views
    }

    /// The interned writing instruction and its function.
    fn writer(&mut self, attr: &mut Attributor, event: &FaultEvent) -> (u32, u32) {
        let code = &event.code;
        let key = (
            code.dev,
            code.ino,
            // Code outside any file mapping is keyed by its address.
            if code.file_backed == 0 {
                event.ip
            } else {
                event
                    .ip
                    .wrapping_sub(code.vm_start)
                    .wrapping_add(code.vm_pgoff.wrapping_mul(4096))
            },
        );
        if let Some(&ids) = self.writers.get(&key) {
            return ids;
        }
        let text = attr.writer(event);
        // The writer view groups by function; rows keep the first
        // instruction (with file:line) as their first writer.
        let function = text.split_once('+').map_or(text.as_str(), |(f, _)| f);
        let ids = (self.names.intern(&text), self.names.intern(function));
        self.writers.insert(key, ids);
        ids
    }

    fn tally(&mut self, attr: &mut Attributor, key: RowKey, event: &FaultEvent, kind: Kind) {
        if let Some(tally) = self.rows.get_mut(&key) {
            tally.add(kind, event.pid);
            return;
        }
        let mut tally = Tally {
            first_writer: self.writer(attr, event).0,
            ..Tally::default()
        };
        tally.add(kind, event.pid);
        self.rows.insert(key, tally);
    }

    /// Accounts one classified event.
    pub fn add(&mut self, attr: &mut Attributor, event: &FaultEvent, kind: Kind) {
        let Some(by) = self.by else {
            return;
        };
        let key = match by {
            View::Process | View::Stack => return,
            View::Writer => RowKey::Writer(self.writer(attr, event).1),
            _ => {
                let loc = attr.locate(event);
                let image_view =
                    matches!(by, View::Image | View::Section | View::Symbol | View::Page);
                if let Some(image) = loc.image.filter(|_| image_view) {
                    self.touched
                        .entry(image)
                        .or_default()
                        .entry(loc.page)
                        .or_default()
                        .insert(event.pid);
                }
                let Some(key) = Self::key(by, &loc, event) else {
                    return;
                };
                key
            }
        };
        self.tally(attr, key, event, kind);
    }

    /// The row of `loc` in the place views, if it has one there.
    fn key(by: View, loc: &Loc, event: &FaultEvent) -> Option<RowKey> {
        let anon = loc.image.is_none() && event.vma.file_backed == 0;
        Some(match (by, loc.image) {
            (View::Mapping, _) if anon => {
                RowKey::Mapping(loc.mapping, event.vma.vm_start, event.vma.vm_end, event.pid)
            }
            (View::Mapping, _) => RowKey::Mapping(loc.mapping, 0, 0, 0),
            (View::Image, Some(image)) => RowKey::Image(image),
            (View::Section, Some(image)) => RowKey::Section(image, loc.section),
            (View::Symbol, Some(image)) => RowKey::Symbol(image, loc.section, loc.symbol?),
            (View::Page, Some(image)) => RowKey::ImagePage(image, loc.section, loc.page),
            (View::Page, None) => RowKey::Page(loc.mapping, loc.page),
            _ => return None,
        })
    }

    /// Accounts one event's user stack (`--by stack`).
    pub fn add_stack(&mut self, stack: &str, kind: Kind, pid: u32) {
        if self.by != Some(View::Stack) {
            return;
        }
        let key = RowKey::Stack(self.names.intern(stack));
        self.rows.entry(key).or_default().add(kind, pid);
    }

    /// A row's key as text.
    fn name(&self, attr: &mut Attributor, key: &RowKey) -> String {
        match key {
            RowKey::Mapping(mapping, 0, 0, 0) => attr.mapping_name(mapping),
            RowKey::Mapping(mapping, start, end, pid) => {
                format!(
                    "{} {start:#x}-{end:#x} pid {pid}",
                    attr.mapping_name(mapping)
                )
            }
            RowKey::Writer(id) | RowKey::Stack(id) => self.names.get(*id).to_owned(),
            RowKey::Image(image) => attr.path(image),
            RowKey::Section(image, section) => {
                format!(
                    "{} {}",
                    attr.path(image),
                    attr.section_name(image, *section)
                )
            }
            RowKey::Symbol(image, section, symbol) => format!(
                "{} {} {}",
                attr.path(image),
                attr.section_name(image, *section),
                attr.symbol_name(image, *symbol).unwrap_or_default()
            ),
            RowKey::ImagePage(image, section, page) => format!(
                "{} {} {page:#x}",
                attr.path(image),
                attr.section_name(image, *section)
            ),
            RowKey::Page(mapping, page) => format!("{} {page:#x}", attr.mapping_name(mapping)),
        }
    }

    /// The rows of the view, most COW faults first.
    pub fn rows(&self, attr: &mut Attributor) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .rows
            .iter()
            .map(|(key, tally)| Row {
                key: self.name(attr, key),
                counts: tally.counts,
                copies: tally.copies,
                processes: tally.pids.len(),
                first_writer: self.names.get(tally.first_writer).to_owned(),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.counts
                .cow_total()
                .cmp(&a.counts.cow_total())
                .then_with(|| a.key.cmp(&b.key))
        });
        rows
    }

    /// Writable pages never written, per image (summed across processes and
    /// per process) and per section.
    pub fn waste(&self, attr: &mut Attributor) -> Vec<ImageWaste> {
        let mut out = Vec::new();
        for (key, pages) in &self.touched {
            let Some(image) = attr.image(key) else {
                continue;
            };
            let name = attr.path(key);
            let writable: Vec<u64> = image.writable_pages().collect();
            let mut total = Waste {
                name: name.clone(),
                ..Waste::default()
            };
            let mut sections: BTreeMap<String, Waste> = BTreeMap::new();
            let mut pids: BTreeMap<u32, u64> = BTreeMap::new();
            for page in &writable {
                let section = image
                    .sections
                    .iter()
                    .find(|s| s.addr < page + 4096 && *page < s.addr + s.size)
                    .map_or("?", |s| s.name.as_str());
                let entry = sections.entry(section.to_owned()).or_insert_with(|| Waste {
                    name: section.to_owned(),
                    ..Waste::default()
                });
                total.writable_pages += 1;
                entry.writable_pages += 1;
                if let Some(writers) = pages.get(page) {
                    total.touched_pages += 1;
                    entry.touched_pages += 1;
                    for pid in writers {
                        *pids.entry(*pid).or_default() += 1;
                    }
                } else {
                    total.untouched_pages += 1;
                    entry.untouched_pages += 1;
                }
            }
            total.untouched_bytes = total.untouched_pages * 4096;
            let sections = sections
                .into_values()
                .map(|mut s| {
                    s.untouched_bytes = s.untouched_pages * 4096;
                    s
                })
                .collect();
            let per_process = pids
                .into_iter()
                .map(|(pid, touched)| (pid, touched, total.writable_pages - touched))
                .collect();
            out.push(ImageWaste {
                total,
                sections,
                symbols: symbol_waste(&image, pages),
                per_process,
            });
        }
        out.sort_by_key(|w| std::cmp::Reverse(w.total.untouched_pages));
        out
    }
}

#[cfg(test)]
mod tests {
    use cowprof_common::VmaInfo;

    use super::*;

    /// An anon write at `addr` by `pid` in the mapping [0x10000, 0x20000).
    fn anon(pid: u32, addr: u64, kind: Kind) -> FaultEvent {
        FaultEvent {
            pid,
            tid: pid,
            kind: kind as u8,
            addr,
            vma: VmaInfo {
                vm_start: 0x10000,
                vm_end: 0x20000,
                ..VmaInfo::default()
            },
            ..FaultEvent::default()
        }
    }

    fn feed(by: View, events: &[FaultEvent]) -> Vec<Row> {
        let mut attr = Attributor::default();
        let mut views = Views::new(by);
        for e in events {
            views.add(&mut attr, e, Kind::from_u8(e.kind).expect("kind"));
        }
        views.rows(&mut attr)
    }

    #[test]
    fn pages_of_anon_memory_aggregate_across_processes() {
        let events = [
            anon(7, 0x10008, Kind::CowCopyAnon),
            anon(8, 0x10010, Kind::CowCopyAnon),
            anon(8, 0x10ff0, Kind::CowReuse),
            anon(7, 0x11000, Kind::CowCopyAnon),
        ];
        let rows = feed(View::Page, &events);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, "[anon] 0x10000");
        assert_eq!(rows[0].counts.cow_total(), 3);
        assert_eq!(rows[0].copies, 2);
        assert_eq!(rows[0].processes, 2, "pids 7 and 8, each counted once");
        assert_eq!(rows[0].first_writer, "[unknown] 0x0");
        assert_eq!(rows[1].key, "[anon] 0x11000");
        assert_eq!(rows[1].processes, 1);
    }

    #[test]
    fn anon_mappings_are_told_apart_by_process() {
        let events = [
            anon(7, 0x10008, Kind::CowCopyAnon),
            anon(8, 0x10010, Kind::CowCopyAnon),
        ];
        let keys: Vec<String> = feed(View::Mapping, &events)
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(
            keys,
            [
                "[anon] 0x10000-0x20000 pid 7",
                "[anon] 0x10000-0x20000 pid 8"
            ]
        );
    }

    #[test]
    fn only_the_chosen_view_is_built() {
        let events = [anon(7, 0x10008, Kind::CowCopyAnon)];
        assert!(feed(View::Process, &events).is_empty());
        assert!(feed(View::Image, &events).is_empty(), "anon is no image");
        assert_eq!(feed(View::Writer, &events)[0].key, "[unknown] 0x0");
    }
}
