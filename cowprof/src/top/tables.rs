//! The tables `top` shows, built from a report: columns, rows keyed by a
//! stable text, sorting and filtering. Pure data: no terminal here.
use std::{cmp::Ordering, sync::Arc};

use cowprof_common::Kind;

use crate::{
    report::{Report, Row, Waste},
    resolve::PAGE,
};
use cowprof_model::state::{KindCounts, View};

/// A table of the live view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    Processes,
    Mappings,
    /// The mappings of one process.
    ProcessMappings(u32),
    Images,
    Writers,
    Latency,
}

/// A column: its header, its width (0: takes the room left), and whether
/// it holds numbers (right-aligned, sorted largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub width: u16,
    pub numeric: bool,
}

const fn text(name: &'static str, width: u16) -> Column {
    Column {
        name,
        width,
        numeric: false,
    }
}

const fn num(name: &'static str, width: u16) -> Column {
    Column {
        name,
        width,
        numeric: true,
    }
}

/// One cell, as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Num(u64),
    /// A number shown without separators (a pid).
    Id(u64),
    /// Microseconds, from ns; `-` for 0 (not measured).
    Micros(u64),
}

impl Cell {
    /// The cell as shown.
    #[must_use]
    pub fn show(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Num(n) => thousands(*n),
            Cell::Id(n) => n.to_string(),
            // No latency measured (`--latency` not given), as the summary
            // shows it.
            Cell::Micros(0) => "-".to_owned(),
            #[expect(clippy::cast_precision_loss, reason = "a latency shown to 0.1 µs")]
            Cell::Micros(ns) => format!("{:.1}", *ns as f64 / 1000.0),
        }
    }
}

/// A cell's value, borrowed from the report: sorting and filtering
/// allocate nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Text(&'a str),
    Num(u64),
    Id(u64),
    Micros(u64),
}

impl Value<'_> {
    fn cmp(&self, other: &Value<'_>) -> Ordering {
        match (self, other) {
            (
                Value::Num(a) | Value::Micros(a) | Value::Id(a),
                Value::Num(b) | Value::Micros(b) | Value::Id(b),
            ) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.cmp(b),
            (Value::Text(_), _) => Ordering::Greater,
            (_, Value::Text(_)) => Ordering::Less,
        }
    }

    fn cell(self) -> Cell {
        match self {
            Value::Text(t) => Cell::Text(t.to_owned()),
            Value::Num(n) => Cell::Num(n),
            Value::Id(n) => Cell::Id(n),
            Value::Micros(n) => Cell::Micros(n),
        }
    }
}

/// Whether `hay` contains `needle` (already lowercase), ignoring ASCII case.
fn contains_lowercase(hay: &str, needle: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || hay.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

/// `n` with thousands separators.
#[must_use]
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table ready to show: the report's rows of one kind, in the order
/// shown, each read from the report when drawn.
#[derive(Clone, Debug)]
pub struct Table {
    pub kind: TableKind,
    pub columns: &'static [Column],
    report: Arc<Report>,
    /// Indices of the kind's rows in the report, in the order shown.
    order: Vec<u32>,
}

/// How a table is sorted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    /// The other way round from the column's natural order.
    pub inverted: bool,
}

const PROCESSES: &[Column] = &[
    num("PID", 8),
    text("COMMAND", 0),
    num("COW", 10),
    num("COPIES", 10),
    num("REUSES", 9),
    num("COPIED MiB", 10),
    num("AVG µs", 8),
];
const MAPPINGS: &[Column] = &[
    text("MAPPING", 0),
    num("COW", 10),
    num("COPIES", 10),
    num("REUSES", 9),
    num("PROCS", 6),
    text("FIRST WRITER", 24),
];
const PROCESS_MAPPINGS: &[Column] = &[
    text("MAPPING", 0),
    num("COW", 10),
    num("COPIES", 10),
    num("REUSES", 9),
    text("FIRST WRITER", 24),
];
const IMAGES: &[Column] = &[
    text("IMAGE", 0),
    num("COW", 9),
    num("COPIES", 9),
    num("WRITABLE", 8),
    num("WRITTEN", 8),
    num("NEVER", 7),
    num("NEVER KiB", 9),
];
const WRITERS: &[Column] = &[
    text("WRITER", 0),
    num("COW", 10),
    num("COPIES", 10),
    num("REUSES", 9),
    num("PROCS", 6),
];
const LATENCY: &[Column] = &[
    text("KIND", 0),
    num("FAULTS", 10),
    num("p50 µs", 8),
    num("p90 µs", 8),
    num("p99 µs", 8),
    num("p99.9 µs", 9),
    num("max µs", 9),
];

