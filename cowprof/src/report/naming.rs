//! Names a snapshot's keys (paths, sections, symbols, writers, stacks) from
//! what the resolver learned, and computes each image's touch map against
//! its writable pages. Runs when a report is built, never per event, and
//! opens no file: images were parsed when their first fault was resolved.
use std::collections::BTreeMap;

use cowprof_common::FileKey;

use super::{
    ImageWaste, PageRow, ProcessMappingRow, ProcessSummary, Report, Row, Waste, SYMBOLS_PER_IMAGE,
};
use crate::{
    decode::comm_str,
    probe::ProbeStats,
    resolve::{
        elf::Image,
        files::Files,
        keys::{MapKey, MappingKey, StackKey},
        Resolver, PAGE,
    },
    state::{retire::FOLDED_PID, RowKey, Snapshot, TouchedImage, TouchedPage, View, ViewRow},
};

/// Builds the report of `snapshot`, naming the rows of `views`.
#[must_use]
pub fn report(
    snapshot: Snapshot,
    resolver: &Resolver,
    views: &[View],
    kernel: ProbeStats,
) -> Report {
    let namer = Namer::new(resolver);
    let mut processes: Vec<ProcessSummary> = snapshot
        .processes
        .iter()
        .map(|p| ProcessSummary {
            pid: p.pid,
            comm: comm_str(&p.comm),
            counts: p.counts,
            latency_ns: p.latency_ns,
        })
        .collect();
    super::sort_processes(&mut processes);
    let views = snapshot
        .views
        .into_iter()
        .filter(|v| views.contains(&v.view))
        .map(|v| (v.view, rows(v.rows, resolver)))
        .collect();
    let (mut waste, pages): (Vec<ImageWaste>, Vec<Vec<PageRow>>) = snapshot
        .touched
        .iter()
        .filter_map(|t| namer.waste(t))
        .unzip();
    waste.sort_by_key(|w| std::cmp::Reverse(w.total.untouched_pages));
    Report {
        events: snapshot.events,
        processes,
        total_processes: snapshot.total_processes,
        folded_processes: snapshot.folded_processes,
        views,
        waste,
        pages: pages.into_iter().flatten().collect(),
        totals: snapshot.totals,
        latency: snapshot
            .latencies
            .iter()
            .map(|(kind, summary)| (kind.name(), *summary))
            .collect(),
        latency_histogram: snapshot
            .latency_buckets
            .into_iter()
            .map(|(kind, buckets)| (kind.name(), buckets))
            .collect(),
        process_mappings: snapshot
            .process_mappings
            .into_iter()
            .map(|m| ProcessMappingRow {
                pid: m.pid,
                mapping: match m.mapping {
                    MappingKey {
                        map: map @ MapKey::File(_),
                        start: 0,
                        end: 0,
                        ..
                    } => namer.mapping(&map),
                    MappingKey {
                        map,
                        start: 0,
                        end: 0,
                        ..
                    } => format!("{} (exited processes)", namer.mapping(&map)),
                    MappingKey {
                        map, start, end, ..
                    } => format!("{} {start:#x}-{end:#x}", namer.mapping(&map)),
                },
                counts: m.counts,
                first_writer: resolver.text(m.first_writer).to_owned(),
            })
            .collect(),
        unnamed_writers: resolver.unnamed_writers().map(str::to_owned).collect(),
        kernel,
    }
}

/// Names `rows` of a view, most COW faults first (then by name).
pub fn rows(rows: impl IntoIterator<Item = ViewRow>, resolver: &Resolver) -> Vec<Row> {
    let namer = Namer::new(resolver);
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|r| Row {
            key: namer.row(&r.key),
            counts: r.counts,
            copies: r.counts.copies(),
            processes: r.processes,
            first_writer: resolver.text(r.first_writer).to_owned(),
        })
        .collect();
    super::sort_rows(&mut rows);
    rows
}

/// Names identities from what the resolver learned.
pub(crate) struct Namer<'a> {
    resolver: &'a Resolver,
}

impl<'a> Namer<'a> {
    pub(crate) fn new(resolver: &'a Resolver) -> Self {
        Self { resolver }
    }

    fn files(&self) -> &Files {
        self.resolver.files()
    }

    /// A file's path, marked when the file found there is not the mapped
    /// one, or when it was refused as an image (and why).
    pub(crate) fn path(&self, key: &FileKey) -> String {
        let path = self.files().path(key);
        if self.files().unverified(key) {
            format!("{path} [unverified]")
        } else if let Some(why) = self.files().not_attributed(key) {
            format!("{path} [not attributed: {why}]")
        } else {
            path
        }
    }

    /// A mapping's name: its file's path, or `[heap]`, `[stack]`,
    /// `[anon:NAME]` or `[anon]`.
    pub(crate) fn mapping(&self, map: &MapKey) -> String {
        match map {
            MapKey::File(key) => self.path(key),
            MapKey::Named(key) => self.files().path(key),
            MapKey::Heap => "[heap]".to_owned(),
            MapKey::Stack => "[stack]".to_owned(),
            MapKey::Anon => "[anon]".to_owned(),
        }
    }

