//! The state of the `top` screen: the views and where one is in them, the
//! selection (kept by row key), sorting, the filter, pausing, and the rate
//! history. The UI loop is its only owner. It knows nothing of the
//! terminal: it takes actions and reports, and the renderer reads it.
use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use cowprof_common::Kind;

use super::{
    keymap::{Action, Key, Mode},
    pagemap::PageMap,
    tables::{Sort, Table, TableKind},
};
use crate::report::Report;

/// The views on the tabs, in number-key order.
pub const VIEWS: [&str; 6] = [
    "Processes",
    "Mappings",
    "Images",
    "Page map",
    "Writers",
    "Latency",
];

/// Seconds of rate history kept (one sample per report).
pub const HISTORY: usize = 60;

/// Where one is: a table, or the page map of an image.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Table(TableKind),
    PageMap(Option<String>),
}

impl Level {
    /// The tab this level belongs to.
    #[must_use]
    pub fn tab(&self) -> usize {
        match self {
            Level::Table(TableKind::Processes) => 0,
            Level::Table(TableKind::Mappings | TableKind::ProcessMappings(_)) => 1,
            Level::Table(TableKind::Images) => 2,
            Level::PageMap(_) => 3,
            Level::Table(TableKind::Writers) => 4,
            Level::Table(TableKind::Latency) => 5,
        }
    }
}

/// What is known of the recording besides its reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub strategy: String,
    pub target: String,
    /// Replay: the profile's length in seconds.
    pub replay_length_s: Option<f64>,
    /// Replay speed (1.0: real time).
    pub speed: f64,
    /// Why collection ended, once it has (e.g. the command exited).
    pub ended: Option<String>,
}

/// Rates between two reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub copies_per_s: f64,
    pub reuses_per_s: f64,
    pub cow_per_s: f64,
}

/// What the UI loop should do for the app.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Export,
    Reset,
    /// Replay: pause or resume the clock.
    Pause(bool),
    /// Replay: move by this many seconds.
    Seek(f64),
    /// Replay: play at this speed.
    Speed(f64),
}

/// What a cached table was built from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TableKey {
    /// The report's address: a new report is a new `Arc`.
    report: usize,
    kind: TableKind,
    sort: Sort,
    filter: String,
}

/// The key of the row at an index.
type KeyAt = Box<dyn Fn(usize) -> Option<String>>;

/// The selection of one level: the row's key, and its index as a fallback
/// when the row goes away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Selected {
    key: String,
    index: usize,
}

/// The screen's state.
#[derive(Debug)]
pub struct App {
    pub mode: Mode,
    pub meta: Meta,
    stack: Vec<Level>,
    sorts: [Sort; 6],
    selected: HashMap<Level, Selected>,
    pub filter: String,
    pub editing: bool,
    paused_at: Option<Instant>,
    /// What the screen shows (frozen while paused).
    shown: Arc<Report>,
    shown_elapsed: Duration,
    shown_history: VecDeque<Sample>,
    latest: Arc<Report>,
    latest_elapsed: Duration,
    history: VecDeque<Sample>,
    pub help: bool,
    pub status: Option<String>,
    /// Rows the table area shows, as last drawn (for PageUp/PageDown).
    pub viewport_rows: usize,
    /// Page-map cells a line, as last drawn.
    pub page_cols: usize,
    pub quit: bool,
    requests: Vec<Request>,
    /// Reports replaced, to be freed elsewhere.
    retired: Vec<Arc<Report>>,
    /// The last table built (the UI loop is the only owner: no sharing).
    table_cache: RefCell<Option<(TableKey, Rc<Table>)>>,
}

impl App {
    /// A live screen's state, before any report: probe strategy
    /// `tracepoint`, target `target` (for the tests and the render
    /// benchmark).
    #[cfg(any(test, feature = "fixtures"))]
    #[must_use]
    pub fn fixture(target: &str) -> App {
        App::new(
            Mode::Live,
            Meta {
                strategy: "tracepoint".into(),
                target: target.into(),
                speed: 1.0,
                ..Meta::default()
            },
        )
    }

