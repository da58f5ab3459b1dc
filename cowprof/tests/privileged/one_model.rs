//! One model behind every view: a recording that retires more exited
//! processes than the state keeps apart prints the same views, its folded
//! `(exited)` rows included, live, from `report`, and from the replay at
//! its end, however the replay got there.
use std::{collections::BTreeMap, path::Path};

use cowprof::profile::{read::Profile, timeline::Timeline};
use serde_json::Value;

use crate::{
    harness::{bpf_available, scratch, workload, workload_args, Files},
    profiles::{record_profile, report},
};

const VIEWS: &str = "mapping,image,section,symbol,page,writer";
/// Children: more than the 1,024 exited processes the state keeps apart.
const CHILDREN: usize = 1200;

/// A view's rows by key: everything a row says.
fn rows(rows: &Value) -> BTreeMap<String, Value> {
    rows.as_array()
        .unwrap_or_else(|| panic!("rows: {rows}"))
        .iter()
        .map(|r| (r["key"].as_str().expect("a key").to_owned(), r.clone()))
        .collect()
}

/// Processes by pid: name, counts and latency.
fn processes(v: &Value) -> BTreeMap<u64, Value> {
    v["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| {
            let pid = p["pid"].as_u64().expect("pid");
            (
                pid,
                serde_json::json!([p["comm"], p["counts"], p["latency_ns"]]),
            )
        })
        .collect()
}

fn assert_same(live: &Value, other: &Value, views: &str, what: &str) {
    assert_eq!(processes(live), processes(other), "{what}: processes");
    assert_eq!(live["totals"], other["totals"], "{what}: totals");
    assert_eq!(
        live["folded_processes"], other["folded_processes"],
        "{what}: folded processes"
    );
    for view in views.split(',') {
        assert_eq!(
            rows(&live["views"][view]),
            rows(&other["views"][view]),
            "{what}: view {view}"
        );
    }
}

/// The replay's report at its end, as JSON.
fn replayed(timeline: &mut Timeline) -> Value {
    let report = timeline.report_at(None).expect("the replay's end");
    serde_json::to_value(&report).expect("JSON")
}

fn record(dir: &Path, files: &Files) -> Value {
    // The children exit at once; the sweep retires exited processes every
    // two seconds, so the parent lingers for them to be retired.
    let mut workload_line = vec![workload().display().to_string()];
    workload_line.extend(workload_args(
        files,
        "many-comms",
        &["--pages", "2", "--read", &CHILDREN.to_string()],
    ));
    let command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "\"$@\" && sleep 7".to_owned(),
        "sh".to_owned(),
    ]
    .into_iter()
    .chain(workload_line)
    .collect::<Vec<_>>();
    record_profile(dir, VIEWS, &command)
}

fn end_total(end: &Value) -> u64 {
    end["totals"]
        .as_object()
        .expect("totals")
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

#[test]
fn report_and_replay_equal_the_live_summary_with_folded_processes() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let scratch = scratch();
    let dir = scratch.path().join("profile");
    let live = record(&dir, &files);
    let folded = live["folded_processes"].as_u64().unwrap_or(0);
    let kept = live["processes"].as_array().expect("processes").len();
    assert!(
        folded >= (CHILDREN - 1024) as u64 && folded <= CHILDREN as u64,
        "the recording folded the lightest exited children: {folded}"
    );
    assert!(
        live["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .any(|p| p["pid"] == 0 && p["comm"] == "(exited)"),
        "the (exited) entry"
    );
    assert_eq!(
        kept as u64 + folded - 1,
        live["total_processes"].as_u64().expect("total"),
        "kept and folded processes make every process"
    );
    let offline = report(&dir, &["--by", VIEWS]);
    assert_same(&live, &offline, VIEWS, "report");

    let mut timeline = Timeline::open(Profile::open(&dir).expect("the profile")).expect("replay");
    let end = replayed(&mut timeline);
    assert_same(&live, &end, "mapping,image,writer", "replay");
    // Forward in steps, back to the start and to the middle, then to the
    // end again: the same end.
    let length = timeline.profile().manifest.duration_s;
    for step in 1..=8 {
        let at = length * f64::from(step) / 8.0;
        timeline.report_at(Some(at)).expect("a moment");
    }
    let middle = timeline.report_at(Some(length / 2.0)).expect("the middle");
    let start = timeline.report_at(Some(0.0)).expect("the start");
    assert!(
        start.totals.all() < middle.totals.all() && middle.totals.all() <= end_total(&end),
        "the moments are in order"
    );
    let again = timeline.report_at(Some(length / 2.0)).expect("the middle");
    assert_eq!(
        serde_json::to_value(&middle).expect("JSON"),
        serde_json::to_value(&again).expect("JSON"),
        "a moment is the same however the replay got there"
    );
    assert_same(
        &end,
        &replayed(&mut timeline),
        "mapping,image,writer",
        "replay again",
    );
}
