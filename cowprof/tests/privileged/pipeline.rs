//! The recording pipeline as a library: reports mid-run, cleanup on early
//! failures, outputs checked before the target starts, and path records
//! that survive a full ring buffer.
use std::{path::Path, process::Command, sync::atomic::AtomicBool, time::Duration};

use cowprof::{
    collector::{CollectorOptions, Sinks},
    probe::{ProbeOptions, Strategy},
    record::{record, RecordOptions},
    recording::{RecordError, Recording, RecordingOptions},
    target::{Target, TargetError},
};
use cowprof_model::state::View;

use crate::harness::{
    bpf_available, cowprof, forced_probe, output, record_workload_with, scratch, workload,
    workload_args, Files,
};

/// The strategy `COWPROF_PROBE` forces, as the library takes it.
fn strategy() -> Option<Strategy> {
    forced_probe().map(|name| match name.as_str() {
        "fentry" => Strategy::Fentry,
        "kprobe" => Strategy::Kprobe,
        _ => Strategy::Tracepoint,
    })
}

fn probe_options() -> ProbeOptions {
    ProbeOptions {
        strategy: strategy(),
        ..ProbeOptions::default()
    }
}

/// This process's open BPF objects (programs, links, maps).
fn bpf_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("anon_inode:bpf"))
        .count()
}

#[test]
fn reports_mid_run_grow_while_the_workload_runs() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let mut argv = vec![workload().into_os_string()];
    argv.extend(
        workload_args(&files, "fork-paced", &["--pages", "8192"])
            .into_iter()
            .map(Into::into),
    );
    let (tx, rx) = cowprof::newest::channel();
    let mut recording = Recording::start(
        RecordingOptions {
            target: Target::Command(argv),
            probe: probe_options(),
            collector: CollectorOptions {
                views: vec![View::Mapping, View::Writer],
                tick: Some(Duration::from_millis(100)),
                top: Some(5),
                touch_map: false,
                process_mappings: false,
                ..CollectorOptions::default()
            },
            announce: true,
            command_output: None,
        },
        Sinks {
            reports: Some(tx),
            ..Sinks::default()
        },
    )
    .expect("recording starts");
    let next = || {
        rx.recv_timeout(crate::harness::TIMEOUT)
            .expect("a report on the tick")
    };
    let first = std::iter::repeat_with(next)
        .find(|r| r.events > 0)
        .expect("a report with faults");
    let second = std::iter::repeat_with(next)
        .find(|r| r.events > first.events)
        .expect("a report with more faults");
    assert!(
        recording
            .poll(Duration::ZERO)
            .expect("polling the command")
            .is_none(),
        "both reports came while the workload ran"
    );
    assert!(
        second.views[&View::Writer].len() <= 5,
        "capped to the top 5"
    );
    // Later reports only add: every kind's count grows or stays, and each
    // report's totals are its events.
    for kind in cowprof_common::Kind::ALL {
        assert!(
            second.totals.get(kind) >= first.totals.get(kind),
            "{kind:?}: {:?} then {:?}",
            first.totals,
            second.totals
        );
    }
    assert_eq!(first.totals.all(), first.events);
    assert_eq!(second.totals.all(), second.events);
    let (stop, exit) = recording
        .run_until(&AtomicBool::new(false), None)
        .expect("the workload ends");
    assert_eq!(exit, Some(0));
    let finished = recording.finish(stop, exit).expect("finish");
    let report = &finished.collected.report;
    assert!(report.events > second.events);
    assert_eq!(report.kernel.lost_events, 0);
    assert_eq!(report.totals, report.kernel_totals());
    let ranges = crate::harness::read_ranges(&files.report);
    let child_pid = ranges.iter().map(|r| r.child).max().expect("the report");
    let child = report
        .processes
        .iter()
        .find(|p| p.pid == child_pid)
        .expect("the child");
    // Its 8192 pages, and the few of its own the C library and its stack
    // take after the fork.
    assert!(
        (8192..=8192 + 32).contains(&child.counts.copies()),
        "{child:?}"
    );
}

#[test]
fn a_failure_after_the_probes_attached_leaves_nothing_attached() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    // A file that exists but cannot be executed: the exec fails after the
    // probes are attached and the collector runs.
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").expect("script");
    let before = bpf_fds();
    let err = record(
        &RecordOptions {
            top: None,
            debug_dirs: cowprof::resolve::symbols::DebugDirs::default(),
            target: Target::Command(vec![script.into_os_string()]),
            duration: None,
            events: Some(dir.path().join("events.jsonl")),
            summary: Some(dir.path().join("summary.json")),
            profile: None,
            json: true,
            probe: probe_options(),
            by: vec![View::Process],
        },
        &AtomicBool::new(false),
    )
    .expect_err("the exec fails");
    assert!(
        matches!(err, RecordError::Target(TargetError::Exec { .. })),
        "{err}"
    );
    assert_eq!(
        bpf_fds(),
        before,
        "programs, links or maps stayed open after the error"
    );
}

#[test]
fn outputs_are_checked_before_the_command_runs() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let marker = dir.path().join("ran");
    let mut outputs = vec![
        ("--summary", "/dev/null/summary.json"),
        ("--events", "/dev/null/events.jsonl"),
    ];
    // Profiles exist only where cowprof is built with them (not in the VM
    // guests).
    if cfg!(feature = "parquet") {
        outputs.push(("-o", "/dev/null/profile"));
    }
    for (option, path) in outputs {
        let out = output(
            Command::new(cowprof())
                .args(["record", option, path, "--", "touch"])
                .arg(&marker),
        );
        assert_eq!(out.status.code(), Some(6), "{option}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(path), "{stderr}");
        assert!(!marker.exists(), "{option}: the command ran");
    }
}

#[test]
fn bad_durations_are_one_line_usage_errors() {
    for duration in ["1e20", "-1", "nan"] {
        let out = output(Command::new(cowprof()).args(["record", "-a", "-d", duration]));
        assert_eq!(out.status.code(), Some(2), "{duration}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(duration), "{stderr}");
    }
}

#[test]
fn a_path_record_lost_to_a_full_ring_buffer_is_sent_again() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    // 64 files are first written during a storm that overruns a one-page
    // ring buffer, then again once it drained.
    let rec = record_workload_with(
        &files,
        &["--ringbuf-size", "4096", "--by", "mapping"],
        "storm-files",
        &["--pages", "16384"],
    );
    eprintln!(
        "file records lost: {}",
        rec.summary["probe_stats"]["file_records_lost"]
    );
    let dir = files
        .data
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .expect("scratch dir");
    let name = files.data.file_name().expect("name").to_string_lossy();
    let keys: Vec<&str> = rec.summary["views"]["mapping"]
        .as_array()
        .expect("mapping view")
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    for k in 0..64 {
        let path = Path::new(&dir).join(format!("{name}.{k}"));
        assert!(
            keys.contains(&path.to_str().expect("utf-8")),
            "{} is not named: {keys:?}",
            path.display()
        );
    }
}
