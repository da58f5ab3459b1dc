//! Running one workload once under one configuration.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

/// The reference one-liner of the issue: a count per pid of user write
/// faults, with Debian's bpftrace.
pub const BPFTRACE_ONE_LINER: &str =
    "tracepoint:exceptions:page_fault_user /args->error_code & 2/ { @[pid] = count(); }";

/// What a workload prints and the benchmark compares.
#[derive(Clone, Copy)]
pub enum Metric {
    NsPerFault,
    NsPerFork,
}

impl Metric {
    pub fn prefix(self) -> &'static str {
        match self {
            Metric::NsPerFault => "ns_per_fault=",
            Metric::NsPerFork => "ns_per_fork=",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::NsPerFault => "ns per COW fault",
            Metric::NsPerFork => "ns per fork (child writes and exits)",
        }
    }
}

/// A workload: a command line and what it reports.
pub struct Workload {
    pub name: String,
    pub argv: Vec<String>,
    pub metric: Metric,
}

/// One configuration under test.
#[derive(Clone, Copy)]
pub enum Setup {
    Bare,
    /// `cowprof record ARGS -- workload`.
    Cowprof(&'static [&'static str]),
    /// The bpftrace one-liner running beside the workload.
    Bpftrace,
    /// `cowprof serve -- workload`, scraped every second.
    Serve,
}

pub struct Config {
    pub name: &'static str,
    pub setup: Setup,
    /// What `cowprof record` does with no options.
    pub default: bool,
    /// The ratio issue 14 sets for it, if any.
    pub target: Option<Target>,
}

/// A ratio not to exceed, against nothing attached or against bpftrace.
#[derive(Clone, Copy)]
pub struct Target {
    pub max: f64,
    pub against_bpftrace: bool,
}

/// Stands for a fresh profile directory in a configuration's arguments.
pub const PROFILE_DIR: &str = "{profile}";

const fn against_nothing(max: f64) -> Target {
    Target {
        max,
        against_bpftrace: false,
    }
}

pub const CONFIGS: [Config; 7] = [
    Config {
        name: "nothing attached",
        setup: Setup::Bare,
        default: false,
        target: None,
    },
    Config {
        name: "cowprof record --count-only",
        setup: Setup::Cowprof(&["--count-only", "--summary", "/dev/null"]),
        default: false,
        target: Some(Target {
            max: 1.0,
            against_bpftrace: true,
        }),
    },
    Config {
        name: "cowprof record (full attribution, no latency)",
        setup: Setup::Cowprof(&["--summary", "/dev/null"]),
        default: true,
        target: Some(against_nothing(1.10)),
    },
    Config {
        name: "cowprof record --latency (full attribution and latency)",
        setup: Setup::Cowprof(&["--latency", "--summary", "/dev/null"]),
        default: false,
        target: Some(against_nothing(1.20)),
    },
    Config {
        name: "cowprof record --by page -o DIR (Parquet profile)",
        setup: Setup::Cowprof(&["--by", "page", "--summary", "/dev/null", "-o", PROFILE_DIR]),
        default: false,
        target: Some(against_nothing(1.10)),
    },
    Config {
        name: "cowprof serve (exporter, scraped every second)",
        setup: Setup::Serve,
        default: false,
        target: Some(against_nothing(1.10)),
    },
    Config {
        name: "bpftrace one-liner",
        setup: Setup::Bpftrace,
        default: false,
        target: None,
    },
];

/// A running bpftrace, stopped with SIGINT on drop.
struct Bpftrace(Child);

impl Bpftrace {
    fn start() -> Result<Self> {
        let mut child = Command::new("bpftrace")
            .args(["-e", BPFTRACE_ONE_LINER])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace")?;
        let stdout = child.stdout.take().context("bpftrace stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // "Attaching 1 probe..." comes just before the attach.
        match lines.next() {
            Some(Ok(line)) if line.starts_with("Attaching") => {}
            other => bail!("bpftrace did not start: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(500));
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self(child))
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Runs `workload` once under `config`; returns its metric.
pub fn once(cowprof: &Path, config: &Config, workload: &Workload) -> Result<f64> {
    let mut tracer = None;
    let mut cmd = match config.setup {
        Setup::Serve => {
            let line = super::serve::once(cowprof, &workload.argv, workload.metric.prefix())?;
            return line
                .trim()
                .parse()
                .context("parsing the workload's measurement");
        }
        Setup::Bare => Command::new(&workload.argv[0]),
        Setup::Bpftrace => {
            tracer = Some(Bpftrace::start()?);
            Command::new(&workload.argv[0])
        }
        Setup::Cowprof(args) => {
            let mut cmd = Command::new(cowprof);
            cmd.arg("record");
            for arg in args {
                if *arg == PROFILE_DIR {
                    let dir = profile_dir();
                    let _ = std::fs::remove_dir_all(&dir);
                    cmd.arg(dir);
                } else {
                    cmd.arg(arg);
                }
            }
            cmd.arg("--").arg(&workload.argv[0]);
            cmd
        }
    };
    cmd.args(&workload.argv[1..]);
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    drop(tracer);
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let prefix = workload.metric.prefix();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .with_context(|| format!("{} printed no {prefix}", workload.name))?
        .trim()
        .parse()
        .context("parsing the workload's measurement")
}

/// Builds the image-write workload (a library with a 16 MiB `.data`) from
/// bench/workloads with `cc`.
pub fn build_image_write(src: &Path, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let status = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(out.join("libbigdata.so"))
        .arg(src.join("bigdata.c"))
        .status()
        .context("running cc")?;
    if !status.success() {
        bail!("cc could not build libbigdata.so");
    }
    let exe = out.join("image-write");
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(src.join("image-write.c"))
        .arg(format!("-L{}", out.display()))
        .args(["-lbigdata", "-Wl,-rpath,$ORIGIN"])
        .status()
        .context("running cc")?;
    if !status.success() {
        bail!("cc could not build image-write");
    }
    Ok(exe)
}

/// Where the profile configuration writes (replaced on every run).
pub fn profile_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cowprof-bench-profile-{}", std::process::id()))
}