    #[must_use]
    pub fn new(mode: Mode, meta: Meta) -> Self {
        let kinds = [
            TableKind::Processes,
            TableKind::Mappings,
            TableKind::ProcessMappings(0),
            TableKind::Images,
            TableKind::Writers,
            TableKind::Latency,
        ];
        Self {
            mode,
            meta,
            stack: vec![Level::Table(TableKind::Processes)],
            sorts: kinds.map(TableKind::default_sort),
            selected: HashMap::new(),
            filter: String::new(),
            editing: false,
            paused_at: None,
            shown: Arc::default(),
            shown_elapsed: Duration::ZERO,
            shown_history: VecDeque::new(),
            latest: Arc::default(),
            latest_elapsed: Duration::ZERO,
            history: VecDeque::new(),
            help: false,
            status: None,
            viewport_rows: 10,
            page_cols: 64,
            quit: false,
            requests: Vec::new(),
            table_cache: RefCell::new(None),
            retired: Vec::new(),
        }
    }

    /// The report shown.
    #[must_use]
    pub fn report(&self) -> &Report {
        &self.shown
    }

    /// The newest report, even while paused.
    #[must_use]
    pub fn latest(&self) -> Arc<Report> {
        Arc::clone(&self.latest)
    }

    /// Time since the start of the recording, as shown.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.shown_elapsed
    }

    /// The rate history shown, oldest first.
    #[must_use]
    pub fn shown_history(&self) -> &VecDeque<Sample> {
        &self.shown_history
    }

    /// How long the view has been paused, if it is.
    #[must_use]
    pub fn paused_for(&self, now: Instant) -> Option<Duration> {
        self.paused_at.map(|at| now.saturating_duration_since(at))
    }

    /// Where one is, top level first.
    #[must_use]
    pub fn stack(&self) -> &[Level] {
        &self.stack
    }

    /// The level shown.
    ///
    /// # Panics
    /// Never: the stack always keeps its top level.
    #[must_use]
    pub fn level(&self) -> &Level {
        self.stack.last().expect("the stack is never empty")
    }

    /// The sort of `kind`.
    #[must_use]
    pub fn sort(&self, kind: TableKind) -> Sort {
        self.sorts[kind.slot()]
    }

    /// Takes the requests made since the last call.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.requests)
    }

    /// A new report, `elapsed` into the recording. Paused, the screen keeps
    /// the old one; resuming catches up.
    pub fn update(&mut self, report: Arc<Report>, elapsed: Duration) {
        let dt = elapsed.saturating_sub(self.latest_elapsed).as_secs_f64();
        if dt > 0.0 && elapsed > self.latest_elapsed {
            let before = &self.latest.totals;
            let now = &report.totals;
            let rate = |a: u64, b: u64| {
                #[expect(clippy::cast_precision_loss, reason = "a rate to show")]
                let r = a.saturating_sub(b) as f64 / dt;
                r
            };
            self.history.push_back(Sample {
                copies_per_s: rate(now.copies(), before.copies()),
                reuses_per_s: rate(now.get(Kind::CowReuse), before.get(Kind::CowReuse)),
                cow_per_s: rate(now.cow_total(), before.cow_total()),
            });
            while self.history.len() > HISTORY {
                self.history.pop_front();
            }
        } else if elapsed < self.latest_elapsed {
            // A replay sought back: the rates start over.
            self.history.clear();
        }
        let old = std::mem::replace(&mut self.latest, report);
        self.retired.push(old);
        self.latest_elapsed = elapsed;
        if self.paused_at.is_none() {
            self.catch_up();
        }
    }

    fn catch_up(&mut self) {
        let old = std::mem::replace(&mut self.shown, Arc::clone(&self.latest));
        self.retired.push(old);
        self.shown_elapsed = self.latest_elapsed;
        self.shown_history.clone_from(&self.history);
    }

    /// Takes the reports no longer shown: freeing a large report takes
    /// milliseconds, which the UI loop leaves to another thread.
    pub fn take_retired(&mut self) -> Vec<Arc<Report>> {
        std::mem::take(&mut self.retired)
    }

    /// The latest rates shown.
    #[must_use]
    pub fn rate(&self) -> Sample {
        self.shown_history.back().copied().unwrap_or_default()
    }

    /// The table `kind`, filtered and sorted as the screen shows it. Built
    /// once per report, sort and filter: frames and keys in between reuse
    /// it.
    #[must_use]
    pub fn table(&self, kind: TableKind) -> Rc<Table> {
        let key = TableKey {
            report: Arc::as_ptr(&self.shown) as usize,
            kind,
            sort: self.sort(kind),
            filter: self.filter.clone(),
        };
        if let Some((cached, table)) = &*self.table_cache.borrow() {
            if *cached == key {
                return Rc::clone(table);
            }
        }
        let table = Rc::new(kind.table(&self.shown, &self.filter, key.sort));
        *self.table_cache.borrow_mut() = Some((key, Rc::clone(&table)));
        table
    }

    /// The page map of `image` as shown.
    #[must_use]
    pub fn page_map(&self, image: &str) -> PageMap<'_> {
        PageMap::build(&self.shown, image)
    }

    /// The image a page-map level shows: its own, else the selected one
    /// of the images view, else the one with most pages never written.
    #[must_use]
    pub fn page_map_image(&self, image: Option<&String>) -> Option<String> {
        image
            .cloned()
            .or_else(|| {
                self.selected
                    .get(&Level::Table(TableKind::Images))
                    .map(|s| s.key.clone())
            })
            .or_else(|| self.shown.waste.first().map(|w| w.total.name.clone()))
    }

    /// The cursor's index in the table `kind` (of `len` rows).
    #[must_use]
    pub fn cursor(&self, level: &Level, table: &Table) -> usize {
        let len = table.len();
        match self.selected.get(level) {
            Some(s) => table
                .position(&s.key)
                .unwrap_or_else(|| s.index.min(len.saturating_sub(1))),
            None => 0,
        }
    }

    /// The cursor's page index in `map`.
    #[must_use]
    pub fn page_cursor(&self, level: &Level, map: &PageMap<'_>) -> usize {
        match self.selected.get(level) {
            Some(s) => u64::from_str_radix(s.key.trim_start_matches("0x"), 16)
                .ok()
                .and_then(|page| map.position(page))
                .unwrap_or_else(|| s.index.min(map.pages.len().saturating_sub(1))),
            None => 0,
        }
    }

    /// The key of the selected row of the level shown, if any.
    #[must_use]
    pub fn selected_key(&self) -> Option<String> {
        let level = self.level().clone();
        match &level {
            Level::Table(kind) => {
                let table = self.table(*kind);
                let i = self.cursor(&level, &table);
                table.key(i)
            }
            Level::PageMap(image) => {
                let image = self.page_map_image(image.as_ref())?;
                let map = self.page_map(&image);
                let i = self.page_cursor(&level, &map);
                map.pages.get(i).map(|p| format!("{:#x}", p.page))
            }
        }
    }

    /// Moves the cursor by `delta` rows (or page cells), or to an end.
    fn move_cursor(&mut self, delta: isize, to_end: Option<bool>) {
        let level = self.level().clone();
        let (len, index, key_at): (usize, usize, KeyAt) = match &level {
            Level::Table(kind) => {
                let table = self.table(*kind);
                let i = self.cursor(&level, &table);
                (table.len(), i, Box::new(move |i| table.key(i)))
            }
            Level::PageMap(image) => {
                let Some(image) = self.page_map_image(image.as_ref()) else {
                    return;
                };
                let map = self.page_map(&image);
                let i = self.page_cursor(&level, &map);
                let pages: Vec<u64> = map.pages.iter().map(|p| p.page).collect();
                (
                    pages.len(),
                    i,
                    Box::new(move |i| pages.get(i).map(|p| format!("{p:#x}"))),
                )
            }
        };
        if len == 0 {
            return;
        }
        let target = match to_end {
            Some(false) => 0,
            Some(true) => len - 1,
            None => index.saturating_add_signed(delta).min(len - 1),
        };
        if let Some(key) = key_at(target) {
            self.selected.insert(level, Selected { key, index: target });
        }
    }

    /// Handles a key while the filter is being typed. Returns whether it
    /// took the key.
    pub fn text_input(&mut self, key: Key) -> bool {
        if !self.editing {
            return false;
        }
        match key {
            Key::Char(c) => self.filter.push(c),
            Key::Backspace => {
                self.filter.pop();
            }
            Key::Enter => self.editing = false,
            Key::Esc => {
                self.editing = false;
                self.filter.clear();
            }
            _ => {}
        }
        true
    }

    /// Carries out `action`, `now` being the time of the key press.
    pub fn act(&mut self, action: Action, now: Instant) {
        self.status = None;
        let screen = isize::try_from(self.viewport_rows.max(1)).unwrap_or(1);
        let cols = isize::try_from(self.page_cols.max(1)).unwrap_or(1);
        let on_map = matches!(self.level(), Level::PageMap(_));
        let line = if on_map { cols } else { 1 };
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.help = !self.help,
            Action::Up => self.move_cursor(-line, None),
            Action::Down => self.move_cursor(line, None),
            Action::Left if on_map => self.move_cursor(-1, None),
            Action::Right if on_map => self.move_cursor(1, None),
            Action::PageUp => self.move_cursor(-screen * line, None),
            Action::PageDown => self.move_cursor(screen * line, None),
            Action::Home => self.move_cursor(0, Some(false)),
            Action::End => self.move_cursor(0, Some(true)),
            Action::Drill => self.drill(),
            Action::Back => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                } else if self.stack.len() > 1 {
                    self.stack.pop();
                }
            }
            Action::NextSort | Action::PrevSort | Action::InvertSort => self.resort(action),
            Action::Filter => {
                self.editing = true;
                self.filter.clear();
            }
            Action::Pause => {
                let pause = self.paused_at.is_none();
                self.paused_at = pause.then_some(now);
                if !pause {
                    self.catch_up();
                }
                if self.mode == Mode::Replay {
                    self.requests.push(Request::Pause(pause));
                }
            }
            Action::Reset => {
                self.history.clear();
                self.shown_history.clear();
                self.requests.push(Request::Reset);
            }
            Action::Export => self.requests.push(Request::Export),
            Action::View(n) => self.show_view(n),
            Action::NextView => self.show_view((self.level().tab() + 1) % VIEWS.len()),
            Action::PrevView => {
                self.show_view((self.level().tab() + VIEWS.len() - 1) % VIEWS.len());
            }
            Action::SeekBack => self.requests.push(Request::Seek(-10.0)),
            Action::SeekForward => self.requests.push(Request::Seek(10.0)),
            Action::Faster | Action::Slower => {
                let factor = if action == Action::Faster { 2.0 } else { 0.5 };
                self.meta.speed = (self.meta.speed * factor).clamp(0.125, 1024.0);
                self.requests.push(Request::Speed(self.meta.speed));
            }
            Action::Left | Action::Right => {}
        }
    }

    fn show_view(&mut self, n: usize) {
        let level = match n {
            0 => Level::Table(TableKind::Processes),
            1 => Level::Table(TableKind::Mappings),
            2 => Level::Table(TableKind::Images),
            3 => Level::PageMap(None),
            4 => Level::Table(TableKind::Writers),
            _ => Level::Table(TableKind::Latency),
        };
        if self.stack.len() != 1 || self.stack[0] != level {
            self.filter.clear();
            self.editing = false;
        }
        self.stack = vec![level];
    }

    fn resort(&mut self, action: Action) {
        let Level::Table(kind) = self.level().clone() else {
            return;
        };
        let columns = kind.columns().len();
        let sort = &mut self.sorts[kind.slot()];
        match action {
            Action::NextSort => {
                sort.column = (sort.column + 1) % columns;
                sort.inverted = false;
            }
            Action::PrevSort => {
                sort.column = (sort.column + columns - 1) % columns;
                sort.inverted = false;
            }
            _ => sort.inverted = !sort.inverted,
        }
    }

    fn drill(&mut self) {
        let Some(key) = self.selected_key() else {
            return;
        };
        let next = match self.level() {
            Level::Table(TableKind::Processes) => key
                .parse()
                .ok()
                .map(|pid| Level::Table(TableKind::ProcessMappings(pid))),
            Level::Table(
                TableKind::Mappings | TableKind::ProcessMappings(_) | TableKind::Images,
            ) => {
                if self.shown.waste.iter().any(|w| w.total.name == key) {
                    Some(Level::PageMap(Some(key)))
                } else {
                    self.status = Some(format!(
                        "{key}: not an image with writable pages, so no page map"
                    ));
                    None
                }
            }
            _ => None,
        };
        if let Some(next) = next {
            self.filter.clear();
            self.stack.push(next);
        }
    }

    /// The breadcrumb: each level's name.
    #[must_use]
    pub fn breadcrumb(&self) -> Vec<String> {
        self.stack
            .iter()
            .map(|level| match level {
                Level::Table(TableKind::ProcessMappings(pid)) => {
                    let comm = self
                        .shown
                        .processes
                        .iter()
                        .find(|p| p.pid == *pid)
                        .map_or("?", |p| p.comm.as_str());
                    format!("pid {pid} ({comm}) mappings")
                }
                Level::PageMap(image) => format!(
                    "page map {}",
                    self.page_map_image(image.as_ref()).unwrap_or_default()
                ),
                other @ Level::Table(_) => VIEWS[other.tab()].to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
