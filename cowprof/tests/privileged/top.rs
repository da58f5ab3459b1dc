//! `cowprof top` end to end, in a real terminal: tmux runs it, the test
//! reads the screen and types keys. The workloads' answers are known, so
//! the screen must show them exactly; every way out must leave the
//! terminal as it was.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{
    bpf_available, cowprof, forced_probe, in_vm, output, read_ranges, record_summary, scratch,
    workload, workload_args, Files,
};

/// How long the screen may take to show something.
const SCREEN_TIMEOUT: Duration = Duration::from_mins(2);

/// A tmux server of the test's own, with one window running top.
pub(crate) struct Tmux {
    tmux: cowprof_testkit::Tmux,
    dir: PathBuf,
}

impl Tmux {
    /// Runs `top_args` in a 200x50 window, in a shell that saves the
    /// terminal's settings before and after, and then prints top's exit
    /// code.
    pub(crate) fn start(dir: &Path, top_args: &[String]) -> Self {
        Self::start_with(dir, "", top_args)
    }

    /// [`Tmux::start`], with `env` (`NAME=VALUE `) before the command.
    fn start_with(dir: &Path, env: &str, top_args: &[String]) -> Self {
        let mut words = vec![
            cowprof().display().to_string(),
            "top".to_owned(),
            "--log-file".to_owned(),
            "top.log".to_owned(),
        ];
        words.extend(top_args.iter().cloned());
        let line = cowprof_testkit::shell_line(&words).expect("top's arguments");
        let script = format!(
            "cd {dir}; stty -g > stty.before; {env}{line}; echo top-exit=$?; stty -g > stty.after; sleep 600",
            dir = cowprof_testkit::shell_line(&[dir.display().to_string()]).expect("a directory"),
        );
        let tmux = cowprof_testkit::Tmux::start(&dir.join("tmux.sock"), 200, 50, &script)
            .expect("tmux runs (cargo xtask test installs it)");
        Self {
            tmux,
            dir: dir.to_owned(),
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        self.tmux.query(args)
    }

    fn screen(&self) -> String {
        self.tmux.screen()
    }

    /// Waits until the screen passes `test`, and returns it.
    pub(crate) fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}\nlog:\n{}",
                std::fs::read_to_string(self.dir.join("top.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        self.tmux.keys(keys);
    }

    /// Waits until top runs under the window's shell (before it has drawn
    /// anything), and returns its pid. The shell's first child may be the
    /// `stty` before it, or top's fork not yet exec'd: only a child whose
    /// name is cowprof's is top.
    pub(crate) fn wait_for_top(&self) -> u32 {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            if let Some(shell) = self.tmux.pane_pid() {
                let top = children(shell).into_iter().find(|child| {
                    std::fs::read_to_string(format!("/proc/{child}/comm"))
                        .is_ok_and(|comm| comm.trim_end() == "cowprof")
                });
                if let Some(top) = top {
                    return top;
                }
            }
            assert!(Instant::now() < deadline, "top never started");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// top's pid: the child of the window's shell.
    fn top_pid(&self) -> u32 {
        let shell = self.tmux.pane_pid().expect("the window's shell");
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .expect("children");
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("top runs under the shell")
    }

    /// Waits for top to exit; checks it left the alternate screen and the
    /// terminal's settings as they were. Returns its exit code.
    pub(crate) fn exited(&self) -> i32 {
        let screen = self.wait_for("top's exit", |s| s.contains("top-exit="));
        let code = screen
            .split("top-exit=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|c| c.parse().ok())
            .expect("an exit code");
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        while !self.dir.join("stty.after").exists() {
            assert!(Instant::now() < deadline, "the shell never went on");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            self.tmux(&["display-message", "-p", "#{alternate_on}"])
                .trim(),
            "0",
            "top left the alternate screen"
        );
        let read = |name| std::fs::read_to_string(self.dir.join(name)).expect(name);
        assert_eq!(
            read("stty.before"),
            read("stty.after"),
            "the terminal's settings (raw mode, echo) are restored"
        );
        code
    }
}

fn probe_args() -> Vec<String> {
    forced_probe()
        .map(|p| vec![format!("--probe={p}")])
        .unwrap_or_default()
}

/// Whether these tests can run: live BPF, and a terminal multiplexer (the
/// VM guests have none).
fn runnable() -> bool {
    bpf_available() && !in_vm()
}

/// The screen line that starts (after spaces) with `key`, split into words
/// after it.
fn row<'a>(screen: &'a str, key: &str) -> Option<Vec<&'a str>> {
    screen.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(key)?;
        Some(rest.split_whitespace().collect())
    })
}

