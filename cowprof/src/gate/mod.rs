//! `cowprof gate`: a CI gate on COW-fault counts. It records a command
//! (to a profile), measures metrics from the profile's events, and judges
//! them against a baseline file; `gate compare` judges one profile against
//! another through the same measurement, so both give the same verdict on
//! the same runs. Exit codes: 0 within budget, 1 a regression, 2 a usage,
//! input or environment error.
pub mod baseline;
pub mod measure;
pub mod output;
pub mod verdict;

use std::{
    collections::BTreeMap,
    ffi::OsString,
    io::Write as _,
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
};

use self::{
    baseline::{Baseline, Environment, Tolerance},
    measure::{MeasureOptions, Measurement},
    verdict::Verdict,
};
use crate::{
    probe::ProbeOptions,
    profile::{read::Profile, ProfileError},
    record::{record, RecordOptions},
    recording::RecordError,
    target::Target,
};
use cowprof_model::state::View;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("baseline {0} does not exist; create it with `cowprof gate --update --baseline FILE -- CMD`")]
    NoBaseline(PathBuf),
    #[error(
        "{path} is not a cowprof baseline ({problem}); fix it, or write it anew with --update"
    )]
    Baseline { path: PathBuf, problem: String },
    #[error("{path} has baseline schema version {found}, and this cowprof reads version {}; write it anew with --update", baseline::SCHEMA_VERSION)]
    BaselineVersion { path: PathBuf, found: u64 },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("the command {0}; the gate measures successful runs only")]
    Command(String),
    #[error("the counts are not exact ({0}); enlarge --ringbuf-size or run on a quieter machine")]
    Inexact(String),
    #[error("the environment differs from the baseline's ({0}) and --strict-env is set; measure the baseline here with --update")]
    Environment(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Report formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GateFormat {
    #[default]
    Table,
    Json,
    Markdown,
    Junit,
}

/// How to judge, for both the live gate and `gate compare`.
#[derive(Clone, Debug)]
pub struct Judging {
    pub measure: MeasureOptions,
    pub defaults: Tolerance,
    /// Stale baselines fail too.
    pub strict: bool,
    pub format: GateFormat,
    /// List every metric, passes included (table).
    pub all: bool,
    /// Write the report here instead of stdout.
    pub output: Option<PathBuf>,
}

/// The live gate.
#[derive(Clone, Debug)]
pub struct LiveGate {
    pub command: Vec<OsString>,
    pub baseline: PathBuf,
    pub update: bool,
    pub strict_env: bool,
    pub repeat: usize,
    pub keep_profiles: Option<PathBuf>,
    pub probe: ProbeOptions,
    pub judging: Judging,
    /// Where separate debug files are looked for.
    pub debug_dirs: crate::resolve::symbols::DebugDirs,
}

/// One run of the command, recorded to `dir` and measured.
fn run_once(
    gate: &LiveGate,
    dir: &Path,
    interrupted: &AtomicBool,
) -> Result<(Measurement, String), GateError> {
    let options = RecordOptions {
        target: Target::Command(gate.command.clone()),
        duration: None,
        events: None,
        summary: Some(PathBuf::from("/dev/null")),
        profile: Some(dir.to_owned()),
        json: false,
        probe: gate.probe,
        by: vec![View::Process],
        top: None,
        debug_dirs: gate.debug_dirs.clone(),
    };
    let summary = record(&options, interrupted)?;
    match summary.command_exit {
        Some(0) => {}
        Some(code) => return Err(GateError::Command(format!("exited with {code}"))),
        None => return Err(GateError::Command("was interrupted".to_owned())),
    }
    if !summary.exact() || summary.sink_drops.rows > 0 {
        return Err(GateError::Inexact(format!(
            "{} events lost, {} not written to the profile, {} warnings",
            summary.lost_events,
            summary.sink_drops.rows,
            summary.warnings.len()
        )));
    }
    let profile = Profile::open(dir)?;
    let measured = measure::measure(&profile, &gate.judging.measure)?;
    Ok((measured, summary.strategy.name().to_owned()))
}

/// Writes `verdict` as asked, and the GitHub Actions annotations and step
/// summary when running there.
fn report(verdict: &Verdict, judging: &Judging) -> Result<(), GateError> {
    let text = match judging.format {
        GateFormat::Table => output::table(verdict, judging.all),
        GateFormat::Json => output::json(verdict),
        GateFormat::Markdown => output::markdown(verdict),
        GateFormat::Junit => output::junit(verdict),
    };
    let write = |path: &Path, text: &str, append: bool| {
        if append {
            crate::output::append(path)
        } else {
            crate::output::create(path)
        }
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| GateError::Write {
            path: path.to_owned(),
            source,
        })
    };
    match &judging.output {
        Some(path) => write(path, &text, false)?,
        None => print!("{text}"),
    }
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        print!("{}", output::github(verdict));
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            write(Path::new(&summary), &output::markdown(verdict), true)?;
        }
    }
    Ok(())
}

