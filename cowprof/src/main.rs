//! The cowprof binary: parse, dispatch, and turn errors into one line and an
//! exit code.
use std::{
    io::{self, Write as _},
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use cowprof::{
    cli::{AdviseArgs, Cli, Command, RecordArgs, ReportArgs, ServeArgs, TopArgs},
    exit,
    probe::{ProbeError, ProbeOptions},
    record::{record, RecordOptions},
    recording::RecordError,
    resolve::symbols::DebugDirs,
    top::{self, Show, TopError, TopOptions},
};
use cowprof_model::state::View;

/// Raises the soft limit of open files to the hard limit: cowprof keeps
/// each image it attributes open, so its identity cannot change under it.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0
            && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
        }
    }
}

/// Where `top` logs when no `--log-file` is given: never on its screen.
fn top_log() -> Option<std::path::PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/state"))
        })?;
    let dir = state.join("cowprof");
    cowprof::output::private_dir(&dir).ok()?;
    Some(dir.join("top.log"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_fd_limit();
    cowprof::output::set_mode(cli.mode);
    let debug_dirs = DebugDirs::new(cli.debug_dir.clone());
    let log_file = match (&cli.command, &cli.log_file) {
        (Command::Top(_), None) => top_log(),
        (_, path) => path.clone(),
    };
    if let Err(err) = init_logging(log_file.as_deref()) {
        eprintln!("cowprof: error: {err:#}");
        return ExitCode::from(exit::OUTPUT);
    }
    match cli.command {
        Command::Record(args) => run_record(args, debug_dirs),
        Command::Top(args) => run_top(args, debug_dirs),
        Command::Gate(args) => run_gate(&args, debug_dirs),
        Command::Report(args) => run_report(&args),
        Command::Advise(args) => run_advise(&args, debug_dirs),
        Command::Serve(args) => run_serve(args, debug_dirs),
        Command::Doctor { json } => {
            let doctor = cowprof::doctor::Doctor::examine();
            let text = if json {
                doctor.to_json()
            } else {
                doctor.to_text()
            };
            if let Err(err) = io::stdout().write_all(text.as_bytes()) {
                return fail(exit::OUTPUT, &err);
            }
            if doctor.chosen.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cowprof", &mut io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => match clap_mangen::Man::new(Cli::command()).render(&mut io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(exit::OUTPUT, &err),
        },
    }
}

fn init_logging(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let file = cowprof::output::create(path)
        .with_context(|| format!("cannot create log file {}", path.display()))?;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Pipe(Box::new(file)))
        .init();
    Ok(())
}

fn fail(code: u8, err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("cowprof: error: {err}");
    ExitCode::from(code)
}

