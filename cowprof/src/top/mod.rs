//! `cowprof top`: the live view. One loop owns the screen's state ([`App`])
//! and waits on three things at once: keys (from a reader thread), reports
//! (from the collector, or the replay clock; newest wins), and a one-second
//! tick for the clock. It redraws only when something changed, at most
//! [`FRAME`] apart, and restores the terminal on every way out.
pub mod app;
#[doc(hidden)]
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod keymap;
mod live;
pub mod pagemap;
pub mod render;
#[cfg(feature = "parquet")]
mod replay;
mod spool;
pub mod tables;
mod term;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crossbeam_channel::{select, Receiver};
use ratatui::crossterm::event::{self, Event};

pub use self::app::App;
use self::{
    app::{Meta, Request},
    keymap::Mode,
    live::Live,
    render::Theme,
};
use crate::{probe::ProbeOptions, recording::RecordError, report::Report, target::Target};

/// The shortest time between two frames (at most 20 frames a second).
pub const FRAME: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[cfg(feature = "parquet")]
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error("top needs a terminal ({0}); run it in one, or record with `cowprof record -o DIR` and replay that in a terminal later")]
    Terminal(std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "this cowprof was built without profiles (the `parquet` feature), so it cannot replay"
    )]
    NoProfiles,
}

impl From<crate::target::TargetError> for TopError {
    fn from(err: crate::target::TargetError) -> Self {
        Self::Record(RecordError::Target(err))
    }
}

/// What to show.
#[derive(Debug)]
pub enum Show {
    Live { target: Target, probe: ProbeOptions },
    Replay { dir: PathBuf, speed: f64 },
}

/// How `top` runs.
#[derive(Debug)]
pub struct TopOptions {
    pub show: Show,
    /// Where `e` writes profile directories; `None`: no export, and no
    /// spool of events.
    pub export_dir: Option<PathBuf>,
    /// Where the command's output goes.
    pub command_output: PathBuf,
    /// Leave when the command (or the replay) ends.
    pub exit_when_done: bool,
    /// Where separate debug files are looked for.
    pub debug_dirs: crate::resolve::symbols::DebugDirs,
}

/// The source of reports.
enum Source {
    Live(Box<Live>),
    #[cfg(feature = "parquet")]
    Replay(replay::Replay),
}

impl Source {
    /// The live reports (never, in a replay).
    fn reports(&self) -> Receiver<Arc<Report>> {
        match self {
            Source::Live(l) => l.reports().clone(),
            #[cfg(feature = "parquet")]
            Source::Replay(_) => crossbeam_channel::never(),
        }
    }

    /// The replay's moments (never, live).
    fn moments(&self) -> Receiver<Moment> {
        match self {
            Source::Live(_) => crossbeam_channel::never(),
            #[cfg(feature = "parquet")]
            Source::Replay(r) => r.moments().clone(),
        }
    }
}

#[cfg(feature = "parquet")]
use self::replay::Moment;
/// No replays without profiles.
#[cfg(not(feature = "parquet"))]
pub struct Moment {
    report: Arc<Report>,
    at: Duration,
    last: bool,
}

/// Reads the terminal's events on a thread of its own (it blocks).
fn input_thread() -> Result<Receiver<Event>, TopError> {
    let (tx, rx) = crossbeam_channel::bounded(64);
    std::thread::Builder::new()
        .name("cowprof-keys".into())
        .spawn(move || {
            while let Ok(event) = event::read() {
                if tx.send(event).is_err() {
                    break;
                }
            }
        })
        .map_err(TopError::Thread)?;
    Ok(rx)
}

/// A thread that frees the reports the screen no longer shows: freeing
/// one with tens of thousands of rows would cost the UI a frame.
fn reaper() -> Result<crossbeam_channel::Sender<Arc<Report>>, TopError> {
    let (tx, rx) = crossbeam_channel::unbounded::<Arc<Report>>();
    std::thread::Builder::new()
        .name("cowprof-reaper".into())
        .spawn(move || rx.into_iter().for_each(drop))
        .map_err(TopError::Thread)?;
    Ok(tx)
}

