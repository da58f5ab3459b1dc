//! Names a snapshot's keys (paths, sections, symbols, writers, stacks)
//! through whoever learned the names ([`Names`]: the live resolver, or a
//! profile's dictionary), and each image's waste, computed by the model
//! against the image's layout. Runs when a report is built, never per
//! event, and opens no file.
use std::collections::BTreeMap;

use cowprof_model::{
    keys::comm_str,
    names::Names,
    state::{Snapshot, TouchedImage, View, ViewRow},
    waste::{self, Pages},
};

use super::{
    ImageWaste, PageRow, ProcessMappingRow, ProcessSummary, Report, Row, Waste, SYMBOLS_PER_IMAGE,
};
use crate::probe::ProbeStats;

/// Builds the report of `snapshot`, naming the rows of `views`.
#[must_use]
pub fn report(snapshot: Snapshot, names: &dyn Names, views: &[View], kernel: ProbeStats) -> Report {
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
        .map(|v| (v.view, rows(v.rows, names)))
        .collect();
    let (mut waste, pages): (Vec<ImageWaste>, Vec<Vec<PageRow>>) = snapshot
        .touched
        .iter()
        .filter_map(|t| image_waste(t, names))
        .unzip();
    // Most pages never written first, then by path: the order does not
    // depend on the state's hashing.
    waste.sort_by(|a, b| {
        b.total
            .pages
            .untouched_pages
            .cmp(&a.total.pages.untouched_pages)
            .then_with(|| a.total.name.cmp(&b.total.name))
    });
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
                mapping: names.process_mapping(&m.mapping),
                counts: m.counts,
                first_writer: names.text(m.first_writer).to_owned(),
            })
            .collect(),
        unnamed_writers: Vec::new(),
        kernel,
    }
}

/// Names `rows` of a view, most COW faults first (then by name).
pub fn rows(rows: impl IntoIterator<Item = ViewRow>, names: &dyn Names) -> Vec<Row> {
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|r| Row {
            key: names.row(&r.key),
            counts: r.counts,
            copies: r.counts.copies(),
            processes: r.processes,
            first_writer: names.text(r.first_writer).to_owned(),
        })
        .collect();
    super::sort_rows(&mut rows);
    rows
}

fn named(name: &str, pages: Pages) -> Waste {
    Waste {
        name: name.to_owned(),
        pages,
    }
}

/// The waste of one image, named: sections by name, the data symbols most
/// pages never written first (at most [`SYMBOLS_PER_IMAGE`]).
fn image_waste(touched: &TouchedImage, names: &dyn Names) -> Option<(ImageWaste, Vec<PageRow>)> {
    let layout = names.layout(&touched.image)?;
    let image = touched.image;
    let (waste, pages) = waste::of_image(image, &touched.pages, &layout);
    let path = names.path(&image).into_owned();
    let mut sections: BTreeMap<&str, Pages> = BTreeMap::new();
    for (section, pages) in &waste.sections {
        let entry = sections.entry(names.section(&image, *section)).or_default();
        entry.writable_pages += pages.writable_pages;
        entry.touched_pages += pages.touched_pages;
        entry.untouched_pages += pages.untouched_pages;
        entry.untouched_bytes += pages.untouched_bytes;
    }
    let mut symbols: Vec<Waste> = waste
        .symbols
        .iter()
        .map(|(symbol, pages)| named(names.symbol(&image, Some(*symbol)), *pages))
        .collect();
    symbols.sort_by(|a, b| {
        b.pages
            .untouched_pages
            .cmp(&a.pages.untouched_pages)
            .then_with(|| a.name.cmp(&b.name))
    });
    symbols.truncate(SYMBOLS_PER_IMAGE);
    let rows = pages
        .iter()
        .map(|p| PageRow {
            image: path.clone(),
            page: p.page,
            section: names.section(&image, p.section).to_owned(),
            written: p.written,
            processes: p.processes,
            faults: p.faults,
            symbol: if p.written {
                names.symbol(&image, p.symbol).to_owned()
            } else {
                String::new()
            },
            first_writer: if p.written {
                names.text(p.first_writer).to_owned()
            } else {
                String::new()
            },
        })
        .collect();
    let waste = ImageWaste {
        total: named(&path, waste.total),
        sections: sections
            .into_iter()
            .map(|(name, pages)| named(name, pages))
            .collect(),
        symbols,
        per_process: waste.per_process,
    };
    Some((waste, rows))
}
