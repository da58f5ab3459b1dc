//! Every event of a live `top`, spooled to a profile directory of its own
//! (deleted at the end), so that `e` can export what was collected: the
//! writer closes its part on request (a checkpoint), and the closed parts
//! are linked into a new profile directory with end tables from the latest
//! report. Without the `parquet` feature there is no spool.
use std::path::Path;

use crossbeam_channel::Receiver;

use super::TopError;
use crate::{collector::Sinks, report::Report, target::Target};

#[cfg(feature = "parquet")]
pub use self::parquet::{Spool, Written};
#[cfg(not(feature = "parquet"))]
pub use self::plain::{Spool, Written};

#[cfg(feature = "parquet")]
mod parquet {
    use std::sync::mpsc::SyncSender;

    use std::path::PathBuf;

    use super::{Path, Receiver, Report, Sinks, Target, TopError};
    use crate::{
        profile::sink::{Ending, ProfileSink},
        report::events::EventRow,
        top::tables::thousands,
    };

    pub use crate::profile::writer::Written;

    pub struct Spool {
        sink: ProfileSink,
        rows: SyncSender<Vec<EventRow>>,
        export_dir: PathBuf,
        pending: Option<PathBuf>,
        exports: usize,
    }

    impl Spool {
        /// Opens a spool for `target` and sends it the collector's events.
        ///
        /// # Errors
        /// When the spool directory cannot be made.
        pub fn open(
            target: &Target,
            export_dir: &Path,
            sinks: &mut Sinks,
        ) -> Result<Option<Self>, TopError> {
            // A leftover of an earlier process with this pid is removed
            // (`remove_dir_all` never follows a link); whatever is there
            // after that is refused by `create_dir` unless it is an empty
            // directory of this user.
            let dir = std::env::temp_dir().join(format!("cowprof-top-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (sink, rows) = ProfileSink::open(&dir, target.describe())?;
            sinks.rows = Some(rows.clone());
            Ok(Some(Self {
                sink,
                rows,
                export_dir: export_dir.to_owned(),
                pending: None,
                exports: 0,
            }))
        }

        /// Records the strategy in the spool's manifest.
        ///
        /// # Errors
        /// When the manifest cannot be written.
        pub fn started(&mut self, strategy: &str) -> Result<(), TopError> {
            Ok(self.sink.started(strategy)?)
        }

        #[must_use]
        pub fn checkpoints(&self) -> Receiver<Written> {
            self.sink.checkpoints().clone()
        }

        /// Asks the writer for a checkpoint. Returns the line to show.
        pub fn request(&mut self) -> String {
            if self.pending.is_some() {
                return "an export is under way".to_owned();
            }
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.exports += 1;
            let dir = self
                .export_dir
                .join(format!("cowprof-top-{stamp}-{}", self.exports));
            match self.rows.try_send(Vec::new()) {
                Ok(()) => {
                    let text = format!("exporting to {}…", dir.display());
                    self.pending = Some(dir);
                    text
                }
                Err(_) => "the profile writer is busy; press e again".to_owned(),
            }
        }

        /// Writes the export asked for, from the parts `written` at the
        /// checkpoint. Returns the line to show.
        pub fn exported(&mut self, written: &Written, report: &Report, duration_s: f64) -> String {
            let Some(dir) = self.pending.take() else {
                return String::new();
            };
            let ending = Ending {
                report,
                duration_s,
                stop_reason: "exported",
                dropped: 0,
                warnings: &[],
                exits: &[],
            };
            match self.sink.export(written, &dir, &ending) {
                Ok(()) => format!(
                    "exported {} events to {}",
                    thousands(written.events),
                    dir.display()
                ),
                Err(err) => format!("export failed: {err}"),
            }
        }

        /// Ends the writer and deletes the spool (every other sender of
        /// events must be gone).
        pub fn discard(self) {
            drop(self.rows);
            self.sink.discard();
        }
    }
}

#[cfg(not(feature = "parquet"))]
mod plain {
    use super::{Path, Receiver, Report, Sinks, Target, TopError};

    /// No profiles in this build: nothing to export.
    #[derive(Debug)]
    pub enum Written {}

    pub enum Spool {}

    impl Spool {
        #[expect(
            clippy::unnecessary_wraps,
            reason = "the same signature as with profiles"
        )]
        pub fn open(_: &Target, _: &Path, _: &mut Sinks) -> Result<Option<Self>, TopError> {
            Ok(None)
        }

        pub fn started(&mut self, _: &str) -> Result<(), TopError> {
            match *self {}
        }

        pub fn checkpoints(&self) -> Receiver<Written> {
            match *self {}
        }

        pub fn request(&mut self) -> String {
            match *self {}
        }

        pub fn exported(&mut self, _: &Written, _: &Report, _: f64) -> String {
            match *self {}
        }

        pub fn discard(self) {
            match self {}
        }
    }
}

/// The line `e` shows without a spool.
pub const NO_SPOOL: &str = if cfg!(feature = "parquet") {
    "export is off: top runs with --no-export"
} else {
    "this cowprof was built without profiles (the `parquet` feature)"
};