impl TableKind {
    /// The table's columns.
    #[must_use]
    pub fn columns(self) -> &'static [Column] {
        match self {
            TableKind::Processes => PROCESSES,
            TableKind::Mappings => MAPPINGS,
            TableKind::ProcessMappings(_) => PROCESS_MAPPINGS,
            TableKind::Images => IMAGES,
            TableKind::Writers => WRITERS,
            TableKind::Latency => LATENCY,
        }
    }

    /// The column sorted by at first: COW faults (latency: faults).
    #[must_use]
    pub fn default_sort(self) -> Sort {
        let column = self
            .columns()
            .iter()
            .position(|c| c.name == "COW" || c.name == "FAULTS")
            .unwrap_or(0);
        Sort {
            column,
            inverted: false,
        }
    }

    /// A stable index for per-table UI state.
    #[must_use]
    pub fn slot(self) -> usize {
        match self {
            TableKind::Processes => 0,
            TableKind::Mappings => 1,
            TableKind::ProcessMappings(_) => 2,
            TableKind::Images => 3,
            TableKind::Writers => 4,
            TableKind::Latency => 5,
        }
    }

    /// How many rows of this kind `report` has (before any filter).
    fn count(self, report: &Report) -> usize {
        match self {
            TableKind::Processes => report.processes.len(),
            TableKind::Mappings => view(report, View::Mapping).len(),
            TableKind::ProcessMappings(_) => report.process_mappings.len(),
            TableKind::Images => view(report, View::Image).len(),
            TableKind::Writers => view(report, View::Writer).len(),
            TableKind::Latency => report.latency.len(),
        }
    }

    /// Whether row `i` belongs (one process's mappings only).
    fn belongs(self, report: &Report, i: usize) -> bool {
        match self {
            TableKind::ProcessMappings(pid) => report.process_mappings[i].pid == pid,
            _ => true,
        }
    }

    /// The key of row `i`: what the selection follows.
    fn key(self, report: &Report, i: usize) -> Value<'_> {
        match self {
            TableKind::Processes => Value::Id(u64::from(report.processes[i].pid)),
            _ => self.value(report, i, 0),
        }
    }

    /// Column `col` of row `i`.
    fn value(self, report: &Report, i: usize, col: usize) -> Value<'_> {
        let counts = |c: &KindCounts, col: usize| match col {
            0 => Value::Num(c.cow_total()),
            1 => Value::Num(c.copies()),
            _ => Value::Num(c.get(Kind::CowReuse)),
        };
        match self {
            TableKind::Processes => {
                let p = &report.processes[i];
                match col {
                    0 => Value::Id(u64::from(p.pid)),
                    1 => Value::Text(&p.comm),
                    2..=4 => counts(&p.counts, col - 2),
                    5 => Value::Num(p.counts.copies() * PAGE / (1 << 20)),
                    _ => Value::Micros(p.latency_ns.checked_div(p.counts.all()).unwrap_or(0)),
                }
            }
            TableKind::Mappings | TableKind::Writers => {
                let view_of = if self == TableKind::Mappings {
                    View::Mapping
                } else {
                    View::Writer
                };
                let r = &view(report, view_of)[i];
                match col {
                    0 => Value::Text(&r.key),
                    1..=3 => counts(&r.counts, col - 1),
                    4 => Value::Num(r.processes as u64),
                    _ => Value::Text(&r.first_writer),
                }
            }
            TableKind::ProcessMappings(_) => {
                let m = &report.process_mappings[i];
                match col {
                    0 => Value::Text(&m.mapping),
                    1..=3 => counts(&m.counts, col - 1),
                    _ => Value::Text(&m.first_writer),
                }
            }
            TableKind::Images => {
                let r = &view(report, View::Image)[i];
                let pages = |f: fn(&Waste) -> u64| {
                    Value::Num(
                        report
                            .waste
                            .iter()
                            .find(|w| w.total.name == r.key)
                            .map_or(0, |w| f(&w.total)),
                    )
                };
                match col {
                    0 => Value::Text(&r.key),
                    1 | 2 => counts(&r.counts, col - 1),
                    3 => pages(|w| w.pages.writable_pages),
                    4 => pages(|w| w.pages.touched_pages),
                    5 => pages(|w| w.pages.untouched_pages),
                    _ => pages(|w| w.pages.untouched_bytes / 1024),
                }
            }
            TableKind::Latency => {
                let (kind, l) = report.latency.iter().nth(i).expect("a row of the table");
                match col {
                    0 => Value::Text(kind),
                    1 => Value::Num(l.count),
                    2 => Value::Micros(l.p50_ns),
                    3 => Value::Micros(l.p90_ns),
                    4 => Value::Micros(l.p99_ns),
                    5 => Value::Micros(l.p999_ns),
                    _ => Value::Micros(l.max_ns),
                }
            }
        }
    }

    /// The table of this kind in `report`, keeping the rows with text
    /// that contains `filter` (any case), sorted by `sort` (numbers
    /// largest first, text A to Z, unless inverted; then by key, so equal
    /// rows keep their places).
    #[must_use]
    pub fn table(self, report: &Arc<Report>, filter: &str, sort: Sort) -> Table {
        let columns = self.columns();
        let needle = filter.to_lowercase();
        let r: &Report = report;
        let order: Vec<u32> = (0..self.count(r))
            .filter(|i| self.belongs(r, *i))
            .filter(|i| {
                needle.is_empty()
                    || (0..columns.len()).any(|col| match self.value(r, *i, col) {
                        Value::Text(t) => contains_lowercase(t, &needle),
                        _ => false,
                    })
                    || matches!(self.key(r, *i), Value::Id(id) if id.to_string().contains(&needle))
            })
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        let column = sort.column.min(columns.len().saturating_sub(1));
        let numeric = columns.get(column).is_some_and(|c| c.numeric);
        // The sort values are read once per row, not once per comparison.
        let mut keyed: Vec<(Value<'_>, Value<'_>, u32)> = order
            .iter()
            .map(|i| {
                (
                    self.value(r, *i as usize, column),
                    self.key(r, *i as usize),
                    *i,
                )
            })
            .collect();
        keyed.sort_by(|(a, ka, _), (b, kb, _)| {
            let mut order = a.cmp(b);
            if numeric {
                order = order.reverse();
            }
            if sort.inverted {
                order = order.reverse();
            }
            order.then_with(|| ka.cmp(kb))
        });
        let order = keyed.into_iter().map(|(_, _, i)| i).collect();
        Table {
            kind: self,
            columns,
            report: Arc::clone(report),
            order,
        }
    }
}

