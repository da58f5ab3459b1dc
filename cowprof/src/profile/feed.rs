//! The model fed from a profile: each events part scanned by polars,
//! filtered, and grouped by every key the state keeps, each group going
//! into the same [`State::add`] the live collector feeds one fault at a
//! time, and the processes found exited retired at the positions the
//! recording retired them (`exits.parquet`), so the views, their folded
//! `(exited)` rows included, are the recording's.
//!
//! A [`Cursor`] is a position in the events, in the order they were
//! recorded: feeding moves it forward, applying only the events between,
//! so a replay costs the events of each step, not every event so far.
//!
//! Exits split a part where they must: an exited process whose pid a new
//! process took in the same part is retired between the two, exactly
//! where the recording did; other exits are applied after their part's
//! groups (their processes wrote nothing after them there).
use std::path::PathBuf;

use cowprof_common::Kind;
use cowprof_model::{
    keys::{Faults, Loc, MapKey, MappingKey, StackKey, TextId},
    state::{KindCounts, State},
};
use hashbrown::HashMap;
use polars::prelude::{
    col, len, lit, when, BooleanChunked, Expr, PolarsResult, StringChunked, UInt64Chunked,
};

use super::{
    dictionary::{comm, Dictionary},
    read::Profile,
    scan::{collect, conditions, kind_sums, table, Columns, Filters},
    ProfileError,
};
use crate::collector::Exit;

/// Events grouped at once, at most: a part's groups by every key can be
/// nearly as many as its events, and polars' frames of them are most of
/// what reading a profile holds in memory.
const WINDOW: u64 = 1 << 18;

/// One events part.
#[derive(Clone, Debug)]
struct Part {
    path: PathBuf,
    /// Events before it, and in it.
    offset: u64,
    rows: u64,
}

/// A profile, ready to be fed to states that keep `keep`.
pub struct Feed {
    dir: PathBuf,
    parts: Vec<Part>,
    /// The processes the recording found exited, in its order.
    exits: Vec<Exit>,
    conditions: Vec<Expr>,
    /// The columns grouped by, and those taken from each group's earliest
    /// event.
    keys: Vec<&'static str>,
    earliest: Vec<&'static str>,
    /// Events grouped at once: [`WINDOW`] when pages are keys (groups as
    /// many as the events), else a whole part.
    window: u64,
    events: u64,
}

/// A position in a profile's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Events fed (in the order recorded).
    pub at: u64,
    /// Exits applied.
    exits: usize,
}

/// Which columns a state keeping `keep` groups by, and which it takes
/// from each group's earliest event.
fn keys(keep: cowprof_model::state::Keep) -> (Vec<&'static str>, Vec<&'static str>) {
    use cowprof_model::state::View;
    let mut keys = vec!["pid", "comm", "main"];
    let mut add = |names: &[&'static str]| {
        for name in names {
            if !keys.contains(name) {
                keys.push(name);
            }
        }
    };
    if keep.view(View::Mapping) || keep.process_mappings {
        add(&["mapping", "anon", "mstart", "mend"]);
    }
    if keep.view(View::Page) {
        add(&["image", "section", "page", "mapping", "anon"]);
    }
    if keep.view(View::Image) {
        add(&["image"]);
    }
    if keep.view(View::Section) {
        add(&["image", "section"]);
    }
    if keep.view(View::Symbol) {
        add(&["image", "section", "symbol"]);
    }
    if keep.touch_map && !keep.view(View::Page) && !keep.writes {
        // Only image pages are in the touch map: other faults need no page.
        add(&["image", "ipage"]);
    }
    if keep.view(View::Writer) {
        add(&["writer_function"]);
    }
    if keep.view(View::Stack) {
        add(&["stack"]);
    }
    if keep.crosses {
        add(&["image", "section", "symbol", "writer_function", "stack"]);
    }
    if keep.writes {
        add(&[
            "image", "section", "symbol", "page", "offset", "kind", "writer",
        ]);
    }
    let mut earliest = Vec::new();
    // The first writer is a row's: the process view alone needs none.
    let rows = keys.len() > 3 || keep.touch_map || keep.process_mappings;
    if rows && !keys.contains(&"writer") {
        earliest.push("writer");
    }
    if keep.touch_map && !keys.contains(&"symbol") {
        earliest.push("symbol");
    }
    (keys, earliest)
}

