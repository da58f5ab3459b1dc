//! Targets: `-p PID`, descendants of `-- sh -c`, and the summary document.
use crate::harness::{
    bpf_available, record_command, record_pid, record_workload, workload, workload_args, Files,
};

#[test]
fn pid_target_gives_the_same_counts_as_a_command() {
    if !bpf_available() {
        return;
    }
    let by_command = record_workload(&Files::new(), "fork-anon", &["--pages", "1024"]);
    let by_pid = record_pid(&Files::new(), "fork-anon", &["--pages", "1024"]);
    let per_kind = |rec: &crate::harness::Recording| {
        let r = rec.range();
        (
            rec.count(r.child, "cow_copy_anon"),
            rec.count(r.pid, "cow_reuse"),
        )
    };
    assert_eq!(per_kind(&by_command), (1024, 1024));
    assert_eq!(per_kind(&by_pid), per_kind(&by_command));
    assert_eq!(by_pid.summary["stop_reason"], "target_exited");
}

#[test]
fn descendants_of_a_shell_are_followed() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    // `; true` keeps sh from exec'ing the workload, so the workload is sh's
    // child and its fork is sh's grandchild.
    let script = format!(
        "'{}' {}; true",
        workload().display(),
        workload_args(&files, "fork-anon", &["--pages", "512"]).join(" ")
    );
    let rec = record_command(&files, &["sh".into(), "-c".into(), script]);
    rec.assert_child_copied_parent_reused(512);
    let comms: Vec<&str> = rec.summary["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["comm"].as_str())
        .collect();
    assert!(
        comms.contains(&"sh"),
        "the shell itself is followed: {comms:?}"
    );
}

#[test]
fn summary_reports_each_process_with_counts_and_lost_events() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "fork-anon", &["--pages", "256"]);
    let range = rec.range();
    let processes = rec.summary["processes"].as_array().expect("processes");
    let child = processes
        .iter()
        .find(|p| p["pid"] == range.child)
        .expect("the child is in the summary");
    assert_eq!(child["comm"], "cow-workload");
    assert!(
        child["counts"]["cow_copy_anon"].as_u64().expect("count") >= 256,
        "the child copied fewer than its 256 pages: {}",
        rec.summary
    );
    assert_eq!(rec.count(range.child, "cow_copy_anon"), 256, "in its range");
    assert_eq!(rec.summary["stop_reason"], "command_exited");
    assert_eq!(rec.summary["command_exit"], 0);
    if let Some(probe) = crate::harness::forced_probe() {
        assert_eq!(rec.summary["strategy"], probe.as_str());
    }
    assert!(rec.summary["lost_events"].is_u64());
    // Every process in the summary belongs to the workload.
    for p in processes {
        assert!(
            p["pid"] == range.pid || p["pid"] == range.child,
            "stray process {p}"
        );
    }
}

#[test]
fn top_prints_only_the_heaviest_processes_and_rows() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let mut args = vec![
        "--top".to_owned(),
        "1".into(),
        "--by".into(),
        "mapping".into(),
        "--".into(),
        crate::harness::workload().display().to_string(),
    ];
    args.extend(crate::harness::workload_args(
        &files,
        "fork-anon",
        &["--pages", "256"],
    ));
    let summary = crate::harness::record_summary(&args);
    let processes = summary["processes"].as_array().expect("processes");
    assert_eq!(processes.len(), 1, "{summary}");
    assert_eq!(summary["total_processes"], 2, "both are still counted");
    assert_eq!(
        summary["views"]["mapping"].as_array().map(Vec::len),
        Some(1)
    );
    // The one kept is the heaviest by COW faults: the parent, which
    // reuses the 256 pages its child copied, plus its own start-up faults
    // (the child only copies: 256 and its few of exec's).
    let range = crate::harness::read_ranges(&files.report)[0];
    assert_eq!(processes[0]["pid"], range.pid, "{summary}");
    let reused = processes[0]["counts"]["cow_reuse"].as_u64().unwrap_or(0);
    assert!((256..=300).contains(&reused), "{summary}");
    assert_eq!(
        summary["views"]["mapping"][0]["counts"]["cow_reuse"], 256,
        "the heaviest mapping is the parent's 256-page region: {summary}"
    );
}
