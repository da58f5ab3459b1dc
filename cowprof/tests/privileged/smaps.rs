//! Recordings of a child that stops itself (`fork-anon --stop`):
//! - oracle: cowprof's copies in a mapping equal the growth of that
//!   mapping's `Private_Dirty` in /proc/PID/smaps, read while it is stopped;
//! - the final flush: a recording stopped while the child sits stopped
//!   after its writes still reports its last fault, which no later event
//!   has completed (lazy completion).
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::harness::{bpf_available, cowprof, forced_probe, workload, workload_args, Files};

/// Waits until `pid` is stopped (state `T` in /proc/PID/stat).
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never stopped: {stat}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the `--stop` child has written its pages (its `written`
/// line is in the report) and stopped again.
fn wait_written(files: &Files, child: u32) {
    let deadline = Instant::now() + Duration::from_mins(1);
    let marker = format!("{{\"written\":{child}}}");
    while !std::fs::read_to_string(&files.report)
        .unwrap_or_default()
        .lines()
        .any(|l| l == marker)
    {
        assert!(Instant::now() < deadline, "pid {child} never wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_stopped(child);
}

/// `Private_Dirty` in kB of the mapping that contains `addr`.
fn private_dirty_kb(pid: u32, addr: u64) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            {
                inside = (start..end).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(kb) = line.strip_prefix("Private_Dirty:") {
                return kb.trim().trim_end_matches("kB").trim().parse().expect("kB");
            }
        }
    }
    panic!("no mapping of {addr:#x} in pid {pid}'s smaps")
}

/// The child's pid and the range under test, once it reported itself.
struct Stopping {
    child: u32,
    start: u64,
    end: u64,
}

/// Starts `cowprof record ARGS -- fork-anon --pages PAGES --stop` and
/// waits until the child reported itself and stopped before its writes.
fn record_stopping(files: &Files, args: &[&str], pages: &str) -> (std::process::Child, Stopping) {
    let recorder = Command::new(cowprof())
        .args(["record", "--events"])
        .arg(&files.events)
        .args(args)
        .args(forced_probe().map(|p| format!("--probe={p}")))
        .arg("--")
        .arg(workload())
        .args(workload_args(
            files,
            "fork-anon",
            &["--pages", pages, "--stop"],
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("cowprof record");
    let deadline = Instant::now() + Duration::from_mins(1);
    let line = loop {
        if let Some(line) = std::fs::read_to_string(&files.report)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
        {
            break line;
        }
        assert!(Instant::now() < deadline, "the workload never reported");
        std::thread::sleep(Duration::from_millis(5));
    };
    let report: serde_json::Value = serde_json::from_str(&line).expect("report");
    let child = u32::try_from(report["child"].as_u64().expect("child")).expect("pid");
    let stopping = Stopping {
        child,
        start: report["start"].as_u64().expect("start"),
        end: report["end"].as_u64().expect("end"),
    };
    wait_stopped(child);
    (recorder, stopping)
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid we were told about.
    unsafe { libc::kill(i32::try_from(pid).expect("pid"), signal) };
}

/// The child's copies in range, from the events file.
fn copies_in_range(files: &Files, s: &Stopping) -> u64 {
    std::fs::read_to_string(&files.events)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event"))
        .filter(|e| {
            e["pid"] == s.child
                && e["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("cow_") && k != "cow_reuse")
        })
        .filter(|e| {
            e["addr"]
                .as_u64()
                .is_some_and(|a| (s.start..s.end).contains(&a))
        })
        .count() as u64
}

#[test]
fn copies_equal_the_growth_of_private_dirty() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let (mut recorder, stopping) = record_stopping(&files, &["--summary", "/dev/null"], "300");
    let (child, start) = (stopping.child, stopping.start);
    let before = private_dirty_kb(child, start);
    signal(child, libc::SIGCONT);
    // It stops again after its writes.
    wait_written(&files, child);
    let after = private_dirty_kb(child, start);
    signal(child, libc::SIGCONT);
    assert!(crate::harness::wait(&mut recorder, "cowprof").success());
    let copies = copies_in_range(&files, &stopping);
    assert_eq!(copies, 300, "the child copied every page");
    assert_eq!(
        copies * 4,
        after - before,
        "Private_Dirty grew by the copies (kB)"
    );
}

/// Stopped with SIGINT while the child sits stopped after its 300 writes:
/// its last copy has not completed by any later event of its own, and the
/// final flush must report it. All 300 are in the events file.
#[test]
fn a_recording_stopped_mid_run_reports_each_task_s_last_fault() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let (mut recorder, stopping) = record_stopping(&files, &["--summary", "/dev/null"], "300");
    signal(stopping.child, libc::SIGCONT);
    wait_written(&files, stopping.child);
    signal(recorder.id(), libc::SIGINT);
    assert!(crate::harness::wait(&mut recorder, "cowprof").success());
    signal(stopping.child, libc::SIGCONT);
    assert_eq!(
        copies_in_range(&files, &stopping),
        300,
        "every copy, the last one included"
    );
}