/// The columns a group query derives from the events'.
fn derived() -> [Expr; 5] {
    let anon = |name: &str| when(col("anon")).then(col(name)).otherwise(lit(0u64));
    [
        col("tid").eq(col("pid")).alias("main"),
        anon("mapping_start").alias("mstart"),
        anon("mapping_end").alias("mend"),
        (col("address") % lit(4096u64)).alias("offset"),
        when(col("image").is_not_null())
            .then(col("page"))
            .otherwise(lit(0u64))
            .alias("ipage"),
    ]
}

/// Row `i` of a number column (0 when null or missing).
fn get(column: Option<&UInt64Chunked>, i: usize) -> u64 {
    column.and_then(|c| c.get(i)).unwrap_or(0)
}

/// Row `i` of a text column.
fn text(column: Option<&StringChunked>, i: usize) -> Option<&str> {
    column.and_then(|c| c.get(i))
}

/// Row `i` of a bool column (false when null or missing).
fn flag(column: Option<&BooleanChunked>, i: usize) -> bool {
    column.and_then(|c| c.get(i)).unwrap_or(false)
}

impl Feed {
    /// Opens `profile` for states keeping `keep`, with the events that
    /// pass `filters`; the pages of its images go into `dict`.
    ///
    /// # Errors
    /// When its exits or pages cannot be read.
    pub fn open(
        profile: &Profile,
        filters: &Filters,
        keep: cowprof_model::state::Keep,
        dict: &mut Dictionary,
    ) -> Result<Self, ProfileError> {
        let mut offset = 0;
        let parts = profile
            .parts
            .iter()
            .zip(&profile.part_rows)
            .map(|(path, rows)| {
                let part = Part {
                    path: path.clone(),
                    offset,
                    rows: *rows,
                };
                offset += rows;
                part
            })
            .collect();
        let exits = match table(profile, "exits.parquet", &["pid", "seq", "ts_ns"])? {
            Some(df) => {
                let c = Columns { df: &df };
                let (pid, seq, ts) = (c.number("pid"), c.number("seq"), c.number("ts_ns"));
                let at = |c: &Option<UInt64Chunked>, i| c.as_ref().and_then(|c| c.get(i));
                let mut exits: Vec<Exit> = (0..df.height())
                    .filter_map(|i| {
                        Some(Exit {
                            pid: u32::try_from(at(&pid, i)?).ok()?,
                            seq: at(&seq, i)?,
                            ts_ns: at(&ts, i).unwrap_or(0),
                        })
                    })
                    .collect();
                exits.sort_by_key(|e| e.seq);
                exits
            }
            None => Vec::new(),
        };
        if keep.touch_map {
            if let Some(df) = table(profile, "pages.parquet", &["image", "page", "section"])? {
                let c = Columns { df: &df };
                let (image, page, section) = (c.text("image"), c.number("page"), c.text("section"));
                for i in 0..df.height() {
                    let (Some(name), Some(at)) = (
                        image.and_then(|c| c.get(i)),
                        page.as_ref().and_then(|c| c.get(i)),
                    ) else {
                        continue;
                    };
                    let key = dict.file(name);
                    let section = dict.section_id(section.and_then(|c| c.get(i)));
                    dict.add_page(key, at, section);
                }
            }
        }
        let (keys, earliest) = keys(keep);
        let window = if keys.iter().any(|k| k.ends_with("page")) {
            WINDOW
        } else {
            u64::MAX
        };
        Ok(Self {
            dir: profile.dir.clone(),
            parts,
            exits,
            conditions: conditions(profile, filters),
            keys,
            earliest,
            window,
            events: offset,
        })
    }

    /// The same feed, retiring no process: every process keeps its own
    /// entry and name.
    #[must_use]
    pub fn without_exits(mut self) -> Self {
        self.exits.clear();
        self
    }