/// Signals that end `top` (SIGINT, SIGTERM, SIGHUP), as a channel.
fn signal_channel() -> Result<Receiver<()>, TopError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(|err| TopError::Thread(std::io::Error::other(err.to_string())))?;
    Ok(rx)
}

/// Runs `top` until `q`, a signal, or (with `exit_when_done`) the end of
/// the command or the replay.
///
/// # Errors
/// When the recording or the replay cannot start, or the terminal cannot
/// be used.
pub fn run(options: TopOptions) -> Result<(), TopError> {
    let signals = signal_channel()?;
    let need_terminal = || {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Ok(())
        } else {
            Err(TopError::Terminal(std::io::Error::other(
                "stdout is not a terminal",
            )))
        }
    };
    let (source, mode, meta) = match options.show {
        Show::Live { target, probe } => {
            // Before the probes load: nothing to undo.
            need_terminal()?;
            let describe = target.describe();
            let live = Live::start(
                target,
                probe,
                &options.command_output,
                options.export_dir.as_deref(),
                options.debug_dirs.clone(),
            )?;
            let target = match live.child_pid() {
                Some(pid) => format!("{describe} (pid {pid})"),
                None => describe,
            };
            let meta = Meta {
                strategy: live.strategy(),
                target,
                speed: 1.0,
                ..Meta::default()
            };
            (Source::Live(Box::new(live)), Mode::Live, meta)
        }
        #[cfg(feature = "parquet")]
        Show::Replay { dir, speed } => {
            // The profile first: a wrong directory is the first thing to say.
            let profile = crate::profile::read::Profile::open(&dir)?;
            let timeline = crate::profile::timeline::Timeline::open(profile)?;
            need_terminal()?;
            let replay = replay::Replay::start(timeline, &dir, speed)?;
            let meta = Meta {
                strategy: replay.strategy.clone(),
                target: replay.target.clone(),
                replay_length_s: Some(replay.length_s),
                speed,
                ended: None,
            };
            (Source::Replay(replay), Mode::Replay, meta)
        }
        #[cfg(not(feature = "parquet"))]
        Show::Replay { .. } => return Err(TopError::NoProfiles),
    };
    let mut guard = term::Guard::enter().map_err(TopError::Terminal)?;
    let keys = input_thread()?;
    let checkpoints = match &source {
        Source::Live(l) => l.checkpoints(),
        #[cfg(feature = "parquet")]
        Source::Replay(_) => crossbeam_channel::never(),
    };
    let mut ui = Ui {
        app: App::new(mode, meta),
        source,
        theme: Theme::from_env(),
        exit_when_done: options.exit_when_done,
        dirty: true,
        frames: 0,
        draw_ms_total: 0.0,
        draw_ms_max: 0.0,
        panic_after_frame: std::env::var_os("COWPROF_TOP_PANIC").is_some(),
    };
    let started = Instant::now();
    let result = ui.run(&mut guard, &keys, &signals, &checkpoints);
    drop(guard);
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    #[expect(clippy::cast_precision_loss, reason = "rates to log")]
    let (fps, mean_ms) = (
        ui.frames as f64 / secs,
        ui.draw_ms_total / ui.frames.max(1) as f64,
    );
    let latest = ui.app.latest();
    // One line that scripts (and `cargo xtask bench`) read.
    log::info!(
        "top: frames={} seconds={secs:.2} fps={fps:.1} draw_mean_ms={mean_ms:.2} draw_max_ms={:.2} cow={} lost_events={}",
        ui.frames,
        ui.draw_ms_max,
        latest.totals.cow_total(),
        latest.kernel.lost_events
    );
    result
}

/// The UI loop's own state.
struct Ui {
    app: App,
    source: Source,
    theme: Theme,
    exit_when_done: bool,
    /// Something changed since the last frame.
    dirty: bool,
    frames: u64,
    /// Time spent drawing, in ms: in all, and the longest frame.
    draw_ms_total: f64,
    draw_ms_max: f64,
    /// A test hook (`COWPROF_TOP_PANIC`): panic once a frame is drawn, so a
    /// test can check that a panic restores the terminal.
    panic_after_frame: bool,
}