/// Runs the live gate. Returns whether it passed.
///
/// # Errors
/// A missing, malformed or foreign baseline; a command that cannot run or
/// fails; inexact counts; an environment that differs under
/// `--strict-env`; an output that cannot be written.
pub fn run(gate: &LiveGate, interrupted: &AtomicBool) -> Result<bool, GateError> {
    // The baseline first: a bad one costs no run.
    let previous = match Baseline::load(&gate.baseline) {
        Ok(b) => Some(b),
        Err(GateError::NoBaseline(_)) if gate.update => None,
        Err(err) => return Err(err),
    };
    let mut runs = Vec::new();
    let mut strategy = String::new();
    for i in 0..gate.repeat.max(1) {
        let dir = match &gate.keep_profiles {
            Some(keep) => keep.join(format!("run-{}", i + 1)),
            None => std::env::temp_dir().join(format!("cowprof-gate-{}-{i}", std::process::id())),
        };
        let _ = std::fs::remove_dir_all(&dir);
        let measured = run_once(gate, &dir, interrupted);
        if gate.keep_profiles.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let (measured, used) = measured?;
        strategy = used;
        runs.push(measured);
    }
    let (measured, spread) = measure::median(&runs);
    let environment = Environment::here(&strategy);
    let command = gate
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if gate.update {
        let fresh = Baseline::from_measurement(&measured, environment, command, previous.as_ref());
        fresh.save(&gate.baseline)?;
        eprintln!(
            "cowprof: gate: baseline {} written: {} metrics, median of {} runs",
            gate.baseline.display(),
            fresh.metrics.len(),
            runs.len()
        );
        return Ok(true);
    }
    let Some(baseline) = previous else {
        return Err(GateError::NoBaseline(gate.baseline.clone()));
    };
    let differences = baseline.environment.differences(&environment);
    if !differences.is_empty() && gate.strict_env {
        return Err(GateError::Environment(differences.join(", ")));
    }
    let mut verdict = verdict::judge(
        &baseline,
        &measured,
        &spread,
        gate.judging.defaults,
        gate.judging.strict,
    );
    if !differences.is_empty() {
        verdict.notes.push(format!(
            "the environment differs from the baseline's: {}",
            differences.join(", ")
        ));
    }
    report(&verdict, &gate.judging)?;
    Ok(verdict.passed())
}

/// The environment a profile was recorded in, as far as its manifest says.
fn recorded_in(profile: &Profile) -> Environment {
    Environment {
        kernel: profile.manifest.kernel.clone(),
        strategy: profile.manifest.strategy.clone(),
        ..Environment::default()
    }
}

/// `gate compare BASE NEW`: NEW judged against BASE as a baseline. Returns
/// whether it passed.
///
/// # Errors
/// When a profile cannot be read, or the report cannot be written.
pub fn compare(base: &Path, new: &Path, judging: &Judging) -> Result<bool, GateError> {
    let base = Profile::open(base)?;
    let new = Profile::open(new)?;
    let before = measure::measure(&base, &judging.measure)?;
    let after = measure::measure(&new, &judging.measure)?;
    let baseline = Baseline::from_measurement(&before, recorded_in(&base), Vec::new(), None);
    let mut verdict = verdict::judge(
        &baseline,
        &after,
        &BTreeMap::new(),
        judging.defaults,
        judging.strict,
    );
    let differences = recorded_in(&base).differences(&recorded_in(&new));
    if !differences.is_empty() {
        verdict.notes.push(format!(
            "the profiles were recorded in different environments: {}",
            differences.join(", ")
        ));
    }
    report(&verdict, judging)?;
    Ok(verdict.passed())
}