    /// Events in the profile (before any filter).
    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    fn error(&self, err: &polars::prelude::PolarsError) -> ProfileError {
        ProfileError::Corrupt {
            path: self.dir.clone(),
            problem: err.to_string(),
        }
    }

    /// Feeds `state` the events from `cursor` up to position `to` (and
    /// the exits up to there), moving `cursor`.
    ///
    /// # Errors
    /// When a part cannot be scanned.
    pub fn feed(
        &self,
        state: &mut State,
        dict: &mut Dictionary,
        cursor: &mut Cursor,
        to: u64,
    ) -> Result<(), ProfileError> {
        let to = to.min(self.events);
        loop {
            self.retire(state, cursor, cursor.at);
            let Some(part) = self
                .parts
                .iter()
                .find(|p| p.offset + p.rows > cursor.at)
                .filter(|_| cursor.at < to)
            else {
                break;
            };
            let end = to.min(part.offset + part.rows);
            let last = self
                .last_rows(part, cursor, end)
                .map_err(|e| self.error(&e))?;
            while cursor.at < end {
                // The next exit whose pid writes again in this part ends
                // the window: the new process must not join the old.
                let stop = self.exits[cursor.exits..]
                    .iter()
                    .take_while(|e| e.seq <= end)
                    .find(|e| e.seq > cursor.at && last.get(&e.pid).is_some_and(|r| *r >= e.seq))
                    .map_or(end, |e| e.seq)
                    .min(cursor.at.saturating_add(self.window));
                let range = (cursor.at - part.offset, stop - part.offset);
                // Latencies only where some fault's was measured.
                self.groups(part, range, state, dict)
                    .and_then(|measured| {
                        if measured {
                            self.latencies(part, range, state)
                        } else {
                            Ok(())
                        }
                    })
                    .map_err(|e| self.error(&e))?;
                cursor.at = stop;
                self.retire(state, cursor, cursor.at);
            }
        }
        Ok(())
    }

    /// Applies the exits at or before `at`.
    fn retire(&self, state: &mut State, cursor: &mut Cursor, at: u64) {
        while let Some(exit) = self.exits.get(cursor.exits).filter(|e| e.seq <= at) {
            state.exited(exit.pid);
            cursor.exits += 1;
        }
    }

    /// The last position of each pid's events in `part` from `cursor` to
    /// `end`, when an exit falls there (else none is needed).
    fn last_rows(&self, part: &Part, cursor: &Cursor, end: u64) -> PolarsResult<HashMap<u32, u64>> {
        let mut last = HashMap::new();
        if !self.exits[cursor.exits..].iter().any(|e| e.seq <= end) {
            return Ok(last);
        }
        let range = (cursor.at - part.offset, end - part.offset);
        let df = collect(&part.path, Some(range), &[], |lf| {
            lf.with_row_index("row", None)
                .group_by([col("pid")])
                .agg([col("row").max()])
        })?;
        let c = Columns { df: &df };
        let (pids, rows) = (c.number("pid"), c.number("row"));
        for i in 0..df.height() {
            let pid = pids.as_ref().and_then(|c| c.get(i));
            let row = rows.as_ref().and_then(|c| c.get(i));
            if let (Some(pid), Some(row)) = (pid, row) {
                let pid = u32::try_from(pid).unwrap_or(u32::MAX);
                last.insert(pid, part.offset + range.0 + row);
            }
        }
        Ok(last)
    }