fn run_record(args: RecordArgs, debug_dirs: DebugDirs) -> ExitCode {
    let Some(target) = args.target.target() else {
        return fail(
            exit::USAGE,
            &"record needs one target: -p PID, -a, or -- CMD [ARGS...]",
        );
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    if let Err(err) = ctrlc::set_handler(move || flag.store(true, Ordering::Release)) {
        return fail(
            exit::FAILURE,
            &format!("cannot install the Ctrl-C handler: {err}"),
        );
    }
    let options = RecordOptions {
        target,
        duration: args.duration,
        events: args.events,
        summary: args.summary,
        profile: args.output,
        json: args.json,
        probe: ProbeOptions {
            system_wide: false,
            ringbuf_bytes: args.ringbuf_size,
            debug: args.debug_bpf,
            strategy: args.probe.strategy(),
            stacks: args.stacks || args.by.contains(&View::Stack),
            count_only: args.count_only,
            program_stats: args.program_stats,
            latency: args.latency,
        },
        by: args.by,
        top: args.top,
        debug_dirs,
    };
    let summary = match record(&options, &interrupted) {
        Ok(summary) => summary,
        Err(err) => return fail(record_exit_code(&err), &err),
    };
    if let Some(err) = &summary.events_file_error {
        eprintln!("cowprof: error: the events file is partial: {err}");
        return ExitCode::from(exit::OUTPUT);
    }
    if args.exact && !summary.exact() {
        eprintln!(
            "cowprof: error: the accounting is incomplete ({} events lost, {} warnings); see the summary",
            summary.lost_events,
            summary.warnings.len()
        );
        return ExitCode::from(exit::INEXACT);
    }
    ExitCode::SUCCESS
}

/// The probes of the live verbs (`top`, `serve`): full attribution, no
/// stacks.
fn live_probe(ringbuf_bytes: u32, probe: cowprof::cli::ProbeChoice, latency: bool) -> ProbeOptions {
    ProbeOptions {
        system_wide: false,
        ringbuf_bytes,
        debug: false,
        strategy: probe.strategy(),
        stacks: false,
        count_only: false,
        program_stats: false,
        latency,
    }
}

fn run_top(args: TopArgs, debug_dirs: DebugDirs) -> ExitCode {
    let show = match (&args.replay, args.target.target()) {
        (Some(dir), None) => Show::Replay {
            dir: dir.clone(),
            speed: args.speed,
        },
        (None, Some(target)) => Show::Live {
            target,
            probe: live_probe(args.ringbuf_size, args.probe, args.latency),
        },
        _ => {
            return fail(
                exit::USAGE,
                &"top needs one target: -p PID, -a, -- CMD [ARGS...], or --replay DIR",
            )
        }
    };
    let options = TopOptions {
        show,
        export_dir: (!args.no_export).then_some(args.export_dir),
        command_output: args.command_output,
        exit_when_done: args.exit_when_done,
        debug_dirs,
    };
    match top::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = match &err {
                TopError::Record(err) => record_exit_code(err),
                #[cfg(feature = "parquet")]
                TopError::Profile(err) => err.exit_code(),
                TopError::Terminal(_) => exit::USAGE,
                TopError::Thread(_) => exit::FAILURE,
                TopError::NoProfiles => exit::USAGE,
            };
            fail(code, &err)
        }
    }
}

fn run_serve(args: ServeArgs, debug_dirs: DebugDirs) -> ExitCode {
    use cowprof::serve::{self, exporter::Limits, ServeError, ServeOptions};
    let target = if args.target.pid.is_none() && args.target.command.is_empty() {
        Some(cowprof::target::Target::SystemWide)
    } else {
        args.target.target()
    };
    let Some(target) = target else {
        return fail(
            exit::USAGE,
            &"serve takes one target: -p PID, -a (the default) or -- CMD",
        );
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    if let Err(err) = ctrlc::set_handler(move || flag.store(true, Ordering::Release)) {
        return fail(exit::FAILURE, &format!("cannot handle Ctrl-C: {err}"));
    }
    let options = ServeOptions {
        listen: args.listen,
        target,
        probe: live_probe(args.ringbuf_size, args.probe, args.latency),
        limits: Limits {
            top: args.top,
            grace: args.grace,
            sections: args.sections,
            symbols: args.symbols,
        },
        debug_dirs,
    };
    match serve::run(&options, &interrupted) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = match &err {
                ServeError::BadListen(_) => exit::USAGE,
                ServeError::Listen { .. } => exit::LISTEN,
                ServeError::Record(err) => record_exit_code(err),
                ServeError::Thread(_) => exit::FAILURE,
            };
            fail(code, &err)
        }
    }
}

