//! A recorded profile as it stood at any moment: the same [`Report`] the
//! live collector publishes, computed from the events up to that moment.
//! `top --replay` shows these.
use std::collections::BTreeMap;

use cowprof_common::Kind;
use polars::prelude::{col, DataType, LazyFrame};

use super::{
    offline::{self, collect, counts, earliest, number, polars_error, text, Filters},
    read::Profile,
    ProfileError,
};
use crate::{
    report::{PageRow, ProcessMappingRow, Report, Waste},
    state::{Latencies, View},
};

/// The views a replayed report names.
pub const VIEWS: [View; 3] = [View::Mapping, View::Image, View::Writer];

/// The report of `profile` with the events before `until` seconds (all of
/// them when `None`).
///
/// # Errors
/// When a file cannot be scanned.
pub fn report_at(profile: &Profile, until: Option<f64>) -> Result<Report, ProfileError> {
    let filters = Filters {
        until,
        ..Filters::default()
    };
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let views = offline::views(profile, &VIEWS, &filters)?;
    let mut report = Report {
        events: views.totals.all(),
        total_processes: views.processes.len(),
        processes: views.processes,
        views: views.views,
        waste: views.waste,
        totals: views.totals,
        ..Report::default()
    };
    report.kernel.lost_events = profile.manifest.lost_events;
    if until.is_none() {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            report.kernel.kernel_counts[i] = profile
                .manifest
                .kernel_totals
                .get(kind.name())
                .copied()
                .unwrap_or_default();
        }
    }
    let Some(events) = offline::events(profile, &filters).map_err(err)? else {
        return Ok(report);
    };
    report.process_mappings = process_mappings(&events).map_err(err)?;
    latencies(&events, &mut report).map_err(err)?;
    report.pages = pages(profile, &events)?;
    if until.is_some() {
        rewaste(&mut report);
    }
    Ok(report)
}

/// Counts each image's pages written so far from its page rows (the
/// profile's end tables know only the end).
fn rewaste(report: &mut Report) {
    for image in &mut report.waste {
        let name = image.total.name.clone();
        image.total = Waste {
            name: name.clone(),
            ..Waste::default()
        };
        for section in &mut image.sections {
            *section = Waste {
                name: section.name.clone(),
                ..Waste::default()
            };
        }
        for page in report.pages.iter().filter(|p| p.image == name) {
            image.total.count(page.written);
            if let Some(s) = image.sections.iter_mut().find(|s| s.name == page.section) {
                s.count(page.written);
            }
        }
    }
}

fn process_mappings(events: &LazyFrame) -> polars::prelude::PolarsResult<Vec<ProcessMappingRow>> {
    let mut aggs = offline::kind_sums();
    aggs.push(earliest("writer").alias("first_writer"));
    let df = collect(
        events
            .clone()
            .group_by([
                col("pid"),
                col("mapping"),
                col("anon"),
                col("mapping_start"),
                col("mapping_end"),
            ])
            .agg(aggs),
    )?;
    Ok((0..df.height())
        .map(|i| {
            let anon = df
                .column("anon")
                .ok()
                .and_then(|c| c.bool().ok()?.get(i))
                .unwrap_or(false);
            let name = text(&df, "mapping", i);
            ProcessMappingRow {
                pid: u32::try_from(number(&df, "pid", i)).unwrap_or(u32::MAX),
                mapping: if anon {
                    format!(
                        "{name} {:#x}-{:#x}",
                        number(&df, "mapping_start", i),
                        number(&df, "mapping_end", i)
                    )
                } else {
                    name
                },
                counts: counts(&df, i),
                first_writer: text(&df, "first_writer", i),
            }
        })
        .collect())
}

/// Latency percentiles and histograms, through the same histograms as the
/// live collector, fed with each distinct latency once with its count.
fn latencies(events: &LazyFrame, report: &mut Report) -> polars::prelude::PolarsResult<()> {
    let df = collect(
        events
            .clone()
            .group_by([col("kind"), col("latency_ns")])
            .agg([col("ts_ns").count().alias("n")]),
    )?;
    let kinds = df.column("kind")?.str()?.clone();
    let ns = df.column("latency_ns")?.cast(&DataType::UInt64)?;
    let ns = ns.u64()?;
    let n = df.column("n")?.cast(&DataType::UInt64)?;
    let n = n.u64()?;
    let mut latencies = Latencies::default();
    for ((kind, ns), n) in kinds.iter().zip(ns.iter()).zip(n.iter()) {
        if let (Some(kind), Some(ns), Some(n)) = (kind.and_then(kind_named), ns, n) {
            latencies.record_n(kind, ns, n);
        }
    }
    report.latency = latencies
        .summary()
        .into_iter()
        .map(|(k, s)| (k.name(), s))
        .collect();
    report.latency_histogram = latencies
        .buckets()
        .into_iter()
        .map(|(k, b)| (k.name(), b))
        .collect();
    Ok(())
}

fn kind_named(name: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.name() == name)
}

/// Every writable page of the images written, from `pages.parquet`, with
/// what the events until now wrote there.
fn pages(profile: &Profile, events: &LazyFrame) -> Result<Vec<PageRow>, ProfileError> {
    let Some(all) = offline::table(profile, "pages.parquet")? else {
        return Ok(Vec::new());
    };
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let all = collect(all.select([col("image"), col("page"), col("section")])).map_err(err)?;
    let written = offline::per_row(
        events.clone().filter(col("image").is_not_null()),
        &[col("image"), col("page")],
        &["symbol"],
    )
    .map_err(err)?;
    let mut by_page: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for i in 0..written.height() {
        by_page.insert((text(&written, "image", i), number(&written, "page", i)), i);
    }
    Ok((0..all.height())
        .map(|i| {
            let image = text(&all, "image", i);
            let page = number(&all, "page", i);
            let hit = by_page.get(&(image.clone(), page)).copied();
            let field = |name| hit.map(|j| text(&written, name, j)).unwrap_or_default();
            PageRow {
                page,
                section: text(&all, "section", i),
                written: hit.is_some(),
                processes: hit.map_or(0, |j| {
                    u32::try_from(number(&written, "processes", j)).unwrap_or(u32::MAX)
                }),
                faults: hit.map_or(0, |j| counts(&written, j).all()),
                symbol: field("symbol"),
                first_writer: field("first_writer"),
                image,
            }
        })
        .collect())
}
