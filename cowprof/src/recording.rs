//! One recording's lifecycle, shared by every verb that records: load the
//! probes, start or find the target, start the collector, release the
//! command, wait for a stop, and finish. Dropping a recording at any point
//! stops the collector and detaches the probes.
use std::{
    ffi::OsString,
    io,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::{
    collector::{CollectError, Collector, CollectorOptions, Final, Sinks},
    probe::{ProbeError, ProbeOptions, Probes, Strategy},
    sink::summary::StopReason,
    target::{HeldChild, PidWatch, Target, TargetError},
};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot write {path}: {source}; check the directory exists and is writable")]
    Output {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[cfg(feature = "parquet")]
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error("this cowprof was built without profiles (the `parquet` feature); rebuild it with default features")]
    NoProfiles,
}

/// How to record.
#[derive(Clone, Debug)]
pub struct RecordingOptions {
    pub target: Target,
    pub probe: ProbeOptions,
    pub collector: CollectorOptions,
    /// Say on stderr when the probes are live (not under a TUI).
    pub announce: bool,
    /// Send the command's stdout and stderr to this file, its stdin from
    /// `/dev/null` (under a TUI).
    pub command_output: Option<std::path::PathBuf>,
}

/// Polling interval of the stop conditions.
const TICK: Duration = Duration::from_millis(20);

/// A recording in progress.
pub struct Recording {
    /// Declared first: dropped first, so the probes detach before the
    /// child is reaped.
    collector: Collector,
    child: Option<HeldChild>,
    watch: Option<PidWatch>,
    strategy: Strategy,
    fallbacks: Vec<String>,
    programs: usize,
    record_started: Instant,
    started: Instant,
    attach_s: f64,
}

/// A finished recording.
#[derive(Debug)]
pub struct Finished {
    pub collected: Final,
    pub strategy: Strategy,
    /// What the legacy object stood in for ([`Recording::fallbacks`]).
    pub fallbacks: Vec<String>,
    pub stop_reason: StopReason,
    pub command_exit: Option<i32>,
    /// From the command's release (or the probes attached) to the stop.
    pub duration_s: f64,
    /// From the start of the recording to the probes attached and the
    /// command released.
    pub attach_s: f64,
    /// From the start of the recording to its end.
    pub wall_s: f64,
}

impl Recording {
    /// Loads the probes, starts or finds the target, starts the collector
    /// with `sinks`, and releases the command: from here on every fault of
    /// the target is recorded.
    ///
    /// # Errors
    /// When the probes cannot be loaded, the target cannot be started or
    /// found, or a thread cannot be created. Nothing stays attached then.
    pub fn start(options: RecordingOptions, sinks: Sinks) -> Result<Self, RecordError> {
        let record_started = Instant::now();
        // Check the target before paying for the probes.
        let watch = match &options.target {
            Target::Pid(pid) => Some(PidWatch::open(*pid)?),
            _ => None,
        };
        let mut probe_options = options.probe;
        probe_options.system_wide = options.target == Target::SystemWide;
        let mut probes = Probes::load(probe_options)?;
        let strategy = probes.strategy();
        let fallbacks = probes.fallbacks();
        let programs = probes.attached().len();
        let mut child = None;
        match &options.target {
            Target::Command(argv) => {
                let held = HeldChild::spawn(argv, options.command_output.as_deref())?;
                probes.follow(held.pid())?;
                child = Some(held);
            }
            Target::Pid(pid) => probes.follow(*pid)?,
            Target::SystemWide => {}
        }
        let collector =
            Collector::spawn(probes, options.collector, sinks).map_err(RecordError::Thread)?;
        let mut recording = Self {
            collector,
            child,
            watch,
            strategy,
            fallbacks,
            programs,
            record_started,
            started: Instant::now(),
            attach_s: 0.0,
        };
        if options.announce {
            announce(
                &options.target,
                strategy,
                recording.child.as_ref().map(HeldChild::pid),
            );
        }
        if let (Some(held), Target::Command(argv)) = (recording.child.as_mut(), &options.target) {
            let argv0: &OsString = &argv[0];
            held.release(argv0)?;
        }
        recording.started = Instant::now();
        recording.attach_s = record_started.elapsed().as_secs_f64();
        self_faults();
        Ok(recording)
    }

