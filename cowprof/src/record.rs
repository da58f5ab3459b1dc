//! `cowprof record`: trace a target until it exits, Ctrl-C or a duration,
//! then print the summary. Every output is opened before the target
//! starts, so a bad path costs no recording.
use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
    time::Duration,
};

use crate::resolve::symbols::DebugDirs;
use crate::{
    collector::{CollectorOptions, Sinks},
    probe::ProbeOptions,
    recording::{RecordError, Recording, RecordingOptions},
    sink::{
        events::EventsFile,
        summary::{SelfCost, Summary},
    },
    target::Target,
};
use cowprof_model::state::View;

/// How to record.
#[derive(Debug)]
pub struct RecordOptions {
    pub target: Target,
    pub duration: Option<Duration>,
    /// Write every event as a JSON line to this file.
    pub events: Option<PathBuf>,
    /// Write the summary to this file instead of stdout.
    pub summary: Option<PathBuf>,
    /// Write a profile directory here (`-o DIR`).
    pub profile: Option<PathBuf>,
    /// The summary as JSON.
    pub json: bool,
    pub probe: ProbeOptions,
    /// The views to report besides the per-process summary.
    pub by: Vec<View>,
    /// Print only the top N processes and rows of each view.
    pub top: Option<usize>,
    /// Where separate debug files are looked for.
    pub debug_dirs: DebugDirs,
}

fn create(path: &Path) -> Result<File, RecordError> {
    crate::output::create(path).map_err(|source| RecordError::Output {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(feature = "parquet")]
type Profile = crate::profile::sink::ProfileSink;
#[cfg(not(feature = "parquet"))]
type Profile = std::convert::Infallible;

/// Opens the profile directory, if one is asked for, before the target
/// starts, and sends it the events.
fn open_profile(
    dir: Option<&Path>,
    target: &Target,
    sinks: &mut Sinks,
) -> Result<Option<Profile>, RecordError> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    #[cfg(feature = "parquet")]
    {
        let (profile, tx) = Profile::open(dir, target.describe())?;
        sinks.rows = Some(tx);
        Ok(Some(profile))
    }
    #[cfg(not(feature = "parquet"))]
    {
        let _ = (dir, target, sinks);
        Err(RecordError::NoProfiles)
    }
}

/// Records until the target exits, `interrupted` is set, or the duration
/// passes, and writes the summary. Progress goes to stderr.
///
/// # Errors
/// When an output cannot be created, the probes cannot be loaded, the
/// target cannot be started or found, or the summary cannot be written.
pub fn record(options: &RecordOptions, interrupted: &AtomicBool) -> Result<Summary, RecordError> {
    let summary_out = options.summary.as_deref().map(create).transpose()?;
    let events_out = options.events.as_deref().map(create).transpose()?;
    let mut sinks = Sinks::default();
    let events_writer = match events_out {
        Some(file) => {
            let (writer, tx) = EventsFile::spawn(file).map_err(RecordError::Thread)?;
            sinks.events = Some(tx);
            Some(writer)
        }
        None => None,
    };
    let mut views = options.by.clone();
    let mut profile = open_profile(options.profile.as_deref(), &options.target, &mut sinks)?;
    if profile.is_some() {
        // The profile's mappings and stacks tables.
        for view in [View::Mapping, View::Stack] {
            if !views.contains(&view) && (view != View::Stack || options.probe.stacks) {
                views.push(view);
            }
        }
    }
    let mut recording = Recording::start(
        RecordingOptions {
            target: options.target.clone(),
            probe: options.probe,
            collector: CollectorOptions {
                views,
                debug_dirs: options.debug_dirs.clone(),
                ..CollectorOptions::default()
            },
            announce: true,
            command_output: None,
        },
        sinks,
    )?;
    #[cfg(feature = "parquet")]
    if let Some(profile) = profile.as_mut() {
        profile.started(recording.strategy().name())?;
    }
    let (stop, command_exit) = recording.run_until(interrupted, options.duration)?;
    let finished = recording.finish(stop, command_exit)?;
    #[cfg(feature = "parquet")]
    if let Some(profile) = profile.take() {
        let collected = &finished.collected;
        profile.finish(&crate::profile::sink::Ending {
            report: &collected.report,
            duration_s: finished.duration_s,
            stop_reason: &format!("{:?}", finished.stop_reason),
            dropped: collected.drops.rows,
            warnings: &collected.warnings,
            exits: &collected.exits,
        })?;
    }
    let _ = &mut profile;
    let mut summary = Summary::new(
        finished.strategy,
        finished.stop_reason,
        finished.duration_s,
        finished.command_exit,
        options.by.clone(),
        finished.collected,
    );
    summary.kernel_fallbacks = finished.fallbacks;
    if let Some(n) = options.top {
        summary.keep_top(n);
    }
    summary.events_file_error = events_writer.and_then(|w| w.finish().err());
    summary.cost = SelfCost::measure(finished.attach_s, finished.wall_s);
    let write = |out: &mut dyn io::Write| {
        if options.json {
            summary.write_json(out)
        } else {
            out.write_all(summary.to_text().as_bytes())
        }
    };
    let written = match summary_out {
        Some(mut file) => write(&mut file),
        None => write(&mut io::stdout().lock()),
    };
    written.map_err(|source| RecordError::Output {
        path: options
            .summary
            .clone()
            .unwrap_or_else(|| PathBuf::from("<stdout>")),
        source,
    })?;
    Ok(summary)
}
