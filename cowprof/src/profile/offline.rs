//! The views of a recorded profile, computed from its events parts with
//! polars lazy scans, named exactly as the live summary names them.
//!
//! Every query runs on polars' streaming engine and is a group-by whose
//! aggregations stream (sums, counts, `min_by`), so its memory is bounded by
//! the groups, never by the events: a profile of 684M events is read in
//! parts. A distinct count of processes is a group-by on the row's keys and
//! the pid, counted again by the keys; it is exact, and its memory is the
//! number of distinct (row, process) pairs. Nothing depends on the order of
//! the events: "first" and "last" are the values at the least and greatest
//! `ts_ns`.
use std::collections::BTreeMap;

use cowprof_common::Kind;
use polars::prelude::{
    col, lit, when, DataFrame, DataType, Engine, Expr, IntoLazy as _, JoinArgs, JoinType,
    LazyFrame, PlRefPath, PolarsResult, ScanArgsParquet, ScanSources,
};

use super::{read::Profile, ProfileError};
use crate::{
    report::{ImageWaste, ProcessSummary, Row, Waste},
    state::{KindCounts, View},
};

/// Which events count.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// An image's path, exactly.
    pub image: Option<String>,
    pub kind: Option<Kind>,
    /// Seconds since the start of the recording.
    pub since: Option<f64>,
    pub until: Option<f64>,
}

/// A profile's views.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Offline {
    pub processes: Vec<ProcessSummary>,
    pub views: BTreeMap<View, Vec<Row>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waste: Vec<ImageWaste>,
    pub totals: KindCounts,
}

pub(crate) fn polars_error(profile: &Profile, err: &polars::prelude::PolarsError) -> ProfileError {
    ProfileError::Corrupt {
        path: profile.dir.clone(),
        problem: err.to_string(),
    }
}

/// A lazy scan of the Parquet file at `path`.
fn scan(path: &std::path::Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().into_owned()),
        ScanArgsParquet::default(),
    )
}

/// The profile's end table `name` (`pages.parquet`, …), if it has one.
///
/// # Errors
/// When the file cannot be scanned.
pub(crate) fn table(profile: &Profile, name: &str) -> Result<Option<LazyFrame>, ProfileError> {
    let Some(path) = profile.table(name)? else {
        return Ok(None);
    };
    scan(&path).map(Some).map_err(|e| polars_error(profile, &e))
}

/// Runs `lf` on polars' streaming engine.
#[expect(
    clippy::redundant_closure_for_method_calls,
    reason = "polars does not re-export QueryResult, so its method has no path here"
)]
pub(crate) fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    lf.collect_with_engine(Engine::Streaming)
        .map(|r| r.unwrap_single())
}

/// The value of `name` in the group's earliest event.
pub(crate) fn earliest(name: &str) -> Expr {
    col(name).min_by(col("ts_ns"))
}

/// All events of `profile` that pass `filters`, in no promised order.
pub(crate) fn events(profile: &Profile, filters: &Filters) -> PolarsResult<Option<LazyFrame>> {
    if profile.parts.is_empty() {
        return Ok(None);
    }
    // One scan of every part, which polars reads in turn with bounded
    // read-ahead (a union of one scan per part buffers them all).
    let paths: Vec<PlRefPath> = profile
        .parts
        .iter()
        .map(|p| PlRefPath::new(p.to_string_lossy().into_owned()))
        .collect();
    let mut lf = LazyFrame::scan_parquet_sources(
        ScanSources::Paths(paths.into()),
        ScanArgsParquet::default(),
    )?;
    let start = profile.manifest.start_ktime_ns;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "seconds to ns, clamped at 0"
    )]
    let at = |secs: f64| start.saturating_add((secs.max(0.0) * 1e9) as u64);
    let conditions = [
        filters.pid.map(|pid| col("pid").eq(lit(pid))),
        filters.comm.clone().map(|comm| col("comm").eq(lit(comm))),
        filters
            .image
            .clone()
            .map(|image| col("image").eq(lit(image))),
        filters.kind.map(|kind| col("kind").eq(lit(kind.name()))),
        filters.since.map(|s| col("ts_ns").gt_eq(lit(at(s)))),
        filters.until.map(|s| col("ts_ns").lt(lit(at(s)))),
    ];
    for condition in conditions.into_iter().flatten() {
        lf = lf.filter(condition);
    }
    Ok(Some(lf))
}

/// Counts per kind, as aggregations.
pub(crate) fn kind_sums() -> Vec<Expr> {
    Kind::ALL
        .iter()
        .map(|k| {
            col("kind")
                .eq(lit(k.name()))
                .cast(DataType::UInt64)
                .sum()
                .alias(k.name())
        })
        .collect()
}

