//! The views of a recorded profile, computed from its events parts with
//! polars, part by part ([`super::merge`]), named exactly as the live
//! summary names them. Nothing depends on the order of the events: "first"
//! and "last" are the values at the least and greatest `ts_ns`.
use std::collections::{BTreeMap, HashMap, HashSet};

use cowprof_common::Kind;
use polars::prelude::{col, lit, when, DataFrame, Expr, PolarsResult};

use super::{
    merge::{each_part, kind_sums, number, row_aggs, scan, text, Rows},
    read::Profile,
    ProfileError,
};
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

/// The `columns` of the profile's end table `name` (`pages.parquet`, …),
/// if it has one, read inside [`contained`](super::contain::contained).
///
/// # Errors
/// When the file cannot be read, or the Parquet reader panics on it.
pub(crate) fn table(
    profile: &Profile,
    name: &str,
    columns: &[&str],
) -> Result<Option<DataFrame>, ProfileError> {
    let Some(path) = profile.table(name)? else {
        return Ok(None);
    };
    let columns: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
    super::contain::contained(|| scan(&path)?.select(columns).collect())
        .map_err(|problem| ProfileError::Corrupt {
            path: path.clone(),
            problem,
        })?
        .map(Some)
        .map_err(|e| polars_error(profile, &e))
}

/// The group keys of `view`, and the events it holds.
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
fn view_rows(profile: &Profile, filters: &Filters, view: View) -> PolarsResult<Vec<Row>> {
    let Some((mut keys, only)) = grouping(view) else {
        return Ok(Vec::new());
    };
    keys.push(col("pid"));
    let mut rows = Rows::new(&["writer"]);
    each_part(
        profile,
        filters,
        |lf| {
            let lf = match &only {
                Some(only) => lf.filter(only.clone()),
                None => lf,
            };
            lf.group_by(keys.clone()).agg(row_aggs(&["writer"]))
        },
        |df| {
            rows.add(df, |df, i| key(view, df, i));
            Ok(())
        },
    )?;
    let mut rows: Vec<Row> = rows
        .into_rows()
        .into_iter()
        .map(|m| Row {
            copies: m.counts.copies(),
            counts: m.counts,
            processes: m.processes,
            first_writer: m.first.into_iter().next().unwrap_or_default(),
            key: m.key,
        })
        .collect();
    crate::report::sort_rows(&mut rows);
    Ok(rows)
}

/// Every process, with the name of its latest event.
fn processes(profile: &Profile, filters: &Filters) -> PolarsResult<Vec<ProcessSummary>> {
    let mut aggs = kind_sums();
    aggs.push(col("comm").max_by(col("ts_ns")).alias("comm"));
    aggs.push(col("ts_ns").max().alias("last_ns"));
    aggs.push(col("latency_ns").sum().alias("latency_ns"));
    let mut by_pid: HashMap<u32, (ProcessSummary, u64)> = HashMap::new();
    each_part(
        profile,
        filters,
        |lf| lf.group_by([col("pid")]).agg(aggs.clone()),
        |df| {
            for i in 0..df.height() {
                let pid = u32::try_from(number(df, "pid", i)).unwrap_or(u32::MAX);
                let last_ns = number(df, "last_ns", i);
                let (p, seen) = by_pid.entry(pid).or_insert_with(|| {
                    let summary = ProcessSummary {
                        pid,
                        ..ProcessSummary::default()
                    };
                    (summary, 0)
                });
                p.counts.merge(&super::merge::counts(df, i));
                p.latency_ns = p.latency_ns.saturating_add(number(df, "latency_ns", i));
                if last_ns >= *seen {
                    *seen = last_ns;
                    p.comm = text(df, "comm", i);
                }
            }
            Ok(())
        },
    )?;
    let mut out: Vec<ProcessSummary> = by_pid.into_values().map(|(p, _)| p).collect();
    crate::report::sort_processes(&mut out);
    Ok(out)
}

/// Each image's distinct written pages per process, from the events.
fn written_pages(profile: &Profile, filters: &Filters) -> PolarsResult<Vec<(String, u32, u64)>> {
    let mut images: HashMap<String, u32> = HashMap::new();
    let mut seen: HashSet<(u32, u32, u64)> = HashSet::new();
    each_part(
        profile,
        filters,
        |lf| {
            lf.filter(col("image").is_not_null())
                .group_by([col("image"), col("pid"), col("page")])
                .agg([col("ts_ns").count().alias("faults")])
        },
        |df| {
            for i in 0..df.height() {
                let image = text(df, "image", i);
                let next = u32::try_from(images.len()).unwrap_or(u32::MAX);
                let image = *images.entry(image).or_insert(next);
                let pid = u32::try_from(number(df, "pid", i)).unwrap_or(u32::MAX);
                seen.insert((image, pid, number(df, "page", i)));
            }
            Ok(())
        },
    )?;
    let mut names = vec![String::new(); images.len()];
    for (name, id) in images {
        names[id as usize] = name;
    }
    let mut per: HashMap<(u32, u32), u64> = HashMap::new();
    for (image, pid, _) in seen {
        *per.entry((image, pid)).or_default() += 1;
    }
    Ok(per
        .into_iter()
        .map(|((image, pid), pages)| (names[image as usize].clone(), pid, pages))
        .collect())
}

/// The touch map from `pages.parquet`, per image and section, with each
/// process's written pages from the events.
fn waste(profile: &Profile, filters: &Filters) -> Result<Vec<ImageWaste>, ProfileError> {
    let Some(pages) = table(profile, "pages.parquet", &["image", "section", "written"])? else {
        return Ok(Vec::new());
    };
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let per_process = written_pages(profile, filters).map_err(err)?;
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
    for (image, pid, touched) in per_process {
        if let Some(entry) = images.get_mut(&image) {
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
    let processes = processes(profile, filters).map_err(err)?;
    let mut totals = KindCounts::default();
    for p in &processes {
        totals.merge(&p.counts);
    }
    let mut views = BTreeMap::new();
    for view in by.iter().filter(|v| **v != View::Process) {
        views.insert(*view, view_rows(profile, filters, *view).map_err(err)?);
    }
    let waste = if by.iter().any(|v| v.has_touch_map()) {
        waste(profile, filters)?
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
