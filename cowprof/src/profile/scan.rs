//! Scanning a profile's Parquet with polars, one events part (or a slice
//! of one) at a time, so reading needs memory for one part and for the
//! result, never for every event: the filters `report` takes, as polars
//! conditions; the end tables; and the readers of result frames.
use cowprof_common::Kind;
use std::path::Path;

use polars::prelude::{
    col, lit, BooleanChunked, DataFrame, DataType, Engine, Expr, IdxSize, LazyFrame, PlRefPath,
    PolarsResult, ScanArgsParquet, StringChunked, UInt64Chunked,
};

use super::{read::Profile, ProfileError};

/// Which events count.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Leave out the events of processes with this name.
    pub not_comm: Option<String>,
    /// An image's path, exactly.
    pub image: Option<String>,
    pub kind: Option<Kind>,
    /// Seconds since the start of the recording.
    pub since: Option<f64>,
    pub until: Option<f64>,
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

/// A lazy scan of the Parquet file at `path`.
pub(crate) fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().into_owned()),
        ScanArgsParquet::default(),
    )
}

/// The conditions `filters` put on events of `profile`.
pub(crate) fn conditions(profile: &Profile, filters: &Filters) -> Vec<Expr> {
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
            .not_comm
            .clone()
            .map(|comm| col("comm").neq(lit(comm))),
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

/// Runs `query` on rows `[lo, hi)` of the events part at `path` (every
/// row when `rows` is `None`) that pass `conditions`.
///
/// # Errors
/// When the part cannot be scanned (a panic of the Parquet reader
/// included).
pub(crate) fn collect(
    path: &Path,
    rows: Option<(u64, u64)>,
    conditions: &[Expr],
    query: impl FnOnce(LazyFrame) -> LazyFrame,
) -> PolarsResult<DataFrame> {
    let mut lf = scan(path)?;
    if let Some((lo, hi)) = rows {
        let len = IdxSize::try_from(hi - lo).unwrap_or(IdxSize::MAX);
        lf = lf.slice(i64::try_from(lo).unwrap_or(i64::MAX), len);
    }
    for condition in conditions {
        lf = lf.filter(condition.clone());
    }
    // The streaming engine: the in-memory one fails `min_by` on a part
    // whose filters leave no event ("returned aggregation is of different
    // length: 1 than the groups length: 0", polars 0.55.2).
    let mut df = super::contain::contained(|| query(lf).collect_with_engine(Engine::Streaming))
        .map_err(|e| polars::prelude::polars_err!(ComputeError: "{}: {e}", path.display()))??
        .unwrap_single();
    df.rechunk_mut();
    Ok(df)
}

/// The columns of a frame, each typed once.
pub(crate) struct Columns<'a> {
    pub df: &'a DataFrame,
}

impl<'a> Columns<'a> {
    /// A text column.
    pub(crate) fn text(&self, name: &str) -> Option<&'a StringChunked> {
        self.df.column(name).ok()?.str().ok()
    }

    /// A number column, as u64.
    pub(crate) fn number(&self, name: &str) -> Option<UInt64Chunked> {
        let c = self.df.column(name).ok()?;
        c.cast(&DataType::UInt64).ok()?.u64().ok().cloned()
    }

    /// A bool column.
    pub(crate) fn flag(&self, name: &str) -> Option<&'a BooleanChunked> {
        self.df.column(name).ok()?.bool().ok()
    }
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