#[test]
fn top_shows_the_known_counts_exports_them_and_quits_cleanly() {
    if !runnable() {
        return;
    }
    let files = Files::new();
    let dir = scratch();
    let mut args = probe_args();
    args.extend([
        "--export-dir".into(),
        dir.path().display().to_string(),
        "--".into(),
        workload().display().to_string(),
    ]);
    args.extend(workload_args(&files, "fork-anon", &["--pages", "512"]));
    let tmux = Tmux::start(dir.path(), &args);
    tmux.wait_for("the command's end", |s| s.contains("command exited with 0"));
    let ranges = read_ranges(&files.report);
    let range = ranges
        .iter()
        .find(|r| r.start != 0)
        .expect("the workload's range");
    let key = |pid| format!("[anon] {:#x}-{:#x} pid {pid}", range.start, range.end);
    // Mappings: MAPPING COW COPIES REUSES PROCS FIRST WRITER.
    tmux.keys(&["2"]);
    let screen = tmux.wait_for("the child's mapping", |s| {
        row(s, &key(range.child)).is_some()
    });
    let child = row(&screen, &key(range.child)).expect("child row");
    assert_eq!(child[..3], ["512", "512", "0"], "{screen}");
    let parent = row(&screen, &key(range.pid)).expect("parent row");
    assert_eq!(parent[..3], ["512", "0", "512"], "{screen}");
    // Processes: PID COMMAND COW COPIES REUSES ...
    tmux.keys(&["1"]);
    let screen = tmux.wait_for("the processes", |s| {
        row(s, &range.child.to_string()).is_some()
    });
    let child = row(&screen, &range.child.to_string()).expect("child process");
    assert_eq!(child[0], "cow-workload");
    let copies: u64 = child[2].replace(',', "").parse().expect("copies");
    assert!(
        copies >= 512,
        "the child copied its 512 pages at least: {screen}"
    );
    // Drill down: the child's own mappings.
    tmux.keys(&["/", &range.child.to_string(), "Enter", "Enter"]);
    let screen = tmux.wait_for("the child's mappings", |s| s.contains("mappings  sort"));
    let own = format!("[anon] {:#x}-{:#x}", range.start, range.end);
    assert_eq!(
        row(&screen, &own).expect("own row")[..3],
        ["512", "512", "0"]
    );
    // Export, and read the export back.
    tmux.keys(&["e"]);
    let screen = tmux.wait_for("the export", |s| s.contains("exported "));
    let exported = screen
        .lines()
        .find_map(|l| l.trim().split(" events to ").nth(1))
        .expect("the export's directory")
        .trim()
        .to_owned();
    let out = output(
        Command::new(cowprof())
            .args(["report", "--by", "mapping", "--format", "json"])
            .arg(&exported),
    );
    assert!(out.status.success(), "report reads the export");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let rows = report["views"]["mapping"].as_array().expect("mapping rows");
    let child_row = rows
        .iter()
        .find(|r| r["key"] == key(range.child))
        .expect("the child's mapping in the export");
    assert_eq!(child_row["counts"]["cow_copy_anon"], 512);
    // Resized to 80x24, it redraws to fit.
    tmux.tmux(&["resize-window", "-x", "80", "-y", "24"]);
    let screen = tmux.wait_for("the screen redrawn at 80x24", |s| {
        s.lines().count() == 24
            && s.starts_with("cowprof top")
            && s.contains(" 1 Processes")
            && s.lines().all(|l| l.chars().count() <= 80)
    });
    let footer = screen.lines().nth(23).unwrap_or_default();
    assert!(
        footer.contains("exported"),
        "the status line stays: {screen}"
    );
    tmux.keys(&["q"]);
    assert_eq!(tmux.exited(), 0);
    assert!(
        !Path::new(&format!("/tmp/cowprof-top-{}", std::process::id())).exists(),
        "a stray spool"
    );
}

