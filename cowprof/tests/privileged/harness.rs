//! Running cowprof and the workload, and counting events in a range.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

/// How long any command a test runs may take before the test fails rather
/// than hangs CI (the emulated VM guests are slow).
pub const TIMEOUT: Duration = Duration::from_mins(10);

/// Waits for `child`, killing it and failing the test past [`TIMEOUT`].
pub fn wait(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion, with its output, within [`TIMEOUT`].
pub fn output(cmd: &mut Command) -> Output {
    output_with_input(cmd, None)
}

/// Runs `cmd` with `input` on its stdin (when given; else an empty one) to
/// completion, with its output, within [`TIMEOUT`] (`assert_cmd` kills it
/// past that, and the test fails). `cmd` is taken: it runs once.
pub fn output_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Output {
    let what = format!("{cmd:?}");
    let mut run = assert_cmd::Command::from_std(std::mem::replace(cmd, Command::new("true")));
    run.timeout(TIMEOUT);
    if let Some(input) = input {
        run.write_stdin(input.to_vec());
    }
    let started = Instant::now();
    let out = run.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        started.elapsed() < TIMEOUT,
        "{what} did not finish within {TIMEOUT:?}"
    );
    out
}

/// Runs `cmd` to completion within [`TIMEOUT`]; its exit status.
pub fn status(cmd: &mut Command) -> ExitStatus {
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    wait(&mut child, &what)
}

use serde_json::Value;

/// Whether live BPF tests can run here. Panics instead of skipping when
/// `COWPROF_REQUIRE_BPF=1`.
pub fn bpf_available() -> bool {
    let reason = if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("kernel BTF missing")
    } else if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) if std::env::var("COWPROF_REQUIRE_BPF").as_deref() == Ok("1") => {
            panic!("COWPROF_REQUIRE_BPF=1 but BPF is unavailable: {reason}")
        }
        Some(reason) => {
            eprintln!("skipping live BPF test: {reason}");
            false
        }
    }
}

/// The cowprof binary: `COWPROF_BIN` (the VM matrix sets it), else cargo's.
pub fn cowprof() -> PathBuf {
    std::env::var_os("COWPROF_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cowprof")),
        PathBuf::from,
    )
}

/// The strategy forced with `COWPROF_PROBE` (the VM matrix runs the suite once
/// per strategy), or `None` for cowprof's own choice.
pub fn forced_probe() -> Option<String> {
    std::env::var("COWPROF_PROBE")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Whether the suite runs inside the VM matrix's minimal guest.
pub fn in_vm() -> bool {
    std::env::var_os("COWPROF_VM").is_some()
}

/// The workload example: `COWPROF_WORKLOAD`, else the one `cargo test`
/// built next to this test binary.
pub fn workload() -> PathBuf {
    if let Some(path) = std::env::var_os("COWPROF_WORKLOAD") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join("cow-workload");
    assert!(
        path.is_file(),
        "{} missing: build with `cargo test`",
        path.display()
    );
    path
}

/// A scratch directory on a disk filesystem (not tmpfs, which has no
/// write-notify), removed on drop.
pub fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("COWPROF_SCRATCH")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    tempfile::tempdir_in(base).expect("scratch dir")
}

