//! A recorded profile as it stood at any moment: the same [`Report`] the
//! live collector publishes, computed from the events up to that moment.
//! `top --replay` shows these.
use std::collections::BTreeMap;

use cowprof_common::Kind;
use polars::prelude::{col, DataFrame, DataType, PolarsResult};

use super::{
    merge::{each_part, number, row_aggs, text, Rows},
    offline::{self, polars_error, Filters},
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
    report.process_mappings = process_mappings(profile, &filters).map_err(err)?;
    latencies(profile, &filters, &mut report).map_err(err)?;
    report.pages = pages(profile, &filters)?;
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

/// A process's mapping as the live summary names it.
fn process_mapping(df: &DataFrame, i: usize) -> (u32, String) {
    let anon = df
        .column("anon")
        .ok()
        .and_then(|c| c.bool().ok()?.get(i))
        .unwrap_or(false);
    let name = text(df, "mapping", i);
    let pid = u32::try_from(number(df, "pid", i)).unwrap_or(u32::MAX);
    if anon {
        let range = format!(
            "{name} {:#x}-{:#x}",
            number(df, "mapping_start", i),
            number(df, "mapping_end", i)
        );
        (pid, range)
    } else {
        (pid, name)
    }
}

fn process_mappings(profile: &Profile, filters: &Filters) -> PolarsResult<Vec<ProcessMappingRow>> {
    let mut rows = Rows::new(&["writer"]);
    each_part(
        profile,
        filters,
        |lf| {
            lf.group_by([
                col("pid"),
                col("mapping"),
                col("anon"),
                col("mapping_start"),
                col("mapping_end"),
            ])
            .agg(row_aggs(&["writer"]))
        },
        |df| {
            rows.add(df, process_mapping);
            Ok(())
        },
    )?;
    Ok(rows
        .into_rows()
        .into_iter()
        .map(|m| ProcessMappingRow {
            pid: m.key.0,
            mapping: m.key.1,
            counts: m.counts,
            first_writer: m.first.into_iter().next().unwrap_or_default(),
        })
        .collect())
}

/// Latency percentiles and histograms, through the same histograms as the
/// live collector, fed with each distinct latency once with its count.
fn latencies(profile: &Profile, filters: &Filters, report: &mut Report) -> PolarsResult<()> {
    let mut latencies = Latencies::default();
    each_part(
        profile,
        filters,
        |lf| {
            lf.group_by([col("kind"), col("latency_ns")])
                .agg([col("ts_ns").count().alias("n")])
        },
        |df| {
            let kinds = df.column("kind")?.str()?;
            let ns = df.column("latency_ns")?.cast(&DataType::UInt64)?;
            let n = df.column("n")?.cast(&DataType::UInt64)?;
            for ((kind, ns), n) in kinds.iter().zip(ns.u64()?.iter()).zip(n.u64()?.iter()) {
                if let (Some(kind), Some(ns), Some(n)) = (kind.and_then(kind_named), ns, n) {
                    latencies.record_n(kind, ns, n);
                }
            }
            Ok(())
        },
    )?;
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
fn pages(profile: &Profile, filters: &Filters) -> Result<Vec<PageRow>, ProfileError> {
    let Some(all) = offline::table(profile, "pages.parquet", &["image", "page", "section"])? else {
        return Ok(Vec::new());
    };
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let mut written = Rows::new(&["symbol", "writer"]);
    each_part(
        profile,
        filters,
        |lf| {
            lf.filter(col("image").is_not_null())
                .group_by([col("image"), col("page"), col("pid")])
                .agg(row_aggs(&["symbol", "writer"]))
        },
        |df| {
            written.add(df, |df, i| (text(df, "image", i), number(df, "page", i)));
            Ok(())
        },
    )
    .map_err(err)?;
    let by_page: BTreeMap<(String, u64), _> = written
        .into_rows()
        .into_iter()
        .map(|m| (m.key.clone(), m))
        .collect();
    Ok((0..all.height())
        .map(|i| {
            let image = text(&all, "image", i);
            let page = number(&all, "page", i);
            let hit = by_page.get(&(image.clone(), page));
            let first = |n: usize| {
                hit.and_then(|m| m.first.get(n).cloned())
                    .unwrap_or_default()
            };
            PageRow {
                page,
                section: text(&all, "section", i),
                written: hit.is_some(),
                processes: hit.map_or(0, |m| u32::try_from(m.processes).unwrap_or(u32::MAX)),
                faults: hit.map_or(0, |m| m.counts.all()),
                symbol: first(0),
                first_writer: first(1),
                image,
            }
        })
        .collect())
}