/// The group keys of `view`, each named, and the events it holds.
fn grouping(view: View) -> Option<(Vec<Expr>, Option<Expr>)> {
    let anon = |e: Expr, zero: Expr| when(col("anon")).then(e).otherwise(zero);
    let image = Some(col("image").is_not_null());
    Some(match view {
        View::Process => return None,
        View::Mapping => (
            vec![
                col("mapping"),
                col("anon"),
                anon(col("mapping_start"), lit(0u64)).alias("start"),
                anon(col("mapping_end"), lit(0u64)).alias("end"),
                anon(col("pid"), lit(0u32)).alias("mpid"),
            ],
            None,
        ),
        View::Image => (vec![col("image")], image),
        View::Section => (vec![col("image"), col("section")], image),
        View::Symbol => (vec![col("image"), col("section"), col("symbol")], image),
        View::Page => (
            vec![
                col("image"),
                col("section"),
                when(col("image").is_null())
                    .then(col("mapping"))
                    .otherwise(lit(""))
                    .alias("region"),
                col("page"),
            ],
            None,
        ),
        View::Writer => (vec![col("writer_function")], None),
        View::Stack => (vec![col("stack")], Some(col("stack").is_not_null())),
    })
}

/// The names the keys `keys` take in a group-by's output.
fn names(keys: &[Expr]) -> Vec<Expr> {
    keys.iter()
        .map(|k| match k {
            Expr::Alias(_, name) => col(name.clone()),
            other => other.clone(),
        })
        .collect()
}

/// Groups `events` by `keys` with counts per kind, the earliest writer
/// (`first_writer`) and the earliest of `more`, and the number of distinct
/// processes (`processes`). Both passes stream: the rows, then the distinct
/// (keys, pid) pairs counted per keys. The second holds no payload, so its
/// memory is the distinct pairs' keys.
pub(crate) fn per_row(events: LazyFrame, keys: &[Expr], more: &[&str]) -> PolarsResult<DataFrame> {
    let named = names(keys);
    let mut aggs = kind_sums();
    aggs.push(earliest("writer").alias("first_writer"));
    aggs.extend(more.iter().map(|m| earliest(m).alias(*m)));
    let rows = collect(events.clone().group_by(keys).agg(aggs))?;
    let mut by_pid = keys.to_vec();
    by_pid.push(col("pid"));
    let processes = collect(
        events
            .group_by(by_pid)
            .agg([col("ts_ns").count().alias("faults")])
            .group_by(named.clone())
            .agg([col("pid").count().alias("processes")]),
    )?;
    let mut left = JoinArgs::new(JoinType::Left);
    left.nulls_equal = true;
    rows.lazy()
        .join(processes.lazy(), &named, &named, left)
        .collect()
}

