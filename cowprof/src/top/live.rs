//! The live source of `top`: a recording whose collector publishes a
//! report every second (newest wins), and, when profiles are built in, a
//! spool of every event that `e` exports from.
use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use crossbeam_channel::Receiver;

use super::TopError;
use crate::{
    collector::{CollectorOptions, Sinks},
    newest::{self, Latest},
    probe::ProbeOptions,
    recording::{Recording, RecordingOptions},
    report::Report,
    sink::summary::StopReason,
    target::Target,
};

/// How often the collector publishes.
pub const TICK: Duration = Duration::from_secs(1);

/// Rows per view in the published reports.
pub const TOP_ROWS: usize = 20_000;

pub use super::spool::Written;
use super::spool::{Spool, NO_SPOOL};

/// A recording shown live.
pub struct Live {
    /// Declared first: dropped first, so the collector (which holds the
    /// spool's sender) ends before the spool is discarded.
    recording: Option<Recording>,
    reports: Latest<Arc<Report>>,
    spool: Option<Spool>,
    ended: Option<String>,
    started: Instant,
}

impl Live {
    /// Starts recording `target`. The command's output goes to
    /// `command_output`; events are spooled under `spool_dir` for exports.
    ///
    /// # Errors
    /// When the recording cannot start.
    pub fn start(
        target: Target,
        probe: ProbeOptions,
        command_output: &Path,
        export_dir: Option<&Path>,
        debug_dirs: crate::resolve::symbols::DebugDirs,
    ) -> Result<Self, TopError> {
        let (tx, reports) = newest::channel();
        let mut sinks = Sinks {
            reports: Some(tx),
            ..Sinks::default()
        };
        let mut spool = match export_dir {
            Some(dir) => Spool::open(&target, dir, &mut sinks)?,
            None => None,
        };
        let recording = Recording::start(
            RecordingOptions {
                target,
                probe,
                collector: CollectorOptions {
                    views: cowprof_model::state::View::ALL.to_vec(),
                    tick: Some(TICK),
                    top: Some(TOP_ROWS),
                    touch_map: true,
                    process_mappings: true,
                    debug_dirs,
                    ..CollectorOptions::default()
                },
                announce: false,
                command_output: Some(command_output.to_owned()),
            },
            sinks,
        )?;
        if let Some(spool) = spool.as_mut() {
            spool.started(recording.strategy().name())?;
        }
        Ok(Self {
            recording: Some(recording),
            reports,
            spool,
            ended: None,
            started: Instant::now(),
        })
    }

    /// The probe strategy.
    #[must_use]
    pub fn strategy(&self) -> String {
        self.recording
            .as_ref()
            .map(|r| r.strategy().name().to_owned())
            .unwrap_or_default()
    }

    /// The pid of the command, if cowprof started one.
    #[must_use]
    pub fn child_pid(&self) -> Option<u32> {
        self.recording.as_ref().and_then(Recording::child_pid)
    }

    pub fn reports(&self) -> &Receiver<Arc<Report>> {
        self.reports.receiver()
    }

    /// Time since the recording started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.recording
            .as_ref()
            .map_or_else(|| self.started.elapsed(), Recording::elapsed)
    }

    /// Checks whether the target ended. Returns the news once.
    pub fn poll(&mut self) -> Option<String> {
        if self.ended.is_some() {
            return None;
        }
        let recording = self.recording.as_mut()?;
        let news = match recording.poll(Duration::ZERO) {
            Ok(Some((StopReason::CommandExited, Some(code)))) => {
                format!("command exited with {code}")
            }
            Ok(Some(_)) => "target exited".to_owned(),
            Ok(None) => return None,
            Err(err) => format!("waiting for the command: {err}"),
        };
        self.ended = Some(news.clone());
        Some(news)
    }

    /// Starts the counts over.
    pub fn reset(&self) {
        if let Some(r) = &self.recording {
            r.reset();
        }
    }

    /// The spool's checkpoints (never, without a spool).
    #[must_use]
    pub fn checkpoints(&self) -> Receiver<Written> {
        self.spool
            .as_ref()
            .map_or_else(crossbeam_channel::never, Spool::checkpoints)
    }

    /// Asks for an export: the spool closes its part and lists its parts
    /// on [`Live::checkpoints`]; [`Live::exported`] then writes the copy.
    /// Returns the line to show.
    pub fn export(&mut self) -> String {
        self.spool
            .as_mut()
            .map_or_else(|| NO_SPOOL.to_owned(), Spool::request)
    }

    /// Writes the export asked for from the parts `written` and `report`.
    /// Returns the line to show.
    pub fn exported(&mut self, written: &Written, report: &Report) -> String {
        let duration_s = self.elapsed().as_secs_f64();
        self.spool
            .as_mut()
            .map(|s| s.exported(written, report, duration_s))
            .unwrap_or_default()
    }
}

impl Drop for Live {
    /// Ends the command cowprof started if it still runs (its output went
    /// to a file and its terminal was top's), stops recording (detaching
    /// the probes) and deletes the spool.
    fn drop(&mut self) {
        if let (None, Some(pid)) = (&self.ended, self.child_pid()) {
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe {
                libc::kill(i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGTERM);
            }
        }
        drop(self.recording.take());
        if let Some(spool) = self.spool.take() {
            spool.discard();
        }
    }
}