    pub(crate) fn section(&self, image: &FileKey, index: Option<u32>) -> String {
        index
            .and_then(|i| self.files().opened_image(image)?.sections.get(i as usize))
            .map_or_else(|| "?".to_owned(), |s| s.name.clone())
    }

    pub(crate) fn symbol(&self, image: &FileKey, index: Option<u32>) -> String {
        index
            .and_then(|i| self.files().opened_image(image)?.data.get(i as usize))
            .map_or_else(|| "?".to_owned(), |s| s.name.clone())
    }

    /// A row's key as text.
    fn row(&self, key: &RowKey) -> String {
        match key {
            RowKey::Mapping(MappingKey {
                map: map @ MapKey::File(_),
                start: 0,
                end: 0,
                pid: 0,
            }) => self.mapping(map),
            RowKey::Mapping(MappingKey {
                map,
                start: 0,
                end: 0,
                pid: FOLDED_PID,
            }) => format!("{} (exited processes)", self.mapping(map)),
            RowKey::Mapping(MappingKey {
                map,
                start,
                end,
                pid,
            }) => format!("{} {start:#x}-{end:#x} pid {pid}", self.mapping(map)),
            RowKey::Writer(id) | RowKey::Stack(StackKey::Stack(id)) => {
                self.resolver.text(*id).to_owned()
            }
            RowKey::Stack(_) => "[no stack]".to_owned(),
            RowKey::Image(image) => self.path(image),
            RowKey::Section(image, section) => {
                format!("{} {}", self.path(image), self.section(image, *section))
            }
            RowKey::Symbol(image, section, symbol) => format!(
                "{} {} {}",
                self.path(image),
                self.section(image, *section),
                self.symbol(image, *symbol)
            ),
            RowKey::ImagePage(image, section, page) => format!(
                "{} {} {page:#x}",
                self.path(image),
                self.section(image, *section)
            ),
            RowKey::Page(map, page) => format!("{} {page:#x}", self.mapping(map)),
        }
    }

    /// Writable pages never written of one image, summed across processes
    /// and per process, per section and per symbol.
    fn waste(&self, touched_image: &TouchedImage) -> Option<(ImageWaste, Vec<PageRow>)> {
        let image = self.files().opened_image(&touched_image.image)?;
        let pages = &touched_image.pages;
        let mut total = Waste {
            name: self.path(&touched_image.image),
            ..Waste::default()
        };
        let mut sections: BTreeMap<String, Waste> = BTreeMap::new();
        let mut pids: BTreeMap<u32, u64> = BTreeMap::new();
        let mut page_rows = Vec::new();
        for page in image.writable_pages() {
            let section = image
                .sections
                .iter()
                .find(|s| {
                    s.addr < page.saturating_add(PAGE) && page < s.addr.saturating_add(s.size)
                })
                .map_or("?", |s| s.name.as_str());
            let entry = sections.entry(section.to_owned()).or_insert_with(|| Waste {
                name: section.to_owned(),
                ..Waste::default()
            });
            let touched = pages.get(&page);
            page_rows.push(PageRow {
                image: total.name.clone(),
                page,
                section: section.to_owned(),
                written: touched.is_some(),
                processes: touched.map_or(0, |t| u32::try_from(t.processes()).unwrap_or(u32::MAX)),
                faults: touched.map_or(0, |t| t.faults),
                symbol: touched
                    .map(|t| self.symbol(&touched_image.image, t.symbol))
                    .unwrap_or_default(),
                first_writer: touched
                    .map(|t| self.resolver.text(t.first_writer).to_owned())
                    .unwrap_or_default(),
            });
            for w in [&mut total, entry] {
                w.count(touched.is_some());
            }
            for pid in touched.into_iter().flat_map(|t| &t.pids) {
                *pids.entry(*pid).or_default() += 1;
            }
        }
        let per_process = pids
            .into_iter()
            .map(|(pid, touched)| (pid, touched, total.writable_pages.saturating_sub(touched)))
            .collect();
        Some((
            ImageWaste {
                total,
                sections: sections.into_values().collect(),
                symbols: symbol_waste(image, pages),
                per_process,
            },
            page_rows,
        ))
    }
}

impl Waste {
    /// Counts one writable page, written or not.
    pub(crate) fn count(&mut self, written: bool) {
        self.writable_pages += 1;
        if written {
            self.touched_pages += 1;
        } else {
            self.untouched_pages += 1;
            self.untouched_bytes += PAGE;
        }
    }
}

/// Writable pages of each data symbol of `image`, written or not.
fn symbol_waste(image: &Image, pages: &BTreeMap<u64, TouchedPage>) -> Vec<Waste> {
    let writable = |addr: u64| {
        image
            .segments
            .iter()
            .any(|s| s.writable && (s.vaddr..s.vaddr.saturating_add(s.mem_size)).contains(&addr))
    };
    let mut out: Vec<Waste> = image
        .data
        .iter()
        .filter(|s| s.size > 0 && writable(s.addr))
        .map(|s| {
            let first = s.addr & !(PAGE - 1);
            let last = s.addr.saturating_add(s.size - 1) & !(PAGE - 1);
            let mut w = Waste {
                name: s.name.clone(),
                ..Waste::default()
            };
            for page in (first..=last).step_by(4096) {
                w.count(pages.contains_key(&page));
            }
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
