//! Command-line interface, in perf's manner: `cowprof <verb> [target]`.
use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    probe::{Strategy, DEFAULT_RINGBUF_BYTES},
    target::Target,
};
use cowprof_model::state::View;

/// A copy-on-write fault profiler: who pays for COW faults, where, and how much.
#[derive(Debug, Parser)]
#[command(
    name = "cowprof",
    version,
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage, 3 privileges, 4 unsupported kernel, 5 target, 6 output, 7 inexact (with --exact), 8 not a profile, 9 corrupt profile, 10 profile of another schema version, 11 serve cannot listen, 12 advise cannot read an image."
)]
pub struct Cli {
    /// Write cowprof's own log to this file (level from `RUST_LOG`, default info).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Permission bits of the files cowprof writes (profiles, summaries,
    /// event streams, baselines, exports, logs), in octal; directories get
    /// search bits where read is given. They can name every process on the
    /// host, so by default only their owner can read them.
    #[arg(long, global = true, value_name = "OCTAL", default_value = "600", value_parser = crate::output::parse_mode)]
    pub mode: u32,
    /// Look for separate debug files (by build id, `.gnu_debuglink`) under
    /// this directory instead of `/usr/lib/debug` and `/lib/debug`, as gdb's
    /// `debug-file-directory`; repeat for more. Writers in stripped
    /// libraries are named through them.
    #[arg(long, global = true, value_name = "DIR")]
    pub debug_dir: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record COW faults of a target and print a per-process summary.
    Record(RecordArgs),
    /// Watch COW faults live in a full-screen view (processes, mappings,
    /// images, page maps, writers, latency), or replay a profile through
    /// it (`--replay DIR`). Press ? for the keys.
    Top(TopArgs),
    /// Gate CI on COW-fault counts: run CMD, measure its copies (per kind,
    /// process name, image, section, symbol) and compare them with a
    /// baseline file; or compare two profiles (`gate compare`). Exit codes:
    /// 0 within budget, 1 a regression, 2 a usage, input or environment
    /// error.
    Gate(GateArgs),
    /// Print the views of a recorded profile (`record -o DIR`), or compare
    /// two. Exit codes: 6 output, 8 not a profile, 9 corrupt file or
    /// manifest, 10 unknown schema version.
    Report(ReportArgs),
    /// Advise on a profile's images: the pages their written data costs
    /// against the fewest it needs packed together, the never-written
    /// symbols on written pages, the commit charge, the pages only the
    /// dynamic loader writes, and an ordering file for the linker. Exit
    /// codes: 2 usage, 6 output, 8 not a profile, 9 corrupt, 10 unknown
    /// schema version, 12 an image unreadable or not the one recorded.
    Advise(AdviseArgs),
    /// Serve COW-fault metrics to Prometheus (`/metrics`, in the
    /// Prometheus text format or OpenMetrics) and `/healthz`, on loopback
    /// unless `--listen` names another address. Traces every process
    /// unless -p or a command is given. Exit codes: 2 a bad --listen,
    /// 11 the address cannot be bound.
    Serve(ServeArgs),
    /// Show what this kernel supports, the strategy cowprof would choose,
    /// and how to fix what is missing. Exits 0 when some strategy works.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Which processes to trace.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Trace an existing process and its future children.
    #[arg(short, long, value_name = "PID", conflicts_with = "all_cpus")]
    pub pid: Option<u32>,
    /// Trace every process on the system (cowprof itself excepted).
    #[arg(short = 'a', long = "all", conflicts_with = "pid")]
    pub all_cpus: bool,
    /// Run this command and trace it and all its descendants.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

impl TargetArgs {
    /// The target, or `None` when none was given.
    #[must_use]
    pub fn target(&self) -> Option<Target> {
        match (self.pid, self.all_cpus, self.command.is_empty()) {
            (Some(pid), false, true) => Some(Target::Pid(pid)),
            (None, true, true) => Some(Target::SystemWide),
            (None, false, false) => Some(Target::Command(self.command.clone())),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line flags"
)]
pub struct RecordArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop after this many seconds.
    #[arg(short, long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Write a profile to the directory DIR (Parquet files and a manifest,
    /// for `cowprof report`, polars, `DuckDB` or pyarrow). It must be new or
    /// empty.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Write the summary to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Write every fault as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Ring buffer size in bytes (a power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Forward the eBPF programs' diagnostics (aya-log) to the log.
    #[arg(long)]
    pub debug_bpf: bool,
    /// Also report these views, comma-separated: process, mapping, image,
    /// section, symbol, page, writer, stack (image, section, symbol and page
    /// add the writable pages never written). Every view is kept while
    /// recording; this picks what is printed.
    #[arg(long, value_name = "VIEW,...", value_delimiter = ',', value_parser = parse_view, default_value = "process")]
    pub by: Vec<View>,
    /// Record each fault's user stack (frame pointers), aggregated per stack
    /// (`--by stack`).
    #[arg(long)]
    pub stacks: bool,
    /// Count faults per process and kind in the kernel, and send no events:
    /// the cheapest mode. No latency, mappings or attribution.
    #[arg(long, conflicts_with_all = ["events", "stacks", "by", "latency"])]
    pub count_only: bool,
    /// Report each eBPF program's runs and mean run time, from the kernel's
    /// BPF statistics (turned on while recording; they add two clock reads
    /// per run).
    #[arg(long)]
    pub program_stats: bool,
    /// Exit with code 7 when the accounting is incomplete: events lost, or
    /// the kernel's counters unreadable at the end.
    #[arg(long)]
    pub exact: bool,
    /// Measure each fault's latency, from entry to completion. Off by
    /// default: it reads the clock twice per fault and, on the tracepoint
    /// strategy, adds a perf event per fault for the completion. On the
    /// bench host that costs about 0.2 µs more per COW fault (+6% of a
    /// fault), and a third more per short-lived fork (README, Overhead).
    #[arg(long)]
    pub latency: bool,
    /// Probe strategy: the best available (auto), or force one.
    #[arg(long, value_parser = probe_choice(), default_value = "auto")]
    pub probe: ProbeChoice,
    /// Print only the N processes and rows of each view with the most COW
    /// faults (as `report --top`); the profile keeps every one.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
}

/// `top`'s arguments.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Replay the profile DIR (`record -o DIR`) instead of recording.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["pid", "all_cpus", "command"])]
    pub replay: Option<PathBuf>,
    /// Replay speed: 1 is real time, 10 ten times faster.
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = parse_speed, requires = "replay")]
    pub speed: f64,
    /// Where `e` writes profile directories.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub export_dir: PathBuf,
    /// No export: keep no spool of every event in $TMPDIR (it grows by about
    /// 6 bytes per fault, which a long `top -a` on a busy host may not want).
    #[arg(long, conflicts_with = "export_dir")]
    pub no_export: bool,
    /// Where the command's stdout and stderr go (the screen is top's).
    #[arg(long, value_name = "FILE", default_value = "/dev/null")]
    pub command_output: PathBuf,
    /// Leave when the command, the pid or the replay ends (else the last
    /// view stays until q).
    #[arg(long)]
    pub exit_when_done: bool,
    /// Ring buffer size in bytes (a power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Probe strategy: the best available (auto), or force one.
    /// Measure each fault's latency, from entry to completion. Off by
    /// default: it reads the clock twice per fault and, on the tracepoint
    /// strategy, adds a perf event per fault for the completion. On the
    /// bench host that costs about 0.2 µs more per COW fault (+6% of a
    /// fault), and a third more per short-lived fork (README, Overhead).
    #[arg(long)]
    pub latency: bool,
    #[arg(long, value_parser = probe_choice(), default_value = "auto")]
    pub probe: ProbeChoice,
}

