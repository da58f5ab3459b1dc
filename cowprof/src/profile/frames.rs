//! Rows → polars `DataFrame`s, and the Parquet writer every profile file is
//! written with: zstd, dictionary-encoded strings and integers, statistics,
//! and the schema version in the key-value metadata.
//!
//! The embedded Arrow schema is the oldest-compatible one (plain, large
//! strings). polars' own would declare `string_view`, which pyarrow can
//! read but not filter (it has no comparison kernels for it).
use std::io::Write;

use polars::io::parquet::write::BatchedWriter;
use polars::prelude::{
    CompatLevel, DataFrame, IntoColumn as _, KeyValueMetadata, NamedFrom as _, ParquetCompression,
    ParquetWriter, PolarsResult, SchemaExt as _, Series, StatisticsOptions,
};
use polars_parquet::write::schema_to_metadata_key;

use super::{SCHEMA_KEY, SCHEMA_VERSION};
use crate::report::{events::EventRow, PageRow, ProcessSummary, Row};

/// A column of `rows`, by a field accessor.
fn col<'a, T, V>(name: &str, rows: &'a [T], f: impl Fn(&'a T) -> V) -> polars::prelude::Column
where
    Series: polars::prelude::NamedFrom<Vec<V>, [V]>,
{
    Series::new(name.into(), rows.iter().map(f).collect::<Vec<V>>()).into_column()
}

/// The events table of a batch of named faults.
///
/// # Errors
/// When polars cannot build the frame (a bug).
pub fn events(rows: &[EventRow]) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        col("ts_ns", rows, |r| r.ts_ns),
        col("pid", rows, |r| r.pid),
        col("tid", rows, |r| r.tid),
        col("cpu", rows, |r| r.cpu),
        col("comm", rows, |r| &*r.comm),
        col("kind", rows, |r| r.kind),
        col("address", rows, |r| r.address),
        col("page", rows, |r| r.page),
        col("file_offset", rows, |r| r.file_offset),
        col("mapping", rows, |r| &*r.mapping),
        col("mapping_start", rows, |r| r.mapping_start),
        col("mapping_end", rows, |r| r.mapping_end),
        col("anon", rows, |r| r.anon),
        col("image", rows, |r| r.image.as_deref()),
        col("section", rows, |r| r.section.as_deref()),
        col("symbol", rows, |r| r.symbol.as_deref()),
        col("writer", rows, |r| &*r.writer),
        col("writer_function", rows, |r| &*r.writer_function),
        col("writer_ip", rows, |r| r.writer_ip),
        col("latency_ns", rows, |r| r.latency_ns),
        col("stack", rows, |r| r.stack.as_deref()),
    ])
}

/// Per-kind count columns of `rows`.
fn kind_columns<'a, T>(
    rows: &'a [T],
    counts: impl Fn(&'a T) -> cowprof_model::state::KindCounts + Copy,
) -> Vec<polars::prelude::Column> {
    cowprof_common::Kind::ALL
        .iter()
        .map(|kind| col(kind.name(), rows, |r| counts(r).get(*kind)))
        .collect()
}

/// `exits.parquet`: the processes the recording retired, each after the
/// `seq` first events.
///
/// # Errors
/// When polars cannot build the frame (a bug).
pub fn exits(rows: &[crate::collector::Exit]) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        col("pid", rows, |r| r.pid),
        col("seq", rows, |r| r.seq),
        col("ts_ns", rows, |r| r.ts_ns),
    ])
}

/// `processes.parquet`.
///
/// # Errors
/// When polars cannot build the frame (a bug).
pub fn processes(rows: &[ProcessSummary]) -> PolarsResult<DataFrame> {
    let mut columns = vec![
        col("pid", rows, |r| r.pid),
        col("comm", rows, |r| r.comm.as_str()),
    ];
    columns.extend(kind_columns(rows, |r| r.counts));
    columns.push(col("latency_ns", rows, |r| r.latency_ns));
    DataFrame::new_infer_height(columns)
}

/// A view's rows, keyed by the column `key` (`mappings.parquet`,
/// `stacks.parquet`).
///
/// # Errors
/// When polars cannot build the frame (a bug).
pub fn view(key: &str, rows: &[Row]) -> PolarsResult<DataFrame> {
    let mut columns = vec![col(key, rows, |r| r.key.as_str())];
    columns.extend(kind_columns(rows, |r| r.counts));
    columns.push(col("processes", rows, |r| {
        u32::try_from(r.processes).unwrap_or(u32::MAX)
    }));
    columns.push(col("first_writer", rows, |r| r.first_writer.as_str()));
    DataFrame::new_infer_height(columns)
}

/// `pages.parquet`: every writable page of every image written to.
///
/// # Errors
/// When polars cannot build the frame (a bug).
pub fn pages(rows: &[PageRow]) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        col("image", rows, |r| r.image.as_str()),
        col("page", rows, |r| r.page),
        col("section", rows, |r| r.section.as_str()),
        col("written", rows, |r| r.written),
        col("processes", rows, |r| r.processes),
        col("faults", rows, |r| r.faults),
        col("symbol", rows, |r| r.symbol.as_str()),
        col("first_writer", rows, |r| r.first_writer.as_str()),
    ])
}

/// A Parquet writer for frames of `df`'s schema into `out`.
///
/// # Errors
/// When polars refuses the schema (a bug).
pub fn writer<W: Write>(out: W, df: &DataFrame) -> PolarsResult<BatchedWriter<W>> {
    let arrow = df.schema().to_arrow(CompatLevel::oldest());
    let schema_kv = schema_to_metadata_key(&arrow);
    let metadata = KeyValueMetadata::from_static(vec![
        (schema_kv.key, schema_kv.value.unwrap_or_default()),
        (SCHEMA_KEY.to_owned(), SCHEMA_VERSION.to_string()),
    ]);
    ParquetWriter::new(out)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .with_key_value_metadata(Some(metadata))
        .set_parallel(false)
        .batched(df.schema())
}

/// Writes `df` as one Parquet file to `out`; nothing for an empty frame
/// (some readers reject zero-row files).
///
/// # Errors
/// When writing fails.
pub fn write_whole<W: Write>(out: W, df: &DataFrame) -> PolarsResult<()> {
    let mut writer = writer(out, df)?;
    writer.write_batch(df)?;
    writer.finish().map(drop)
}
