//! `record --count-only`: per-process counts kept in the kernel, no events.
use serde_json::Value;

use crate::harness::{bpf_available, record_summary, workload, workload_args, Files};

const N: u64 = 4096;

/// Faults outside the range under test that the workload itself makes
/// (its stack, libc's data): a handful, bounded generously.
const SLACK: u64 = 64;

fn process(summary: &Value, pid: u32) -> &Value {
    summary["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no process {pid}: {summary}"))
}

#[test]
fn count_only_counts_per_process_without_events() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let mut args = vec!["--count-only".to_owned(), "--".to_owned()];
    args.push(workload().display().to_string());
    args.extend(workload_args(
        &files,
        "fork-anon",
        &["--pages", &N.to_string()],
    ));
    let summary = record_summary(args);
    let range = crate::harness::read_ranges(&files.report)
        .into_iter()
        .find(|r| r.start != 0)
        .expect("the workload's range");
    // Without addresses the whole process is counted: the N pages under test
    // plus the workload's own few.
    let child = &process(&summary, range.child)["counts"];
    let copies = child["cow_copy_anon"].as_u64().expect("count");
    assert!((N..N + SLACK).contains(&copies), "child: {child}");
    let parent = process(&summary, range.pid);
    let reuses = parent["counts"]["cow_reuse"].as_u64().expect("count");
    assert!((N..N + SLACK).contains(&reuses), "parent: {parent}");
    assert_eq!(parent["comm"], "cow-workload");
    // The kernel's totals are the per-process counts; no events were sent,
    // so there is no latency and nothing was lost.
    assert_eq!(summary["totals"], summary["kernel_totals"]);
    assert_eq!(summary["lost_events"], 0);
    assert_eq!(summary["latency"], serde_json::json!({}));
    assert_eq!(summary["probe_stats"]["process_counts_lost"], 0);
}
