//! The tables `top` shows, built from a report: columns, rows keyed by a
//! stable text, sorting and filtering. Pure data: no terminal here.
use std::cmp::Ordering;

use cowprof_common::Kind;

use crate::{
    report::{Report, Row},
    resolve::PAGE,
    state::{KindCounts, View},
};

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

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Num(u64),
    /// A number shown without separators (a pid).
    Id(u64),
    /// Microseconds, from ns.
    Micros(u64),
}

impl Cell {
    fn cmp(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (
                Cell::Num(a) | Cell::Micros(a) | Cell::Id(a),
                Cell::Num(b) | Cell::Micros(b) | Cell::Id(b),
            ) => a.cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Text(_), _) => Ordering::Greater,
            (_, Cell::Text(_)) => Ordering::Less,
        }
    }

    /// The cell as shown.
    #[must_use]
    pub fn show(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Num(n) => thousands(*n),
            Cell::Id(n) => n.to_string(),
            #[expect(clippy::cast_precision_loss, reason = "a latency shown to 0.1 µs")]
            Cell::Micros(ns) => format!("{:.1}", *ns as f64 / 1000.0),
        }
    }
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

/// A row: its key (what the selection follows) and its cells.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    pub key: String,
    pub cells: Vec<Cell>,
}

/// A table ready to show.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: &'static [Column],
    pub rows: Vec<TableRow>,
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

    /// Builds the table from `report`, unsorted and unfiltered.
    #[must_use]
    pub fn build(self, report: &Report) -> Table {
        let rows = match self {
            TableKind::Processes => report
                .processes
                .iter()
                .map(|p| TableRow {
                    key: p.pid.to_string(),
                    cells: vec![
                        Cell::Id(u64::from(p.pid)),
                        Cell::Text(p.comm.clone()),
                        Cell::Num(p.counts.cow_total()),
                        Cell::Num(p.counts.copies()),
                        Cell::Num(p.counts.get(Kind::CowReuse)),
                        Cell::Num(p.counts.copies() * PAGE / (1 << 20)),
                        Cell::Micros(p.latency_ns.checked_div(p.counts.all()).unwrap_or(0)),
                    ],
                })
                .collect(),
            TableKind::Mappings => view_rows(report, View::Mapping, true),
            TableKind::Writers => view_rows(report, View::Writer, false),
            TableKind::ProcessMappings(pid) => report
                .process_mappings
                .iter()
                .filter(|m| m.pid == pid)
                .map(|m| TableRow {
                    key: m.mapping.clone(),
                    cells: vec![
                        Cell::Text(m.mapping.clone()),
                        Cell::Num(m.counts.cow_total()),
                        Cell::Num(m.counts.copies()),
                        Cell::Num(m.counts.get(Kind::CowReuse)),
                        Cell::Text(m.first_writer.clone()),
                    ],
                })
                .collect(),
            TableKind::Images => images(report),
            TableKind::Latency => report
                .latency
                .iter()
                .map(|(kind, l)| TableRow {
                    key: (*kind).to_owned(),
                    cells: vec![
                        Cell::Text((*kind).to_owned()),
                        Cell::Num(l.count),
                        Cell::Micros(l.p50_ns),
                        Cell::Micros(l.p90_ns),
                        Cell::Micros(l.p99_ns),
                        Cell::Micros(l.p999_ns),
                        Cell::Micros(l.max_ns),
                    ],
                })
                .collect(),
        };
        Table {
            columns: self.columns(),
            rows,
        }
    }
}

fn counts_cells(counts: &KindCounts) -> [Cell; 3] {
    [
        Cell::Num(counts.cow_total()),
        Cell::Num(counts.copies()),
        Cell::Num(counts.get(Kind::CowReuse)),
    ]
}

fn view_rows(report: &Report, view: View, with_writer: bool) -> Vec<TableRow> {
    report
        .views
        .get(&view)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r: &Row| {
            let mut cells = vec![Cell::Text(r.key.clone())];
            cells.extend(counts_cells(&r.counts));
            cells.push(Cell::Num(r.processes as u64));
            if with_writer {
                cells.push(Cell::Text(r.first_writer.clone()));
            }
            TableRow {
                key: r.key.clone(),
                cells,
            }
        })
        .collect()
}

/// Images: faults from the image view, pages from the touch map.
fn images(report: &Report) -> Vec<TableRow> {
    let rows = report
        .views
        .get(&View::Image)
        .map(Vec::as_slice)
        .unwrap_or_default();
    rows.iter()
        .map(|r| {
            let waste = report.waste.iter().find(|w| w.total.name == r.key);
            let pages = |f: fn(&crate::report::Waste) -> u64| waste.map_or(0, |w| f(&w.total));
            let mut cells = vec![Cell::Text(r.key.clone())];
            cells.extend(counts_cells(&r.counts).into_iter().take(2));
            cells.extend([
                Cell::Num(pages(|w| w.writable_pages)),
                Cell::Num(pages(|w| w.touched_pages)),
                Cell::Num(pages(|w| w.untouched_pages)),
                Cell::Num(pages(|w| w.untouched_bytes) / 1024),
            ]);
            TableRow {
                key: r.key.clone(),
                cells,
            }
        })
        .collect()
}

impl Table {
    /// Sorts by `sort` (numbers largest first, text A to Z, unless
    /// inverted), then by key so that equal rows keep their places.
    pub fn sort(&mut self, sort: Sort) {
        let column = sort.column.min(self.columns.len().saturating_sub(1));
        let numeric = self.columns.get(column).is_some_and(|c| c.numeric);
        self.rows.sort_by(|a, b| {
            let mut order = match (a.cells.get(column), b.cells.get(column)) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => Ordering::Equal,
            };
            if numeric {
                order = order.reverse();
            }
            if sort.inverted {
                order = order.reverse();
            }
            order.then_with(|| a.key.cmp(&b.key))
        });
    }

    /// Keeps the rows with a text cell containing `filter` (any case).
    pub fn filter(&mut self, filter: &str) {
        if filter.is_empty() {
            return;
        }
        let needle = filter.to_lowercase();
        self.rows.retain(|r| {
            r.key.to_lowercase().contains(&needle)
                || r.cells.iter().any(|c| match c {
                    Cell::Text(t) => t.to_lowercase().contains(&needle),
                    _ => false,
                })
        });
    }

    /// Where the row keyed `key` is.
    #[must_use]
    pub fn position(&self, key: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, u64)]) -> Table {
        Table {
            columns: WRITERS,
            rows: rows
                .iter()
                .map(|(k, n)| TableRow {
                    key: (*k).to_owned(),
                    cells: vec![
                        Cell::Text((*k).to_owned()),
                        Cell::Num(*n),
                        Cell::Num(0),
                        Cell::Num(0),
                        Cell::Num(1),
                    ],
                })
                .collect(),
        }
    }

    #[test]
    fn numbers_sort_largest_first_and_text_a_to_z() {
        let mut t = table(&[("b", 1), ("a", 5), ("c", 5)]);
        t.sort(Sort {
            column: 1,
            inverted: false,
        });
        let keys: Vec<&str> = t.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "c", "b"], "ties by key");
        t.sort(Sort {
            column: 1,
            inverted: true,
        });
        let keys: Vec<&str> = t.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        t.sort(Sort {
            column: 0,
            inverted: false,
        });
        let keys: Vec<&str> = t.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn the_filter_matches_text_in_any_case() {
        let mut t = table(&[("libc.so.6 .data", 1), ("main", 2)]);
        t.filter("LIBC");
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.position("libc.so.6 .data"), Some(0));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
