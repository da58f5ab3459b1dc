//! Aggregations by mapping, image, section, symbol, page and writer, and
//! the per-image touch map that finds writable pages never written.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use cowprof_common::{FaultEvent, FileKey, Kind};
use serde::Serialize;

use super::{Attributor, Place};
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

/// One row of a view.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub key: String,
    pub counts: KindCounts,
    pub copies: u64,
    /// Distinct processes that wrote.
    pub processes: usize,
    /// The code that wrote first.
    pub first_writer: String,
    #[serde(skip)]
    pids: BTreeSet<u32>,
}

impl Row {
    fn add(&mut self, kind: Kind, pid: u32, writer: &str) {
        self.counts.add(kind);
        if kind.is_copy() {
            self.copies += 1;
        }
        if self.pids.insert(pid) {
            self.processes = self.pids.len();
        }
        if self.first_writer.is_empty() {
            writer.clone_into(&mut self.first_writer);
        }
    }
}

type Table = HashMap<String, Row>;

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

/// Every aggregation, fed one event at a time.
#[derive(Default)]
pub struct Views {
    tables: HashMap<&'static str, Table>,
    /// Image pages touched: image → vaddr page → pids.
    touched: HashMap<FileKey, BTreeMap<u64, BTreeSet<u32>>>,
    writers: HashMap<(u32, u64, u64), String>,
}

fn view_name(view: View) -> &'static str {
    match view {
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

impl Views {
    fn row(&mut self, view: View, key: String) -> &mut Row {
        let row = self
            .tables
            .entry(view_name(view))
            .or_default()
            .entry(key.clone())
            .or_default();
        if row.key.is_empty() {
            row.key = key;
        }
        row
    }

    /// Accounts one classified event.
    pub fn add(&mut self, attr: &mut Attributor, event: &FaultEvent, kind: Kind, comm: &str) {
        let code = &event.code;
        let writer_key = (
            code.dev,
            code.ino,
            event.ip.wrapping_sub(code.vm_start) + code.vm_pgoff * 4096,
        );
        let writer = if let Some(w) = self.writers.get(&writer_key) {
            w.clone()
        } else {
            let w = attr.writer(event);
            self.writers.insert(writer_key, w.clone());
            w
        };
        let place: Place = attr.place(event);
        let pid = event.pid;
        self.row(View::Process, format!("{pid} {comm}"))
            .add(kind, pid, &writer);
        let mapping = if place.image.is_some() || event.vma.file_backed != 0 {
            place.mapping.clone()
        } else {
            format!(
                "{} {:#x}-{:#x} pid {pid}",
                place.mapping, event.vma.vm_start, event.vma.vm_end
            )
        };
        self.row(View::Mapping, mapping).add(kind, pid, &writer);
        // The writer view groups by function; rows keep the first
        // instruction (with file:line) as their first writer.
        let function = writer
            .split_once('+')
            .map_or(writer.as_str(), |(f, _)| f)
            .to_owned();
        self.row(View::Writer, function).add(kind, pid, &writer);
        if let Some(image) = place.image {
            let section = place.section.as_deref().unwrap_or("?");
            self.row(View::Image, place.mapping.clone())
                .add(kind, pid, &writer);
            self.row(View::Section, format!("{} {section}", place.mapping))
                .add(kind, pid, &writer);
            if let Some(symbol) = &place.symbol {
                self.row(
                    View::Symbol,
                    format!("{} {section} {symbol}", place.mapping),
                )
                .add(kind, pid, &writer);
            }
            self.row(
                View::Page,
                format!("{} {section} {:#x}", place.mapping, place.page),
            )
            .add(kind, pid, &writer);
            self.touched
                .entry(image)
                .or_default()
                .entry(place.page)
                .or_default()
                .insert(pid);
        } else {
            self.row(View::Page, format!("{} {:#x}", place.mapping, place.page))
                .add(kind, pid, &writer);
        }
    }

    /// Accounts one event's user stack.
    pub fn add_stack(&mut self, stack: String, kind: Kind, pid: u32) {
        self.row(View::Stack, stack).add(kind, pid, "");
    }

    /// The rows of `view`, most COW faults first.
    #[must_use]
    pub fn rows(&self, view: View) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .tables
            .get(view_name(view))
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
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