/// `serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Listen on this address and port. The default is loopback only: the
    /// labels carry process and file names.
    #[arg(long, value_name = "HOST:PORT", default_value = crate::serve::DEFAULT_LISTEN)]
    pub listen: String,
    /// Label values (comms, images, and sections or symbols when asked
    /// for) with series of their own; the rest are summed under "other".
    #[arg(long, value_name = "K", default_value_t = 20)]
    pub top: usize,
    /// Keep a label value's series this long after the last process that
    /// used it has exited.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_duration)]
    pub grace: Duration,
    /// Also count faults per ELF section (`cowprof_cow_section_faults_total`).
    #[arg(long)]
    pub sections: bool,
    /// Also count faults per data symbol (`cowprof_cow_symbol_faults_total`).
    #[arg(long)]
    pub symbols: bool,
    /// Ring-buffer size in bytes (a power of two, at least a page).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Probe strategy.
    /// Measure each fault's latency, from entry to completion. Off by
    /// default: it reads the clock twice per fault and, on the tracepoint
    /// strategy, adds a perf event per fault for the completion. On the
    /// bench host that costs about 0.2 µs more per COW fault (+6% of a
    /// fault), and a third more per short-lived fork (README, Overhead).
    #[arg(long)]
    pub latency: bool,
    #[arg(long, value_parser = probe_choice(), default_value = "auto")]
    pub probe: ProbeChoice,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.01..=10_000.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "{text:?} is not a speed; use a number from 0.01 to 10000"
        )),
    }
}

