//! Oracle: cowprof's copies in a mapping equal the growth of that mapping's
//! `Private_Dirty` in /proc/PID/smaps, read while the child is stopped.
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

#[test]
fn copies_equal_the_growth_of_private_dirty() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let mut recorder = Command::new(cowprof())
        .args(["record", "--summary", "/dev/null", "--events"])
        .arg(&files.events)
        .args(forced_probe().map(|p| format!("--probe={p}")))
        .arg("--")
        .arg(workload())
        .args(workload_args(
            &files,
            "fork-anon",
            &["--pages", "300", "--stop"],
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("cowprof record");
    // The child reports itself, then stops before writing.
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
    let start = report["start"].as_u64().expect("start");
    let end = report["end"].as_u64().expect("end");
    wait_stopped(child);
    let before = private_dirty_kb(child, start);
    // SAFETY: kill(2) with a pid we were told about.
    unsafe { libc::kill(i32::try_from(child).expect("pid"), libc::SIGCONT) };
    // It stops again after its writes.
    std::thread::sleep(Duration::from_millis(20));
    wait_stopped(child);
    let after = private_dirty_kb(child, start);
    // SAFETY: as above.
    unsafe { libc::kill(i32::try_from(child).expect("pid"), libc::SIGCONT) };
    assert!(crate::harness::wait(&mut recorder, "cowprof").success());
    let copies = std::fs::read_to_string(&files.events)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event"))
        .filter(|e| {
            e["pid"] == child
                && e["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("cow_") && k != "cow_reuse")
        })
        .filter(|e| {
            e["addr"]
                .as_u64()
                .is_some_and(|a| (start..end).contains(&a))
        })
        .count() as u64;
    assert_eq!(copies, 300, "the child copied every page");
    assert_eq!(
        copies * 4,
        after - before,
        "Private_Dirty grew by the copies (kB)"
    );
}
