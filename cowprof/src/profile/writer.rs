//! The profile writer: a sink on its own thread behind a bounded channel.
//! Events are written in row groups as they fill; a part is closed after
//! [`PART_ROWS`] rows or [`PART_SECONDS`] seconds. A part streams to a
//! hidden temporary file (readers skip it), then is synced and renamed, so
//! a `kill -9` loses at most the open part; memory holds one row group,
//! never a part.
use std::{
    cell::RefCell,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    rc::Rc,
    sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use polars::io::parquet::write::BatchedWriter;

use super::{frames, ProfileError, EVENTS_DIR};
use crate::report::events::EventRow;

/// Rows per row group.
pub const ROW_GROUP: usize = 65_536;
/// Rows per events part.
pub const PART_ROWS: u64 = 1 << 20;
/// Seconds a part stays open at most.
pub const PART_SECONDS: u64 = 5;
/// Batches the writer can hold queued (each up to one drain batch, 4096
/// rows of about 200 bytes): memory stays bounded, and the writer, at
/// over a million rows a second, keeps up with the collector.
const QUEUE: usize = 16;

/// The temporary file of a part being written, shared with its Parquet
/// writer (which owns its output until it is dropped).
#[derive(Clone)]
struct Shared(Rc<RefCell<BufWriter<File>>>);

impl Write for Shared {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// The part being written.
struct Part {
    index: usize,
    /// Its temporary file, renamed to its name when closed.
    tmp: PathBuf,
    file: Shared,
    writer: BatchedWriter<Shared>,
    rows: u64,
    opened: Instant,
}

/// What the writer wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Parts closed, relative to the profile directory.
    pub parts: Vec<String>,
    pub events: u64,
}

/// The writer's thread.
pub struct ProfileWriter {
    thread: JoinHandle<Result<Written, ProfileError>>,
    checkpoints: crossbeam_channel::Receiver<Written>,
}

/// Creates the profile directory `dir`, refusing one that holds anything,
/// private unless `--mode` says otherwise ([`crate::output::create_dir`]).
///
/// # Errors
/// When it cannot be made, is a symbolic link, or is not empty.
pub fn create_dir(dir: &Path) -> Result<(), ProfileError> {
    let io = |source| ProfileError::Write {
        path: dir.to_owned(),
        source,
    };
    crate::output::create_dir(dir).map_err(io)?;
    crate::output::create_dir(&dir.join(EVENTS_DIR)).map_err(io)
}

fn parquet_error(path: &Path, err: &polars::prelude::PolarsError) -> ProfileError {
    ProfileError::Parquet {
        path: path.to_owned(),
        problem: err.to_string(),
    }
}

struct Run {
    dir: PathBuf,
    buffered: Vec<EventRow>,
    part: Option<Part>,
    written: Written,
    checkpoints: crossbeam_channel::Sender<Written>,
}

impl Run {
    fn part_name(index: usize) -> String {
        format!("{EVENTS_DIR}/part-{index:05}.parquet")
    }

    /// Writes the buffered rows as one row group.
    fn write_group(&mut self) -> Result<(), ProfileError> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let name = Self::part_name(self.written.parts.len());
        let path = self.dir.join(&name);
        let df = frames::events(&self.buffered).map_err(|e| parquet_error(&path, &e))?;
        if self.part.is_none() {
            let tmp = crate::output::temporary(&path);
            let io = |source| ProfileError::Write {
                path: tmp.clone(),
                source,
            };
            let file = Shared(Rc::new(RefCell::new(BufWriter::new(
                crate::output::create_new(&tmp).map_err(io)?,
            ))));
            let writer = frames::writer(file.clone(), &df).map_err(|e| parquet_error(&path, &e))?;
            self.part = Some(Part {
                index: self.written.parts.len(),
                tmp,
                file,
                writer,
                rows: 0,
                opened: Instant::now(),
            });
        }
        let part = self.part.as_mut().expect("opened above");
        part.writer
            .write_batch(&df)
            .map_err(|e| parquet_error(&path, &e))?;
        part.rows += df.height() as u64;
        self.buffered.clear();
        if part.rows >= PART_ROWS {
            self.close()?;
        }
        Ok(())
    }

    /// Closes the open part: footer, then a synced temporary file renamed.
    fn close(&mut self) -> Result<(), ProfileError> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        let name = Self::part_name(part.index);
        let path = self.dir.join(&name);
        part.writer.finish().map_err(|e| parquet_error(&path, &e))?;
        drop(part.writer);
        let io = |source| ProfileError::Write {
            path: path.clone(),
            source,
        };
        let file = Rc::try_unwrap(part.file.0)
            .map_err(|_| io(std::io::Error::other("the part's writer outlived it")))?
            .into_inner()
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&part.tmp, &path).map_err(io)?;
        self.written.parts.push(name);
        self.written.events += part.rows;
        Ok(())
    }

    fn run(mut self, rx: &Receiver<Vec<EventRow>>) -> Result<Written, ProfileError> {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                // A checkpoint: every event sent before is made durable
                // in closed parts, which are then listed to the sender.
                Ok(batch) if batch.is_empty() => {
                    self.write_group()?;
                    self.close()?;
                    let _ = self.checkpoints.send(self.written.clone());
                }
                Ok(batch) => {
                    self.buffered.extend(batch);
                    if self.buffered.len() >= ROW_GROUP {
                        self.write_group()?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let stale = self
                .part
                .as_ref()
                .is_some_and(|p| p.opened.elapsed() >= Duration::from_secs(PART_SECONDS));
            if stale {
                self.write_group()?;
                self.close()?;
            }
        }
        self.write_group()?;
        self.close()?;
        Ok(self.written)
    }
}

impl ProfileWriter {
    /// Starts writing events parts into `dir` (made by [`create_dir`]).
    ///
    /// # Errors
    /// When the OS cannot create a thread.
    pub fn spawn(dir: &Path) -> std::io::Result<(Self, SyncSender<Vec<EventRow>>)> {
        let (tx, rx) = sync_channel(QUEUE);
        let (checkpoints, checkpointed) = crossbeam_channel::unbounded();
        let dir = dir.to_owned();
        let thread = std::thread::Builder::new()
            .name("cowprof-profile".into())
            .spawn(move || {
                Run {
                    dir,
                    buffered: Vec::new(),
                    part: None,
                    written: Written::default(),
                    checkpoints,
                }
                .run(&rx)
            })?;
        Ok((
            Self {
                thread,
                checkpoints: checkpointed,
            },
            tx,
        ))
    }

    /// The parts written so far, once per checkpoint: an empty batch sent
    /// to the writer closes the current part and lists every closed part
    /// here.
    #[must_use]
    pub fn checkpoints(&self) -> &crossbeam_channel::Receiver<Written> {
        &self.checkpoints
    }

    /// Waits for the writer to close its last part (its sender must be
    /// dropped first).
    ///
    /// # Errors
    /// When writing failed.
    pub fn finish(self) -> Result<Written, ProfileError> {
        self.thread.join().unwrap_or_else(|_| {
            Err(ProfileError::Corrupt {
                path: PathBuf::new(),
                problem: "the profile writer thread failed".to_owned(),
            })
        })
    }
}
