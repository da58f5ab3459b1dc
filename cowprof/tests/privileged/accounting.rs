//! System-wide recording, durations, self-exclusion and lost events.
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::harness::{
    bpf_available, cowprof, record_workload_with, workload, workload_args, Files,
};

fn sum(counts: &Value) -> u64 {
    counts
        .as_object()
        .expect("counts object")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum()
}

#[test]
fn system_wide_records_other_processes_but_never_itself() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    // cowprof takes 64 COW faults of its own once its probes are live
    // (COWPROF_SELF_FAULTS): the kernel side must leave them out.
    let mut recorder = Command::new(cowprof())
        .args(["record", "-a", "--json", "--summary"])
        .arg(&files.summary)
        .arg("--events")
        .arg(&files.events)
        .args(crate::harness::forced_probe().map(|p| format!("--probe={p}")))
        .env("COWPROF_SELF_FAULTS", "64")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cowprof -a");
    let mut stderr = BufReader::new(recorder.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("cowprof's first line");
    assert!(line.contains("all processes"), "{line}");
    let status = crate::harness::status(Command::new(workload()).args(workload_args(
        &files,
        "fork-anon",
        &["--pages", "256"],
    )));
    assert!(status.success());
    // Ctrl-C stops the recording and still writes the summary.
    let recorder_pid = recorder.id();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(i32::try_from(recorder_pid).expect("pid"), libc::SIGINT) };
    assert!(crate::harness::wait(&mut recorder, "cowprof -a").success());
    let rec = files.finish();
    assert_eq!(rec.summary["stop_reason"], "interrupted");
    let processes = rec.summary["processes"].as_array().expect("processes");
    assert!(
        processes.iter().all(|p| p["pid"] != recorder_pid),
        "cowprof traced itself"
    );
    assert!(
        rec.events.iter().all(|e| e["pid"] != recorder_pid),
        "cowprof sent events of its own"
    );
    // The workload's child was traced system-wide: exactly its 256 copies
    // in the range it wrote.
    let range = rec.range();
    assert_eq!(rec.count(range.child, "cow_copy_anon"), 256);
}

#[test]
fn events_that_do_not_fit_are_counted_as_lost() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    // A one-page ring buffer holds about 30 events; tens of thousands of
    // copies overrun it (fewer in the emulated VM guest, which is slow).
    let pages = if crate::harness::in_vm() {
        "16384"
    } else {
        "65536"
    };
    let rec = record_workload_with(
        &files,
        &["--ringbuf-size", "4096"],
        "fork-anon",
        &["--pages", pages],
    );
    let lost = rec.summary["lost_events"].as_u64().expect("lost_events");
    assert!(
        lost > 0,
        "a 4 KiB ring buffer cannot hold {pages} x 2 events"
    );
    // Every classified fault is either delivered or counted as lost.
    assert_eq!(
        sum(&rec.summary["totals"]) + lost,
        sum(&rec.summary["kernel_totals"])
    );
}

#[test]
fn recording_stops_after_the_duration() {
    if !bpf_available() {
        return;
    }
    let summary = crate::harness::record_summary(["-a", "--duration", "0.5"]);
    assert_eq!(summary["stop_reason"], "duration");
    // Stopped by the duration, not much later (the bound is the stop's
    // slack: a drain and the final flush).
    let duration = summary["duration_s"].as_f64().expect("duration");
    assert!((0.5..10.0).contains(&duration), "{duration} s");
}

#[test]
fn program_stats_count_every_run_and_the_summary_reports_its_cost() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    // With --latency every strategy completes each fault in one program.
    let rec = record_workload_with(
        &files,
        &["--program-stats", "--latency"],
        "fork-anon",
        &["--pages", "1024"],
    );
    let programs = rec.summary["program_stats"]
        .as_array()
        .expect("program_stats");
    let runs = |name: &str| {
        programs
            .iter()
            .find(|p| p["program"] == name)
            .and_then(|p| p["runs"].as_u64())
            .unwrap_or_else(|| panic!("no {name}: {programs:?}"))
    };
    // Every COW fault was classified by one completion run, whatever the
    // strategy; the fork probe ran for the workload's fork.
    let completion = match rec.summary["strategy"].as_str() {
        Some("tracepoint") => "fault_done",
        Some("fentry") => "fexit_handle_mm_fault",
        _ => "kretprobe_handle_mm_fault",
    };
    assert!(
        runs(completion) >= sum(&rec.summary["kernel_totals"]),
        "{programs:?}"
    );
    // The tp_btf program, or its classic twin from v7.0.
    let fork = ["sched_process_fork", "tp_sched_process_fork"]
        .into_iter()
        .find(|name| programs.iter().any(|p| p["program"] == *name))
        .unwrap_or("sched_process_fork");
    assert!(runs(fork) >= 1);
    assert!(programs.iter().all(|p| p["mean_ns"].as_f64().is_some()));
    let cost = &rec.summary["cost"];
    assert!(cost["attach_s"].as_f64().expect("attach_s") > 0.0);
    assert!(cost["peak_rss_kib"].as_u64().expect("peak_rss_kib") > 0);
    // Without it the tracepoint strategy completes faults lazily: no perf
    // event, and the final flush runs once per task.
    if rec.summary["strategy"] == "tracepoint" {
        let lazy = record_workload_with(
            &files,
            &["--program-stats"],
            "fork-anon",
            &["--pages", "1024"],
        );
        let names: Vec<&str> = lazy.summary["program_stats"]
            .as_array()
            .expect("program_stats")
            .iter()
            .filter_map(|p| p["program"].as_str())
            .collect();
        assert!(!names.contains(&"fault_done"), "{names:?}");
        assert!(names.contains(&"flush_pending"), "{names:?}");
        // The tp_btf program, or its classic twin from v7.0.
        assert!(
            names
                .iter()
                .any(|n| n.trim_start_matches("tp_") == "mmap_lock_start_locking"),
            "{names:?}"
        );
        // One thread, no mapping changes between its faults: every mapping
        // was looked up in the address space of its fault.
        assert_eq!(lazy.summary["probe_stats"]["late_lookups"], 0);
    }
}
