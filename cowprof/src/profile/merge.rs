//! Reading a profile one events part at a time, and merging the parts'
//! groups, so `report` and `top --replay` need memory for one part and for
//! their result, never for every event.
//!
//! A part holds at most 1M events. Each query groups one part's events by a
//! row's keys *and the pid*, with counts per kind and the group's earliest
//! `ts_ns`; [`Rows`] folds those groups into rows by key, keeping the values
//! of the earliest event and counting each distinct (row, pid) pair once.
//! That count is exact, and its memory is the distinct (row, pid) pairs
//! (8 bytes each in the hash set, plus its overhead): the default report
//! of a 653M-event soak profile peaked at 254 MiB, its page view, whose
//! anonymous pages 176k processes wrote, at 7.4 GiB. polars' own streaming
//! group-by was tried first; its memory grew with the events on keys such
//! as (writer, pid).
use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

use cowprof_common::Kind;
use polars::prelude::{
    col, lit, AnyValue, DataFrame, Engine, Expr, LazyFrame, PlRefPath, PolarsResult,
    ScanArgsParquet,
};

use super::{offline::Filters, read::Profile};
use crate::state::KindCounts;

/// A lazy scan of the Parquet file at `path`.
pub(crate) fn scan(path: &std::path::Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().into_owned()),
        ScanArgsParquet::default(),
    )
}

/// The conditions `filters` put on events of `profile`.
fn conditions(profile: &Profile, filters: &Filters) -> Vec<Expr> {
    let start = profile.manifest.start_ktime_ns;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "seconds to ns, clamped at 0"
    )]
    let at = |secs: f64| start.saturating_add((secs.max(0.0) * 1e9) as u64);
    [
        filters.pid.map(|pid| col("pid").eq(lit(pid))),
        filters.comm.clone().map(|comm| col("comm").eq(lit(comm))),
        filters
            .image
            .clone()
            .map(|image| col("image").eq(lit(image))),
        filters.kind.map(|kind| col("kind").eq(lit(kind.name()))),
        filters.since.map(|s| col("ts_ns").gt_eq(lit(at(s)))),
        filters.until.map(|s| col("ts_ns").lt(lit(at(s)))),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Runs `query` on the events of each part of `profile` that pass
/// `filters`, in turn, and hands each result to `merge`.
///
/// # Errors
/// When a part cannot be scanned, or `merge` fails.
pub(crate) fn each_part(
    profile: &Profile,
    filters: &Filters,
    query: impl Fn(LazyFrame) -> LazyFrame,
    mut merge: impl FnMut(&DataFrame) -> PolarsResult<()>,
) -> PolarsResult<()> {
    let conditions = conditions(profile, filters);
    for part in &profile.parts {
        let mut lf = scan(part)?;
        for condition in &conditions {
            lf = lf.filter(condition.clone());
        }
        // The streaming engine: the in-memory one fails `min_by` on a part
        // whose filters leave no event ("returned aggregation is of
        // different length: 1 than the groups length: 0", polars 0.55.2).
        let mut df = super::contain::contained(|| query(lf).collect_with_engine(Engine::Streaming))
            .map_err(|e| polars::prelude::polars_err!(ComputeError: "{}: {e}", part.display()))??
            .unwrap_single();
        merge(df.rechunk_mut())?;
    }
    Ok(())
}

/// Counts per kind, as aggregations.
pub(crate) fn kind_sums() -> Vec<Expr> {
    Kind::ALL
        .iter()
        .map(|k| {
            col("kind")
                .eq(lit(k.name()))
                .cast(polars::prelude::DataType::UInt64)
                .sum()
                .alias(k.name())
        })
        .collect()
}

/// The value of `name` in the group's earliest event.
pub(crate) fn earliest(name: &str) -> Expr {
    col(name).min_by(col("ts_ns"))
}

/// The aggregations a part's groups need for [`Rows`]: counts per kind, the
/// earliest `ts_ns` (`first_ns`), and the earliest value of each of `first`.
pub(crate) fn row_aggs(first: &[&str]) -> Vec<Expr> {
    let mut aggs = kind_sums();
    aggs.push(col("ts_ns").min().alias("first_ns"));
    aggs.extend(first.iter().map(|name| earliest(name).alias(*name)));
    aggs
}

/// Column `name` of `df` as text, row `i` (empty when null).
pub(crate) fn text(df: &DataFrame, name: &str, i: usize) -> String {
    df.column(name)
        .ok()
        .and_then(|c| c.str().ok()?.get(i).map(str::to_owned))
        .unwrap_or_default()
}

/// Column `name` of `df` as a number, row `i` (0 when null or missing).
pub(crate) fn number(df: &DataFrame, name: &str, i: usize) -> u64 {
    match df.column(name).and_then(|c| c.get(i)) {
        Ok(AnyValue::Boolean(b)) => u64::from(b),
        Ok(value) => value.extract::<u64>().unwrap_or(0),
        Err(_) => 0,
    }
}

/// The counts per kind of row `i`.
pub(crate) fn counts(df: &DataFrame, i: usize) -> KindCounts {
    let mut values = [0; 6];
    for (slot, kind) in values.iter_mut().zip(Kind::ALL) {
        *slot = number(df, kind.name(), i);
    }
    KindCounts::from_array(values)
}

/// One merged row.
#[derive(Clone, Debug)]
pub(crate) struct Merged<K> {
    pub key: K,
    pub counts: KindCounts,
    /// Distinct processes.
    pub processes: usize,
    /// The earliest event's `ts_ns`, and its values of the `first` columns.
    pub first_ns: u64,
    pub first: Vec<String>,
}

/// Rows merged across parts, by key.
#[derive(Debug)]
pub(crate) struct Rows<K> {
    first: Vec<&'static str>,
    index: HashMap<K, u32>,
    merged: Vec<Merged<K>>,
    /// Distinct (row, pid) pairs seen.
    pairs: HashSet<(u32, u32)>,
}

impl<K: Hash + Eq + Clone> Rows<K> {
    /// Rows that keep the earliest values of the columns `first`.
    pub(crate) fn new(first: &[&'static str]) -> Self {
        Self {
            first: first.to_vec(),
            index: HashMap::new(),
            merged: Vec::new(),
            pairs: HashSet::new(),
        }
    }

    /// Adds every group of `df` (from [`row_aggs`], grouped by keys and
    /// `pid`), keyed by `key`.
    pub(crate) fn add(&mut self, df: &DataFrame, key: impl Fn(&DataFrame, usize) -> K) {
        for i in 0..df.height() {
            let key = key(df, i);
            let id = if let Some(id) = self.index.get(&key) {
                *id
            } else {
                let id = u32::try_from(self.merged.len()).unwrap_or(u32::MAX);
                self.index.insert(key.clone(), id);
                self.merged.push(Merged {
                    key,
                    counts: KindCounts::default(),
                    processes: 0,
                    first_ns: u64::MAX,
                    first: Vec::new(),
                });
                id
            };
            let row = &mut self.merged[id as usize];
            row.counts.merge(&counts(df, i));
            let first_ns = number(df, "first_ns", i);
            if first_ns < row.first_ns {
                row.first_ns = first_ns;
                row.first = self.first.iter().map(|name| text(df, name, i)).collect();
            }
            let pid = u32::try_from(number(df, "pid", i)).unwrap_or(u32::MAX);
            if self.pairs.insert((id, pid)) {
                row.processes += 1;
            }
        }
    }

    /// The merged rows, in the order their keys were first seen.
    pub(crate) fn into_rows(self) -> Vec<Merged<K>> {
        self.merged
    }
}
