//! `cowprof record`: trace a target until it exits, Ctrl-C or a duration.
use std::{
    ffi::OsString,
    fs::File,
    io::{self, BufWriter, Write},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    attrib::views::View,
    collect::Collector,
    probe::{ProbeError, ProbeOptions, Probes, Strategy},
    report::{SelfCost, StopReason, Summary},
    target::{HeldChild, PidWatch, Target, TargetError},
};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot write {path}: {source}")]
    Output { path: PathBuf, source: io::Error },
}

/// How to record.
#[derive(Debug)]
pub struct RecordOptions {
    pub target: Target,
    pub duration: Option<Duration>,
    /// Write every event as a JSON line to this file.
    pub events: Option<PathBuf>,
    pub probe: ProbeOptions,
    /// The view to report besides the per-process summary.
    pub by: View,
}

/// Polling interval of the stop conditions.
const TICK: Duration = Duration::from_millis(20);

/// Records until the target exits, `interrupted` is set, or the duration
/// passes. Progress goes to stderr; the summary is returned.
///
/// # Errors
/// When the probes cannot be loaded, the target cannot be started or
/// found, or the events file cannot be created.
pub fn record(
    options: &RecordOptions,
    interrupted: &Arc<AtomicBool>,
) -> Result<Summary, RecordError> {
    // Check the target before paying for the probes.
    let watch = match &options.target {
        Target::Pid(pid) => Some(PidWatch::open(*pid)?),
        _ => None,
    };
    let events_out: Option<Box<dyn Write + Send>> = match &options.events {
        Some(path) => Some(Box::new(BufWriter::new(File::create(path).map_err(
            |source| RecordError::Output {
                path: path.clone(),
                source,
            },
        )?))),
        None => None,
    };
    let record_started = Instant::now();
    let mut probe_options = options.probe;
    probe_options.system_wide = options.target == Target::SystemWide;
    let mut probes = Probes::load(probe_options)?;
    let strategy = probes.strategy();
    let mut child = None;
    match &options.target {
        Target::Command(argv) => {
            let held = HeldChild::spawn(argv)?;
            probes.follow(held.pid())?;
            child = Some((held, argv[0].clone()));
        }
        Target::Pid(pid) => probes.follow(*pid)?,
        Target::SystemWide => {}
    }
    let collector = Collector::spawn(probes, options.by, events_out);
    let started = Instant::now();
    announce(
        &options.target,
        strategy,
        child.as_ref().map(|(c, _)| c.pid()),
    );
    if let Some((held, argv0)) = child.as_mut() {
        release(held, argv0)?;
    }
    let attach_s = record_started.elapsed().as_secs_f64();
    let deadline = options.duration.map(|d| started + d);
    let (stop_reason, command_exit) = loop {
        if interrupted.load(Ordering::Acquire) {
            break (StopReason::Interrupted, None);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break (StopReason::Duration, None);
        }
        if let Some((held, _)) = child.as_mut() {
            if let Some(status) = held.wait(Some(TICK))? {
                break (StopReason::CommandExited, Some(exit_code(status)));
            }
        } else if let Some(watch) = &watch {
            if watch.exited(TICK) {
                break (StopReason::TargetExited, None);
            }
        } else {
            std::thread::sleep(TICK);
        }
    };
    let collected = collector.finish()?;
    let mut summary = Summary::new(
        strategy,
        stop_reason,
        started.elapsed().as_secs_f64(),
        command_exit,
        options.by,
        collected,
    );
    summary.cost = SelfCost::measure(attach_s, record_started.elapsed().as_secs_f64());
    Ok(summary)
}

fn release(held: &mut HeldChild, argv0: &OsString) -> Result<(), RecordError> {
    held.release(argv0).map_err(RecordError::from)
}

/// One line on stderr once the probes are live, which scripts can wait for.
fn announce(target: &Target, strategy: Strategy, child: Option<u32>) {
    let what = match (target, child) {
        (Target::Command(_), Some(pid)) => format!("command pid {pid} and its descendants"),
        (Target::Pid(pid), _) => format!("pid {pid} and its future children"),
        _ => "all processes".to_owned(),
    };
    eprintln!("cowprof: recording {what} with the {strategy} strategy; Ctrl-C stops");
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
