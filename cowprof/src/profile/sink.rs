//! The profile as a sink of `record`: the directory made before the target
//! starts, the events written while recording, and the end tables and the
//! final manifest written when it stops.
use std::{
    path::{Path, PathBuf},
    sync::mpsc::SyncSender,
};

use cowprof_common::Kind;

use super::{
    frames,
    manifest::{write_atomically, Manifest},
    writer::{create_dir, ProfileWriter, Written},
    ProfileError,
};
use crate::report::{events::EventRow, Report};
use cowprof_model::state::View;

/// A profile being recorded.
pub struct ProfileSink {
    dir: PathBuf,
    writer: ProfileWriter,
    manifest: Manifest,
}

/// How a recording ended, for the manifest.
pub struct Ending<'a> {
    pub report: &'a Report,
    pub duration_s: f64,
    pub stop_reason: &'a str,
    /// Events the writer could not take in time.
    pub dropped: u64,
    pub warnings: &'a [String],
    /// The processes retired while recording, in order.
    pub exits: &'a [crate::collector::Exit],
}

impl ProfileSink {
    /// Makes the profile directory `dir` with a manifest marked incomplete
    /// (so a profile killed at any moment says so), and starts its writer;
    /// the events go to the returned sender.
    ///
    /// # Errors
    /// When `dir` cannot be made or is not empty.
    pub fn open(
        dir: &Path,
        target: String,
    ) -> Result<(Self, SyncSender<Vec<EventRow>>), ProfileError> {
        create_dir(dir)?;
        let manifest = Manifest::start("", target, crate::kernel::monotonic_ns());
        manifest.write(dir)?;
        let (writer, tx) = ProfileWriter::spawn(dir).map_err(|source| ProfileError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let sink = Self {
            dir: dir.to_owned(),
            writer,
            manifest,
        };
        Ok((sink, tx))
    }

    /// Records the probe strategy and the moment recording started, still
    /// marked incomplete until [`ProfileSink::finish`].
    ///
    /// # Errors
    /// When the manifest cannot be written.
    pub fn started(&mut self, strategy: &str) -> Result<(), ProfileError> {
        strategy.clone_into(&mut self.manifest.strategy);
        self.manifest.start_ktime_ns = crate::kernel::monotonic_ns();
        self.manifest.write(&self.dir)
    }

    fn table(
        dir: &Path,
        name: &str,
        df: polars::prelude::PolarsResult<polars::prelude::DataFrame>,
    ) -> Result<(), ProfileError> {
        let path = dir.join(name);
        let parquet = |e: polars::prelude::PolarsError| ProfileError::Parquet {
            path: path.clone(),
            problem: e.to_string(),
        };
        let df = df.map_err(parquet)?;
        if df.height() == 0 {
            return Ok(());
        }
        let mut bytes = Vec::new();
        frames::write_whole(&mut bytes, &df).map_err(parquet)?;
        write_atomically(&path, &bytes)
    }

    /// Waits for the last events part, writes the end tables, and marks
    /// the profile complete.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn finish(self, ending: &Ending<'_>) -> Result<(), ProfileError> {
        let written = self.writer.finish()?;
        end(&self.dir, self.manifest, &written, ending)
    }

    /// The parts written so far, at each checkpoint (see
    /// [`ProfileWriter::checkpoints`]).
    #[must_use]
    pub fn checkpoints(&self) -> &crossbeam_channel::Receiver<Written> {
        self.writer.checkpoints()
    }

    /// Copies the profile as it was at a checkpoint (the parts `written`
    /// then) into the new directory `into`, with end tables and a complete
    /// manifest of `ending`: a profile of its own, while this one goes on.
    ///
    /// # Errors
    /// When `into` is not new or empty, or a file cannot be written.
    pub fn export(
        &self,
        written: &Written,
        into: &Path,
        ending: &Ending<'_>,
    ) -> Result<(), ProfileError> {
        create_dir(into)?;
        for part in &written.parts {
            let (from, to) = (self.dir.join(part), into.join(part));
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(|source| ProfileError::Write {
                    path: to.clone(),
                    source,
                })?;
            }
        }
        end(into, self.manifest.clone(), written, ending)
    }

    /// Ends the writer (once every sender is gone) and deletes the
    /// directory: a spool that was only kept for exports.
    pub fn discard(self) {
        let _ = self.writer.finish();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The directory the events are written to.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes the end tables of `ending` into `dir`, and `manifest` completed.
fn end(
    dir: &Path,
    mut manifest: Manifest,
    written: &Written,
    ending: &Ending<'_>,
) -> Result<(), ProfileError> {
    let report = ending.report;
    ProfileSink::table(
        dir,
        "processes.parquet",
        frames::processes(&report.processes),
    )?;
    if let Some(rows) = report.views.get(&View::Mapping) {
        ProfileSink::table(dir, "mappings.parquet", frames::view("mapping", rows))?;
    }
    if let Some(rows) = report.views.get(&View::Stack) {
        ProfileSink::table(dir, "stacks.parquet", frames::view("stack", rows))?;
    }
    ProfileSink::table(dir, "pages.parquet", frames::pages(&report.pages))?;
    // Only the exits within the events written: an export is cut at a
    // checkpoint.
    let exits: Vec<_> = ending
        .exits
        .iter()
        .filter(|e| e.seq <= written.events)
        .copied()
        .collect();
    ProfileSink::table(dir, "exits.parquet", frames::exits(&exits))?;
    let m = &mut manifest;
    m.parts.clone_from(&written.parts);
    m.events_written = written.events;
    m.events_dropped = ending.dropped;
    m.lost_events = report.kernel.lost_events;
    m.kernel_totals = Kind::ALL
        .iter()
        .map(|k| (k.name().to_owned(), report.kernel_totals().get(*k)))
        .collect();
    m.duration_s = ending.duration_s;
    m.stop_reason = Some(ending.stop_reason.to_owned());
    m.warnings = ending.warnings.to_vec();
    m.complete = true;
    manifest.write(dir)
}