impl Ui {
    fn run(
        &mut self,
        guard: &mut term::Guard,
        keys: &Receiver<Event>,
        signals: &Receiver<()>,
        checkpoints: &Receiver<live::Written>,
    ) -> Result<(), TopError> {
        let ticks = crossbeam_channel::tick(Duration::from_secs(1));
        let reaper = reaper()?;
        let (reports, moments) = (self.source.reports(), self.source.moments());
        let mut last_frame: Option<Instant> = None;
        while !self.app.quit {
            let now = Instant::now();
            let due = last_frame.map_or(now, |t| t + FRAME);
            if self.dirty && now >= due {
                let (app, theme) = (&mut self.app, &self.theme);
                guard
                    .terminal
                    .draw(|frame| render::draw(frame, app, theme, now))
                    .map_err(TopError::Terminal)?;
                let ms = now.elapsed().as_secs_f64() * 1e3;
                self.draw_ms_total += ms;
                self.draw_ms_max = self.draw_ms_max.max(ms);
                self.frames += 1;
                self.dirty = false;
                last_frame = Some(now);
                assert!(
                    !self.panic_after_frame,
                    "COWPROF_TOP_PANIC: a panic asked for by a test"
                );
            }
            // Never a busy loop: wait for news, or for the next frame when
            // one is owed.
            let wait = if self.dirty {
                due.saturating_duration_since(Instant::now())
            } else {
                Duration::from_hours(1)
            };
            select! {
                recv(keys) -> event => match event {
                    Ok(event) => self.on_event(&event),
                    Err(_) => break,
                },
                recv(reports) -> report => {
                    if let (Ok(report), Source::Live(live)) = (report, &self.source) {
                        self.app.update(report, live.elapsed());
                        self.dirty = true;
                    }
                },
                recv(moments) -> moment => {
                    if let Ok(moment) = moment {
                        self.app.update(moment.report, moment.at);
                        if moment.last {
                            self.app.meta.ended = Some("replay ended".to_owned());
                            if self.exit_when_done {
                                break;
                            }
                        }
                        self.dirty = true;
                    }
                },
                recv(checkpoints) -> written => {
                    if let (Ok(written), Source::Live(live)) = (written, &mut self.source) {
                        let latest = self.app.latest();
                        self.app.status = Some(live.exported(&written, &latest));
                        self.dirty = true;
                    }
                },
                recv(signals) -> _ => break,
                recv(ticks) -> _ => self.dirty = true,
                default(wait) => {},
            }
            for old in self.app.take_retired() {
                let _ = reaper.send(old);
            }
            self.carry_out_requests();
            if self.check_end() && self.exit_when_done {
                break;
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: &Event) {
        if let Event::Key(key) = event {
            if let Some(key) = keymap::from_crossterm(key) {
                if !self.app.text_input(key) {
                    if let Some(action) = keymap::action(key, self.app.mode) {
                        self.app.act(action, Instant::now());
                    }
                }
            }
        }
        // Keys, resizes and focus changes all redraw.
        self.dirty = true;
    }

    fn carry_out_requests(&mut self) {
        for request in self.app.take_requests() {
            match (&mut self.source, request) {
                (Source::Live(live), Request::Export) => self.app.status = Some(live.export()),
                (Source::Live(live), Request::Reset) => live.reset(),
                #[cfg(feature = "parquet")]
                (Source::Replay(replay), request) => replay.request(request),
                _ => {}
            }
        }
    }

    /// Notes the end of the command or the replay. Returns whether it
    /// ended just now.
    fn check_end(&mut self) -> bool {
        match &mut self.source {
            Source::Live(live) => {
                let Some(news) = live.poll() else {
                    return false;
                };
                self.app.meta.ended = Some(news);
                self.dirty = true;
                if self.exit_when_done {
                    // The report that holds the command's last faults.
                    if let Ok(report) = live.reports().recv_timeout(live::TICK + FRAME) {
                        self.app.update(report, live.elapsed());
                    }
                }
                true
            }
            #[cfg(feature = "parquet")]
            Source::Replay(_) => false,
        }
    }
}