fn view(report: &Report, view: View) -> &[Row] {
    report
        .views
        .get(&view)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

impl Table {
    /// Rows shown.
    #[must_use]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The key of the row shown at `i`.
    #[must_use]
    pub fn key(&self, i: usize) -> Option<String> {
        let row = *self.order.get(i)? as usize;
        Some(match self.kind.key(&self.report, row) {
            Value::Text(t) => t.to_owned(),
            other => other.cell().show().replace(',', ""),
        })
    }

    /// The cells of the row shown at `i`.
    #[must_use]
    pub fn cells(&self, i: usize) -> Vec<Cell> {
        let Some(row) = self.order.get(i) else {
            return Vec::new();
        };
        (0..self.columns.len())
            .map(|col| self.kind.value(&self.report, *row as usize, col).cell())
            .collect()
    }

    /// Where the row keyed `key` is shown.
    #[must_use]
    pub fn position(&self, key: &str) -> Option<usize> {
        let id: Option<u64> = key.parse().ok();
        self.order
            .iter()
            .position(|row| match self.kind.key(&self.report, *row as usize) {
                Value::Text(t) => t == key,
                Value::Id(n) | Value::Num(n) | Value::Micros(n) => Some(n) == id,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture;

    fn keys(table: &Table) -> Vec<String> {
        (0..table.len()).filter_map(|i| table.key(i)).collect()
    }

    #[test]
    fn numbers_sort_largest_first_and_text_a_to_z() {
        let report = Arc::new(fixture::report());
        let by = |column, inverted| {
            keys(&TableKind::Processes.table(&report, "", Sort { column, inverted }))
        };
        assert_eq!(by(2, false), ["4243", "4242", "4250"], "COW, most first");
        assert_eq!(by(2, true), ["4250", "4242", "4243"]);
        assert_eq!(
            by(0, false),
            ["4250", "4243", "4242"],
            "pids, largest first"
        );
        assert_eq!(by(1, false), ["4243", "4242", "4250"], "commands, A to Z");
        let writers = TableKind::Writers.table(&report, "", TableKind::Writers.default_sort());
        assert_eq!(writers.cells(0)[0], Cell::Text("bgsave_copy".into()));
        assert_eq!(writers.cells(0)[1], Cell::Num(4100));
    }

    #[test]
    fn the_filter_matches_text_and_pids_in_any_case() {
        let report = Arc::new(fixture::report());
        let sort = TableKind::Mappings.default_sort();
        let t = TableKind::Mappings.table(&report, "LIBC", sort);
        assert_eq!(t.len(), 1);
        assert_eq!(t.position("/usr/lib/x86_64-linux-gnu/libc.so.6"), Some(0));
        let t = TableKind::Processes.table(&report, "425", TableKind::Processes.default_sort());
        assert_eq!(keys(&t), ["4250"]);
        assert_eq!(t.position("4250"), Some(0));
        assert_eq!(t.position("4242"), None);
    }

    #[test]
    fn one_process_has_its_own_mappings() {
        let report = Arc::new(fixture::report());
        let kind = TableKind::ProcessMappings(4243);
        let t = kind.table(&report, "", kind.default_sort());
        assert_eq!(keys(&t), ["[heap]", fixture::SERVER]);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