    /// Feeds the groups of rows `range` of `part`. Returns whether a fault
    /// there had its latency measured.
    fn groups(
        &self,
        part: &Part,
        range: (u64, u64),
        state: &mut State,
        dict: &mut Dictionary,
    ) -> PolarsResult<bool> {
        let (keys, earliest) = (&self.keys, &self.earliest);
        let mut aggs = kind_sums();
        aggs.push(col("ts_ns").min().alias("first_ns"));
        aggs.push(col("ts_ns").max().alias("last_ns"));
        aggs.push(col("latency_ns").sum().alias("latency_ns"));
        aggs.extend(
            earliest
                .iter()
                .map(|name| col(*name).min_by(col("ts_ns")).alias(*name)),
        );
        let df = collect(&part.path, Some(range), &self.conditions, |lf| {
            lf.with_columns(derived())
                .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
                .agg(aggs)
        })?;
        let c = Columns { df: &df };
        let counts: Vec<Option<UInt64Chunked>> =
            Kind::ALL.iter().map(|k| c.number(k.name())).collect();
        let number = |name| c.number(name);
        let (pid, first, last, latency) = (
            number("pid"),
            number("first_ns"),
            number("last_ns"),
            number("latency_ns"),
        );
        let (start, end) = (number("mstart"), number("mend"));
        let page = number("page").or_else(|| number("ipage"));
        let offset = number("offset");
        let (comms, mapping, image, section, symbol) = (
            c.text("comm"),
            c.text("mapping"),
            c.text("image"),
            c.text("section"),
            c.text("symbol"),
        );
        let (function, writer, stack) =
            (c.text("writer_function"), c.text("writer"), c.text("stack"));
        let (main, anon) = (c.flag("main"), c.flag("anon"));
        let mut measured = false;
        for i in 0..df.height() {
            let pid = u32::try_from(get(pid.as_ref(), i)).unwrap_or(u32::MAX);
            let mut values = [0; 6];
            for (slot, column) in values.iter_mut().zip(&counts) {
                *slot = get(column.as_ref(), i);
            }
            let is_anon = flag(anon, i);
            let map = text(mapping, i).map_or(MapKey::Anon, |m| dict.map(m, is_anon));
            let image = text(image, i).map(|name| dict.file(name));
            let faults = Faults {
                pid,
                main_thread: flag(main, i),
                comm: comm(text(comms, i).unwrap_or("")),
                counts: KindCounts::from_array(values),
                first_ns: get(first.as_ref(), i),
                last_ns: get(last.as_ref(), i),
                latency_ns: get(latency.as_ref(), i),
                mapping: MappingKey {
                    map,
                    start: get(start.as_ref(), i),
                    end: get(end.as_ref(), i),
                    pid: if is_anon { pid } else { 0 },
                },
                loc: Loc {
                    image,
                    section: image.and_then(|_| dict.section_id(text(section, i))),
                    symbol: image.and_then(|_| dict.symbol_id(text(symbol, i))),
                    page: get(page.as_ref(), i),
                },
                offset: u16::try_from(get(offset.as_ref(), i)).unwrap_or(0),
                writer: text(function, i).map_or(TextId::default(), |t| dict.text_id(t)),
                instruction: text(writer, i).map_or(TextId::default(), |t| dict.text_id(t)),
                stack: if keys.contains(&"stack") {
                    dict.stack_key(text(stack, i))
                } else {
                    StackKey::NotRecorded
                },
            };
            measured |= faults.latency_ns > 0;
            state.add(&faults);
        }
        Ok(measured)
    }

    /// Feeds the latency histograms of rows `range` of `part`: each
    /// distinct latency once, with its count.
    fn latencies(&self, part: &Part, range: (u64, u64), state: &mut State) -> PolarsResult<()> {
        let df = collect(&part.path, Some(range), &self.conditions, |lf| {
            lf.filter(col("latency_ns").gt(lit(0u64)))
                .group_by([col("kind"), col("latency_ns")])
                .agg([len().alias("n")])
        })?;
        let c = Columns { df: &df };
        let (kinds, ns, n) = (c.text("kind"), c.number("latency_ns"), c.number("n"));
        for i in 0..df.height() {
            let kind = kinds.and_then(|c| c.get(i)).and_then(Kind::from_name);
            let ns = ns.as_ref().and_then(|c| c.get(i));
            let n = n.as_ref().and_then(|c| c.get(i));
            if let (Some(kind), Some(ns), Some(n)) = (kind, ns, n) {
                state.record_latency(kind, ns, n);
            }
        }
        Ok(())
    }
}