    /// The probe strategy in use.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// What the legacy object stands in for on this kernel
    /// ([`Probes::fallbacks`]).
    #[must_use]
    pub fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    /// The BPF programs attached.
    #[must_use]
    pub fn programs(&self) -> usize {
        self.programs
    }

    /// Starts the counts over (see [`Collector::reset`]).
    pub fn reset(&self) {
        self.collector.reset();
    }

    /// Time since the command was released (or the probes attached).
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The pid of the command cowprof started, if it did.
    #[must_use]
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(HeldChild::pid)
    }

    /// Waits up to `timeout` for the target to end. Returns why it ended,
    /// and the command's exit code, once it has.
    ///
    /// # Errors
    /// When waiting for the command fails.
    pub fn poll(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(StopReason, Option<i32>)>, RecordError> {
        if let Some(held) = self.child.as_mut() {
            if let Some(status) = held.wait(Some(timeout))? {
                return Ok(Some((StopReason::CommandExited, Some(exit_code(status)))));
            }
        } else if let Some(watch) = &self.watch {
            if watch.exited(timeout) {
                return Ok(Some((StopReason::TargetExited, None)));
            }
        } else {
            std::thread::sleep(timeout);
        }
        Ok(None)
    }

    /// Records until the target ends, `interrupted` is set, or `duration`
    /// has passed.
    ///
    /// # Errors
    /// When waiting for the command fails.
    pub fn run_until(
        &mut self,
        interrupted: &AtomicBool,
        duration: Option<Duration>,
    ) -> Result<(StopReason, Option<i32>), RecordError> {
        let deadline = duration.and_then(|d| self.started.checked_add(d));
        loop {
            if interrupted.load(Ordering::Acquire) {
                return Ok((StopReason::Interrupted, None));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((StopReason::Duration, None));
            }
            if let Some(stop) = self.poll(TICK)? {
                return Ok(stop);
            }
        }
    }

    /// Stops the collector after a last drain and returns what it collected.
    ///
    /// # Errors
    /// When the collector thread failed.
    pub fn finish(
        self,
        stop_reason: StopReason,
        command_exit: Option<i32>,
    ) -> Result<Finished, RecordError> {
        let duration_s = self.started.elapsed().as_secs_f64();
        let collected = self.collector.finish()?;
        Ok(Finished {
            collected,
            strategy: self.strategy,
            fallbacks: self.fallbacks,
            stop_reason,
            command_exit,
            duration_s,
            attach_s: self.attach_s,
            wall_s: self.record_started.elapsed().as_secs_f64(),
        })
    }
}

/// A test hook: `COWPROF_SELF_FAULTS=N` makes cowprof take N COW faults of
/// its own (zero-page copies) once its probes are live, so a test can check
/// that it never traces itself.
fn self_faults() {
    let Some(pages) = std::env::var("COWPROF_SELF_FAULTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    else {
        return;
    };
    let len = pages * 4096;
    // SAFETY: a fresh private anon mapping, read then written page by page
    // (volatile, so every access happens), then unmapped.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return;
        }
        libc::madvise(base, len, libc::MADV_NOHUGEPAGE);
        let base = base.cast::<u8>();
        for page in 0..pages {
            let _ = std::ptr::read_volatile(base.add(page * 4096));
        }
        for page in 0..pages {
            std::ptr::write_volatile(base.add(page * 4096), 1);
        }
        libc::munmap(base.cast(), len);
    }
}

/// One line on stderr once the probes are live, which scripts can wait for.
fn announce(target: &Target, strategy: Strategy, child: Option<u32>) {
    let what = describe(target, child);
    eprintln!("cowprof: recording {what} with the {strategy} strategy; Ctrl-C stops");
}

/// What a recording of `target` follows, for the lines that say so
/// (`child`: the pid of the command cowprof started).
#[must_use]
pub fn describe(target: &Target, child: Option<u32>) -> String {
    match (target, child) {
        (Target::Command(_), Some(pid)) => format!("command pid {pid} and its descendants"),
        (Target::Pid(pid), _) => format!("pid {pid} and its future children"),
        _ => "all processes".to_owned(),
    }
}

/// A wait status as a shell would report it.
fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        status
    }
}