/// How the gate judges (live and `compare`).
#[derive(Clone, Debug, Args)]
pub struct JudgeArgs {
    /// Growth a metric may show without failing, in its unit (pages,
    /// faults, bytes), when the baseline sets no `abs` of its own.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub abs: u64,
    /// Growth a metric may show, in percent of its expected value (rounded
    /// up), when the baseline sets no `pct`; the larger of the two counts.
    #[arg(long, value_name = "PCT", default_value_t = 1.0)]
    pub pct: f64,
    /// Rewrite image paths starting with FROM to start with TO (build
    /// directories, versions); repeatable, first match wins.
    #[arg(long = "path-map", value_name = "FROM=TO", value_parser = parse_path_map)]
    pub path_map: Vec<(String, String)>,
    /// Also gate the pages copied per data symbol.
    #[arg(long)]
    pub symbols: bool,
    /// Fail on a stale baseline too (metrics better than their tolerance).
    #[arg(long)]
    pub strict: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = GateFormatArg::Table)]
    pub format: GateFormatArg,
    /// List every metric in the table, passes included.
    #[arg(long)]
    pub all: bool,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `gate --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GateFormatArg {
    Table,
    Json,
    Markdown,
    Junit,
}

/// `gate`'s arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
pub struct GateArgs {
    #[command(subcommand)]
    pub compare: Option<GateCommand>,
    /// The baseline file (JSON).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write the baseline (or refresh it, keeping hand-set tolerances and
    /// bounds) from this run instead of judging it.
    #[arg(long)]
    pub update: bool,
    /// Run the command N times and gate on the median of each metric.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub repeat: u16,
    /// Keep each run's profile as DIR/run-N (for upload).
    #[arg(long, value_name = "DIR")]
    pub keep_profiles: Option<PathBuf>,
    /// Fail (exit 2) when the kernel, architecture, page size, THP mode or
    /// probe strategy differs from the baseline's.
    #[arg(long)]
    pub strict_env: bool,
    /// Probe strategy: the best available (auto), or force one.
    /// Measure each fault's latency, from entry to completion. Off by
    /// default: it reads the clock twice per fault and, on the tracepoint
    /// strategy, adds a perf event per fault for the completion. On the
    /// bench host that costs about 0.2 µs more per COW fault (+6% of a
    /// fault), and a third more per short-lived fork (README, Overhead).
    #[arg(long)]
    pub latency: bool,
    #[arg(long, value_parser = probe_choice(), default_value = "auto")]
    pub probe: ProbeChoice,
    /// Ring buffer size in bytes (a power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Record user stacks too, so a regression names the stacks that grew.
    #[arg(long)]
    pub stacks: bool,
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// The command to measure.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `gate`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Judge the profile NEW against the profile BASE (two `record -o`
    /// directories) with the live gate's metrics and tolerances.
    Compare {
        /// The baseline profile.
        base: PathBuf,
        /// The profile to judge.
        new: PathBuf,
        #[command(flatten)]
        judge: JudgeArgs,
    },
}

fn parse_path_map(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(from, _)| !from.is_empty())
        .map(|(from, to)| (from.to_owned(), to.to_owned()))
        .ok_or_else(|| format!("{text:?} is not FROM=TO"))
}

/// `report`'s arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The profile directory (`record -o DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The views to print, comma-separated (as `record --by`).
    #[arg(long, value_name = "VIEW,...", value_delimiter = ',', value_parser = parse_view, default_value = "process")]
    pub by: Vec<View>,
    /// Only this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Only processes with this name.
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,
    /// Only this image (its full path).
    #[arg(long, value_name = "PATH")]
    pub image: Option<String>,
    /// Only this kind of fault.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<cowprof_common::Kind>,
    /// Only faults this many seconds after the start or later.
    #[arg(long, value_name = "SECS")]
    pub since: Option<f64>,
    /// Only faults before this many seconds after the start.
    #[arg(long, value_name = "SECS")]
    pub until: Option<f64>,
    /// At most N rows per view.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Compare with the profile OTHER (the baseline): rows that grew or
    /// shrank, by how much, largest change first.
    #[arg(long, value_name = "OTHER")]
    pub diff: Option<PathBuf>,
}