/// `cowprof record --json [--probe=…] ARGS`, which must succeed: the summary
/// it prints.
pub fn record_summary<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Value {
    let out = output(
        Command::new(cowprof())
            .args(["record", "--json"])
            .args(forced_probe().map(|p| format!("--probe={p}")))
            .args(args),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

/// One line of the workload's `--report`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub pid: u32,
    pub child: u32,
    pub start: u64,
    pub end: u64,
}

/// A finished recording.
#[derive(Debug)]
pub struct Recording {
    pub summary: Value,
    pub events: Vec<Value>,
    pub ranges: Vec<Range>,
}

impl Recording {
    /// Events per (pid, kind) inside the reported ranges.
    pub fn in_range(&self) -> BTreeMap<(u32, String), u64> {
        let mut counts = BTreeMap::new();
        for event in &self.events {
            let addr = event["addr"].as_u64().expect("addr");
            if self.ranges.iter().any(|r| (r.start..r.end).contains(&addr)) {
                let pid = u32::try_from(event["pid"].as_u64().expect("pid")).expect("pid fits");
                let kind = event["kind"].as_str().expect("kind").to_owned();
                *counts.entry((pid, kind)).or_default() += 1;
            }
        }
        counts
    }

    /// Count of `kind` by `pid` in range.
    pub fn count(&self, pid: u32, kind: &str) -> u64 {
        self.in_range()
            .get(&(pid, kind.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The `fork-anon` answer in range: the child copied `n` pages, and
    /// the parent, alone with them again, reused all `n`.
    pub fn assert_child_copied_parent_reused(&self, n: u64) {
        let range = self.range();
        let seen = self.in_range();
        let stats = &self.summary["probe_stats"];
        assert_eq!(
            self.count(range.child, "cow_copy_anon"),
            n,
            "{seen:?}; probe_stats {stats}"
        );
        assert_eq!(
            self.count(range.pid, "cow_reuse"),
            n,
            "{seen:?}; probe_stats {stats}"
        );
    }

    /// The single range the workload reported.
    pub fn range(&self) -> Range {
        let ranges: Vec<_> = self.ranges.iter().filter(|r| r.start != 0).collect();
        assert_eq!(ranges.len(), 1, "one range expected: {:?}", self.ranges);
        *ranges[0]
    }
}

pub fn read_ranges(path: &Path) -> Vec<Range> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("report line"))
        // `{"written":CHILD}` lines (`--stop`) mark a moment, not a range.
        .filter(|v| v.get("written").is_none())
        .map(|v| {
            let field = |name: &str| v[name].as_u64().expect("report field");
            Range {
                pid: u32::try_from(field("pid")).expect("pid"),
                child: u32::try_from(field("child")).expect("child"),
                start: field("start"),
                end: field("end"),
            }
        })
        .collect()
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("events file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("event line"))
        .collect()
}

/// Where a recording's files go.
pub struct Files {
    _dir: tempfile::TempDir,
    pub events: PathBuf,
    pub report: PathBuf,
    pub summary: PathBuf,
    pub data: PathBuf,
}

impl Files {
    pub fn new() -> Self {
        let dir = scratch();
        let path = |name: &str| dir.path().join(name);
        Self {
            events: path("events.jsonl"),
            report: path("report.jsonl"),
            summary: path("summary.json"),
            data: path("data.bin"),
            _dir: dir,
        }
    }

    pub fn finish(&self) -> Recording {
        let summary = std::fs::read_to_string(&self.summary).expect("summary file");
        Recording {
            summary: serde_json::from_str(&summary).expect("summary JSON"),
            events: read_events(&self.events),
            ranges: read_ranges(&self.report),
        }
    }
}

fn record_args(files: &Files) -> Vec<String> {
    let probe = forced_probe().map(|p| format!("--probe={p}"));
    vec![
        "record".into(),
        probe.unwrap_or_else(|| "--probe=auto".into()),
        "--json".into(),
        "--summary".into(),
        files.summary.display().to_string(),
        "--events".into(),
        files.events.display().to_string(),
    ]
}

/// Workload arguments, with `--report` and `--file` pointed at `files`.
pub fn workload_args(files: &Files, mode: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![mode.to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend([
        "--report".to_owned(),
        files.report.display().to_string(),
        "--file".to_owned(),
        files.data.display().to_string(),
    ]);
    args
}

/// `cowprof record -- <command...>`.
pub fn record_command(files: &Files, command: &[String]) -> Recording {
    record_command_with(files, &[], command)
}

/// `cowprof record <options...> -- <command...>`.
pub fn record_command_with(files: &Files, options: &[&str], command: &[String]) -> Recording {
    let status = status(
        Command::new(cowprof())
            .args(record_args(files))
            .args(options)
            .arg("--")
            .args(command),
    );
    assert!(status.success(), "cowprof record failed: {status}");
    files.finish()
}

/// `cowprof record -- cow-workload <mode> <extra...>`.
pub fn record_workload(files: &Files, mode: &str, extra: &[&str]) -> Recording {
    record_workload_with(files, &[], mode, extra)
}

/// `cowprof record <options...> -- cow-workload <mode> <extra...>`.
pub fn record_workload_with(
    files: &Files,
    options: &[&str],
    mode: &str,
    extra: &[&str],
) -> Recording {
    let mut command = vec![workload().display().to_string()];
    command.extend(workload_args(files, mode, extra));
    record_command_with(files, options, &command)
}

/// Starts the workload with `--wait`, attaches `cowprof record -p`, waits
/// until cowprof says it is recording, then lets the workload run.
pub fn record_pid(files: &Files, mode: &str, extra: &[&str]) -> Recording {
    let mut workload = Command::new(workload())
        .args(workload_args(files, mode, extra))
        .arg("--wait")
        .stdin(Stdio::piped())
        .spawn()
        .expect("starting the workload");
    let mut cowprof = Command::new(cowprof())
        .args(record_args(files))
        .args(["-p", &workload.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cowprof");
    let mut stderr = BufReader::new(cowprof.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("cowprof's first line");
    assert!(
        line.contains("recording pid"),
        "unexpected cowprof output: {line}"
    );
    workload
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("releasing the workload");
    assert!(wait(&mut workload, "the workload").success());
    let status = wait(&mut cowprof, "cowprof record -p");
    assert!(status.success(), "cowprof record -p failed: {status}");
    files.finish()
}

/// The test Python with pyarrow, `DuckDB`, junitparser, markdown-it-py and
/// `prometheus_client` (`cargo xtask test` makes it).
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("COWPROF_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("COWPROF_REQUIRE_BPF").as_deref() == Ok("1") => {
            panic!("COWPROF_PYTHON is not set: run the suite with `cargo xtask test`")
        }
        None => {
            eprintln!("skipping the Python readers: COWPROF_PYTHON is not set");
            None
        }
    }
}