#[test]
fn top_restores_the_terminal_on_sigterm_and_sigint() {
    if !runnable() {
        return;
    }
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = scratch();
        let mut args = probe_args();
        args.extend(["--".into(), "sleep".into(), "600".into()]);
        let tmux = Tmux::start(dir.path(), &args);
        tmux.wait_for("top's screen", |s| s.contains("1 Processes"));
        let pid = tmux.top_pid();
        let command = children(pid);
        assert_eq!(command.len(), 1, "top runs one command: {command:?}");
        // SAFETY: kill on a pid the test started.
        assert_eq!(
            unsafe { libc::kill(i32::try_from(pid).expect("pid"), signal) },
            0
        );
        assert_eq!(tmux.exited(), 0, "signal {signal} stops top as q does");
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        while running(command[0]) {
            assert!(Instant::now() < deadline, "top ends the command it started");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn top_restores_the_terminal_when_the_command_ends_and_on_a_panic() {
    if !runnable() {
        return;
    }
    let dir = scratch();
    let mut args = probe_args();
    args.extend(["--exit-when-done".into(), "--".into(), "true".into()]);
    let tmux = Tmux::start(dir.path(), &args);
    assert_eq!(tmux.exited(), 0);
    drop(tmux);
    let dir = scratch();
    let mut args = probe_args();
    args.extend(["--".into(), "sleep".into(), "600".into()]);
    let tmux = Tmux::start_with(dir.path(), "COWPROF_TOP_PANIC=1 ", &args);
    assert_eq!(tmux.exited(), 101, "a panic exits 101");
    let screen = tmux.screen();
    assert!(
        screen.contains("panicked"),
        "the panic message shows: {screen}"
    );
}

#[test]
fn replay_shows_the_totals_report_shows() {
    if !runnable() {
        return;
    }
    let files = Files::new();
    let dir = scratch();
    let profile = dir.path().join("profile");
    let mut args = vec![
        "-o".to_owned(),
        profile.display().to_string(),
        "--".to_owned(),
    ];
    args.push(workload().display().to_string());
    args.extend(workload_args(&files, "fork-anon", &["--pages", "256"]));
    record_summary(args);
    let out = output(
        Command::new(cowprof())
            .args(["report", "--format", "json"])
            .arg(&profile),
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let totals = &report["totals"];
    let cow: u64 = [
        "cow_copy_anon",
        "cow_copy_file",
        "cow_fill_file",
        "cow_zero",
        "cow_reuse",
    ]
    .iter()
    .map(|k| totals[k].as_u64().expect("count"))
    .sum();
    let tmux = Tmux::start(
        dir.path(),
        &[
            "--replay".into(),
            profile.display().to_string(),
            "--speed".into(),
            "100".into(),
        ],
    );
    let screen = tmux.wait_for("the replay's end", |s| s.contains("replay ended"));
    let shown = format!("total COW {}", thousands(cow));
    assert!(screen.contains(&shown), "{shown} expected:\n{screen}");
    for process in report["processes"].as_array().expect("processes") {
        let pid = process["pid"].as_u64().expect("pid").to_string();
        let cells = row(&screen, &pid).expect("the process's row");
        let copies = process["counts"]["cow_copy_anon"].as_u64().expect("copies")
            + process["counts"]["cow_copy_file"].as_u64().expect("copies")
            + process["counts"]["cow_fill_file"].as_u64().expect("copies")
            + process["counts"]["cow_zero"].as_u64().expect("copies");
        assert_eq!(cells[2], thousands(copies), "{screen}");
    }
    tmux.keys(&["q"]);
    assert_eq!(tmux.exited(), 0);
}

#[test]
fn bad_input_to_top_is_one_line_with_its_exit_code() {
    let dir = scratch();
    let not_a_profile = dir.path().join("empty");
    std::fs::create_dir(&not_a_profile).expect("dir");
    let not_a_profile = not_a_profile.display().to_string();
    for (args, code, says) in [
        (vec!["top"], 2, "needs one target"),
        (vec!["top", "--", "true"], 2, "needs a terminal"),
        (
            vec!["top", "--replay", &not_a_profile],
            8,
            "not a cowprof profile",
        ),
        (
            vec!["top", "--replay", &not_a_profile, "--speed", "0"],
            2,
            "speed",
        ),
    ] {
        // stdout is a pipe here: not a terminal.
        let out = output(Command::new(cowprof()).args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        if code != 2 || says != "speed" {
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        }
    }
}

/// The children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` runs (exists, and is not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn thousands(n: u64) -> String {
    cowprof::top::tables::thousands(n)
}