/// `cowprof advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The profile directory (`record -o DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Only images whose path is, ends with or contains PATTERN.
    #[arg(long, value_name = "PATTERN")]
    pub image: Option<String>,
    /// Write an ordering file that packs the image's written data
    /// together (one image: choose it with --image).
    #[arg(long, value_name = "FILE")]
    pub ordering_file: Option<PathBuf>,
    /// The linker the ordering file and the prediction are for: lld
    /// (`--symbol-ordering-file`), gnu (gold's `--section-ordering-file`)
    /// or bfd (GNU ld 2.43+).
    #[arg(long, value_enum, default_value_t = crate::advise::ordering::Linker::Lld)]
    pub linker: crate::advise::ordering::Linker,
    /// At most N rows per list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AdviseFormat::Text)]
    pub format: AdviseFormat,
}

pub use crate::{advise::AdviseFormat, report::Format};

#[cfg(feature = "parquet")]
impl ReportArgs {
    /// What `report` is asked for.
    #[must_use]
    pub fn options(&self) -> crate::profile::verb::ReportOptions {
        crate::profile::verb::ReportOptions {
            dir: self.dir.clone(),
            by: self.by.clone(),
            filters: crate::profile::scan::Filters {
                pid: self.pid,
                comm: self.comm.clone(),
                image: self.image.clone(),
                kind: self.kind,
                since: self.since,
                until: self.until,
                ..crate::profile::scan::Filters::default()
            },
            top: self.top,
            format: self.format,
            diff: self.diff.clone(),
        }
    }
}

#[cfg(feature = "parquet")]
impl AdviseArgs {
    /// What `advise` is asked for.
    #[must_use]
    pub fn options(&self) -> crate::advise::AdviseOptions {
        crate::advise::AdviseOptions {
            dir: self.dir.clone(),
            image: self.image.clone(),
            ordering_file: self.ordering_file.clone(),
            linker: self.linker,
            top: self.top,
            format: self.format,
            debug_dirs: crate::resolve::symbols::DebugDirs::default(),
        }
    }
}

fn parse_kind(text: &str) -> Result<cowprof_common::Kind, String> {
    cowprof_common::Kind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = cowprof_common::Kind::ALL.iter().map(|k| k.name()).collect();
        format!("{text:?} is not a kind; use one of {}", names.join(", "))
    })
}

/// `--probe`: a strategy to force, or `auto` (none: the best the kernel
/// offers). Its names are `Strategy`'s own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeChoice(pub Option<Strategy>);

impl ProbeChoice {
    /// The forced strategy, `None` for auto.
    #[must_use]
    pub fn strategy(self) -> Option<Strategy> {
        self.0
    }
}

/// Parses `--probe`: `auto`, or a strategy by its name.
fn probe_choice() -> impl clap::builder::TypedValueParser<Value = ProbeChoice> {
    use clap::{
        builder::{PossibleValue, TypedValueParser as _},
        ValueEnum as _,
    };
    let names = std::iter::once(PossibleValue::new("auto")).chain(
        Strategy::value_variants()
            .iter()
            .filter_map(clap::ValueEnum::to_possible_value),
    );
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| ProbeChoice(Strategy::from_str(&name, true).ok()))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{text:?} must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} seconds is too long"))
}

fn parse_view(text: &str) -> Result<View, String> {
    View::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = View::ALL.iter().map(|v| v.name()).collect();
        format!("{text:?} is not a view; use one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        let Command::Record(r) = parse(&["cowprof", "record", "-p", "42"]).unwrap().command else {
            panic!("record expected")
        };
        assert_eq!(r.target.target(), Some(Target::Pid(42)));
        let Command::Record(r) = parse(&["cowprof", "record", "--", "sh", "-c", "true"])
            .unwrap()
            .command
        else {
            panic!("record expected")
        };
        assert_eq!(
            r.target.target(),
            Some(Target::Command(vec![
                "sh".into(),
                "-c".into(),
                "true".into()
            ]))
        );
        let Command::Record(r) = parse(&["cowprof", "record", "-a", "-d", "1.5"])
            .unwrap()
            .command
        else {
            panic!("record expected")
        };
        assert_eq!(r.target.target(), Some(Target::SystemWide));
        assert_eq!(r.duration, Some(Duration::from_millis(1500)));
        assert!(parse(&["cowprof", "record", "-p", "1", "-a"]).is_err());
        assert!(parse(&["cowprof", "record", "-d", "0"]).is_err());
        assert!(parse(&["cowprof", "record", "-a", "-d", "1e20"]).is_err());
        let Command::Record(r) = parse(&["cowprof", "record", "-a", "--by", "image,writer"])
            .unwrap()
            .command
        else {
            panic!("record expected")
        };
        assert_eq!(r.by, [View::Image, View::Writer]);
        assert!(parse(&["cowprof", "record", "-a", "--by", "nope"]).is_err());
    }
}