/// The gate's own exit codes: 0 pass, 1 regression, 2 anything else.
#[cfg(feature = "parquet")]
fn run_gate(args: &cowprof::cli::GateArgs, debug_dirs: DebugDirs) -> ExitCode {
    use cowprof::{
        cli::{GateCommand, GateFormatArg, JudgeArgs},
        gate::{self, baseline::Tolerance, measure::MeasureOptions, GateFormat, Judging},
    };
    const ERROR: u8 = 2;
    let judging = |j: &JudgeArgs| Judging {
        measure: MeasureOptions {
            path_map: j.path_map.clone(),
            symbols: j.symbols,
            exclude_comm: gate::measure::own_comm(),
        },
        defaults: Tolerance {
            abs: j.abs,
            pct: j.pct,
        },
        strict: j.strict,
        format: match j.format {
            GateFormatArg::Table => GateFormat::Table,
            GateFormatArg::Json => GateFormat::Json,
            GateFormatArg::Markdown => GateFormat::Markdown,
            GateFormatArg::Junit => GateFormat::Junit,
        },
        all: j.all,
        output: j.output.clone(),
    };
    let result = if let Some(GateCommand::Compare { base, new, judge }) = &args.compare {
        gate::compare(base, new, &judging(judge))
    } else {
        let Some(baseline) = args.baseline.clone() else {
            return fail(ERROR, &"gate needs --baseline FILE (and -- CMD [ARGS...])");
        };
        if args.command.is_empty() {
            return fail(ERROR, &"gate needs a command to measure: -- CMD [ARGS...]");
        }
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&interrupted);
        if let Err(err) = ctrlc::set_handler(move || flag.store(true, Ordering::Release)) {
            return fail(ERROR, &format!("cannot install the Ctrl-C handler: {err}"));
        }
        let live = gate::LiveGate {
            command: args.command.clone(),
            baseline,
            update: args.update,
            strict_env: args.strict_env,
            repeat: usize::from(args.repeat),
            keep_profiles: args.keep_profiles.clone(),
            probe: ProbeOptions {
                system_wide: false,
                ringbuf_bytes: args.ringbuf_size,
                debug: false,
                strategy: args.probe.strategy(),
                stacks: args.stacks,
                count_only: false,
                program_stats: false,
                latency: args.latency,
            },
            judging: judging(&args.judge),
            debug_dirs,
        };
        gate::run(&live, &interrupted)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => fail(ERROR, &err),
    }
}

#[cfg(not(feature = "parquet"))]
fn run_gate(_: &cowprof::cli::GateArgs, _: DebugDirs) -> ExitCode {
    fail(2, &RecordError::NoProfiles)
}

fn record_exit_code(err: &RecordError) -> u8 {
    match err {
        RecordError::Probe(ProbeError::Privileges) => exit::PRIVILEGES,
        RecordError::Probe(
            ProbeError::Btf(_)
            | ProbeError::Load(_)
            | ProbeError::Unavailable { .. }
            | ProbeError::NoStrategy(_),
        ) => exit::UNSUPPORTED,
        RecordError::Probe(ProbeError::RingbufSize(_)) => exit::USAGE,
        RecordError::Probe(ProbeError::Follow { .. })
        | RecordError::Thread(_)
        | RecordError::Collect(_) => exit::FAILURE,
        RecordError::Target(_) => exit::TARGET,
        RecordError::Output { .. } => exit::OUTPUT,
        #[cfg(feature = "parquet")]
        RecordError::Profile(err) => err.exit_code(),
        RecordError::NoProfiles => exit::USAGE,
    }
}

#[cfg(feature = "parquet")]
fn run_report(args: &ReportArgs) -> ExitCode {
    match cowprof::profile::verb::run(&args.options(), &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(err.exit_code(), &err),
    }
}

#[cfg(not(feature = "parquet"))]
fn run_report(_: &ReportArgs) -> ExitCode {
    fail(exit::USAGE, &RecordError::NoProfiles)
}

#[cfg(feature = "parquet")]
fn run_advise(args: &AdviseArgs, debug_dirs: DebugDirs) -> ExitCode {
    let options = cowprof::advise::AdviseOptions {
        debug_dirs,
        ..args.options()
    };
    match cowprof::advise::run(&options, &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(err.exit_code(), &err),
    }
}

#[cfg(not(feature = "parquet"))]
fn run_advise(_: &AdviseArgs, _: DebugDirs) -> ExitCode {
    fail(exit::USAGE, &RecordError::NoProfiles)
}