/// Column `name` of `df` as text, row `i` (empty when null).
pub(crate) fn text(df: &DataFrame, name: &str, i: usize) -> String {
    df.column(name)
        .ok()
        .and_then(|c| c.str().ok()?.get(i).map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn number(df: &DataFrame, name: &str, i: usize) -> u64 {
    df.column(name)
        .ok()
        .and_then(|c| {
            let c = c.cast(&DataType::UInt64).ok()?;
            c.u64().ok()?.get(i)
        })
        .unwrap_or(0)
}

pub(crate) fn counts(df: &DataFrame, i: usize) -> KindCounts {
    let mut values = [0; 6];
    for (slot, kind) in values.iter_mut().zip(Kind::ALL) {
        *slot = number(df, kind.name(), i);
    }
    KindCounts::from_array(values)
}

/// The row key of row `i` of `view`'s groups, as the live summary names it.
fn key(view: View, df: &DataFrame, i: usize) -> String {
    let t = |name| text(df, name, i);
    let or_unknown = |s: String| if s.is_empty() { "?".to_owned() } else { s };
    match view {
        View::Mapping => {
            let anon = df
                .column("anon")
                .ok()
                .and_then(|c| c.bool().ok()?.get(i))
                .unwrap_or(false);
            if anon {
                format!(
                    "{} {:#x}-{:#x} pid {}",
                    t("mapping"),
                    number(df, "start", i),
                    number(df, "end", i),
                    number(df, "mpid", i)
                )
            } else {
                t("mapping")
            }
        }
        View::Image => t("image"),
        View::Section => format!("{} {}", t("image"), or_unknown(t("section"))),
        View::Symbol => format!(
            "{} {} {}",
            t("image"),
            or_unknown(t("section")),
            or_unknown(t("symbol"))
        ),
        View::Page if t("image").is_empty() => {
            format!("{} {:#x}", t("region"), number(df, "page", i))
        }
        View::Page => format!(
            "{} {} {:#x}",
            t("image"),
            or_unknown(t("section")),
            number(df, "page", i)
        ),
        View::Writer => t("writer_function"),
        View::Stack => t("stack"),
        View::Process => String::new(),
    }
}

/// The rows of `view`, sorted as the live summary sorts them.
fn view_rows(events: &LazyFrame, view: View) -> PolarsResult<Vec<Row>> {
    let Some((keys, only)) = grouping(view) else {
        return Ok(Vec::new());
    };
    let mut lf = events.clone();
    if let Some(only) = only {
        lf = lf.filter(only);
    }
    let df = per_row(lf, &keys, &[])?;
    let mut rows: Vec<Row> = (0..df.height())
        .map(|i| {
            let counts = counts(&df, i);
            Row {
                key: key(view, &df, i),
                copies: counts.copies(),
                counts,
                processes: usize::try_from(number(&df, "processes", i)).unwrap_or(usize::MAX),
                first_writer: text(&df, "first_writer", i),
            }
        })
        .collect();
    crate::report::sort_rows(&mut rows);
    Ok(rows)
}

fn processes(events: &LazyFrame) -> PolarsResult<Vec<ProcessSummary>> {
    let mut aggs = kind_sums();
    aggs.push(col("comm").max_by(col("ts_ns")).alias("comm"));
    aggs.push(col("latency_ns").sum().alias("latency_ns"));
    let df = collect(events.clone().group_by([col("pid")]).agg(aggs))?;
    let mut out: Vec<ProcessSummary> = (0..df.height())
        .map(|i| ProcessSummary {
            pid: u32::try_from(number(&df, "pid", i)).unwrap_or(u32::MAX),
            comm: text(&df, "comm", i),
            counts: counts(&df, i),
            latency_ns: number(&df, "latency_ns", i),
        })
        .collect();
    crate::report::sort_processes(&mut out);
    Ok(out)
}

/// The touch map from `pages.parquet`, per image and section, with each
/// process's written pages from the events.
fn waste(profile: &Profile, events: &LazyFrame) -> Result<Vec<ImageWaste>, ProfileError> {
    let Some(pages) = table(profile, "pages.parquet")? else {
        return Ok(Vec::new());
    };
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let pages = collect(pages).map_err(err)?;
    let per_process = collect(
        events
            .clone()
            .filter(col("image").is_not_null())
            .group_by([col("image"), col("pid"), col("page")])
            .agg([col("ts_ns").count()])
            .group_by([col("image"), col("pid")])
            .agg([col("page").count().alias("pages")]),
    )
    .map_err(err)?;
    let mut images: BTreeMap<String, ImageWaste> = BTreeMap::new();
    let mut sections: BTreeMap<(String, String), Waste> = BTreeMap::new();
    for i in 0..pages.height() {
        let image = text(&pages, "image", i);
        let section = text(&pages, "section", i);
        let written = pages
            .column("written")
            .ok()
            .and_then(|c| c.bool().ok()?.get(i))
            .unwrap_or(false);
        let entry = images.entry(image.clone()).or_default();
        entry.total.name.clone_from(&image);
        entry.total.count(written);
        let s = sections.entry((image, section.clone())).or_default();
        s.name = section;
        s.count(written);
    }
    for ((image, _), section) in sections {
        if let Some(entry) = images.get_mut(&image) {
            entry.sections.push(section);
        }
    }
    for i in 0..per_process.height() {
        if let Some(entry) = images.get_mut(&text(&per_process, "image", i)) {
            let touched = number(&per_process, "pages", i);
            let pid = u32::try_from(number(&per_process, "pid", i)).unwrap_or(u32::MAX);
            let untouched = entry.total.writable_pages.saturating_sub(touched);
            entry.per_process.push((pid, touched, untouched));
        }
    }
    let mut out: Vec<ImageWaste> = images.into_values().collect();
    for image in &mut out {
        image.per_process.sort_unstable();
    }
    out.sort_by_key(|w| std::cmp::Reverse(w.total.untouched_pages));
    Ok(out)
}

/// The views `by` of `profile`, of the events that pass `filters`.
///
/// # Errors
/// When a file cannot be scanned.
pub fn views(profile: &Profile, by: &[View], filters: &Filters) -> Result<Offline, ProfileError> {
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let Some(events) = events(profile, filters).map_err(err)? else {
        return Ok(Offline::default());
    };
    let processes = processes(&events).map_err(err)?;
    let mut totals = KindCounts::default();
    for p in &processes {
        totals.merge(&p.counts);
    }
    let mut views = BTreeMap::new();
    for view in by.iter().filter(|v| **v != View::Process) {
        views.insert(*view, view_rows(&events, *view).map_err(err)?);
    }
    let waste = if by.iter().any(|v| v.has_touch_map()) {
        waste(profile, &events)?
    } else {
        Vec::new()
    };
    Ok(Offline {
        processes,
        views,
        waste,
        totals,
    })
}

/// Keeps the top `n` rows of each view, and processes.
pub fn keep_top(offline: &mut Offline, n: usize) {
    offline.processes.truncate(n);
    for rows in offline.views.values_mut() {
        rows.truncate(n);
    }
}
