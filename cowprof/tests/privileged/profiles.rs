//! Profiles on disk (`record -o DIR`) read back by `cowprof report`, by
//! pyarrow and by `DuckDB`; profiles moved elsewhere or damaged (killed
//! ones: `killpoints`).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::harness::{
    bpf_available, cowprof, forced_probe, output, python, scratch, workload, workload_args, Files,
};

const ALL_VIEWS: &str = "mapping,image,section,symbol,page,writer";

/// `record --json -o DIR --summary FILE --by BY -- command`: the summary.
pub(crate) fn record_profile(dir: &Path, by: &str, command: &[String]) -> Value {
    let summary = dir.with_extension("summary.json");
    let out = output(
        Command::new(cowprof())
            .args(["record", "--json", "--by", by, "-o"])
            .arg(dir)
            .arg("--summary")
            .arg(&summary)
            .args(forced_probe().map(|p| format!("--probe={p}")))
            .arg("--")
            .args(command),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(summary).expect("summary")).expect("summary JSON")
}

/// `report DIR --format json ARGS`.
pub(crate) fn report(dir: &Path, args: &[&str]) -> Value {
    let out = output(
        Command::new(cowprof())
            .arg("report")
            .arg(dir)
            .args(["--format", "json"])
            .args(args),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report JSON")
}

/// A view's rows by key: counts, copies, processes.
fn by_key(rows: &Value) -> BTreeMap<String, (Value, Value, Value)> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().expect("key").to_owned(),
                (
                    r["counts"].clone(),
                    r["copies"].clone(),
                    r["processes"].clone(),
                ),
            )
        })
        .collect()
}

fn assert_same_views(live: &Value, offline: &Value, views: &str) {
    for view in views.split(',') {
        assert_eq!(
            by_key(&live["views"][view]),
            by_key(&offline["views"][view]),
            "view {view}"
        );
    }
    let processes = |v: &Value| -> BTreeMap<u64, Value> {
        v["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .map(|p| (p["pid"].as_u64().expect("pid"), p["counts"].clone()))
            .collect()
    };
    assert_eq!(processes(live), processes(offline));
    assert_eq!(live["totals"], offline["totals"]);
}

fn fork_command(files: &Files, pages: &str) -> Vec<String> {
    let mut command = vec![workload().display().to_string()];
    command.extend(workload_args(files, "fork-anon", &["--pages", pages]));
    command
}

#[test]
fn report_prints_what_the_recording_printed() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let dir = scratch();
    let profile = dir.path().join("profile");
    let live = record_profile(&profile, ALL_VIEWS, &fork_command(&files, "1024"));
    let offline = report(&profile, &["--by", ALL_VIEWS]);
    assert_eq!(offline["complete"], true);
    assert_same_views(&live, &offline, ALL_VIEWS);
    // Filters: one kind of one process.
    let child = crate::harness::read_ranges(&files.report)[0].child;
    let filtered = report(
        &profile,
        &["--pid", &child.to_string(), "--kind", "cow_copy_anon"],
    );
    let processes = filtered["processes"].as_array().expect("processes");
    assert_eq!(processes.len(), 1);
    let live_child = live["processes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pid"] == child))
        .expect("the child");
    assert_eq!(
        filtered["totals"]["cow_copy_anon"],
        live_child["counts"]["cow_copy_anon"]
    );
    assert_eq!(filtered["totals"]["cow_reuse"], 0);
    // A filter no event passes (no pid is above 4194304): every view is
    // empty, and nothing fails.
    let none = report(&profile, &["--pid", "4194305", "--by", ALL_VIEWS]);
    assert!(
        none["processes"].as_array().is_some_and(Vec::is_empty),
        "{none}"
    );
    assert_eq!(none["totals"]["cow_copy_anon"], 0);
}

#[test]
fn pyarrow_and_duckdb_read_profiles_as_report_does() {
    if !bpf_available() {
        return;
    }
    let Some(python) = python() else {
        return;
    };
    let files = Files::new();
    let dir = scratch();
    let profile = dir.path().join("profile");
    record_profile(&profile, ALL_VIEWS, &fork_command(&files, "512"));
    let offline = report(&profile, &[]);
    let script = r#"
import json, sys, pathlib
import pyarrow.dataset as ds, pyarrow.compute as pc, pyarrow.parquet as pq, duckdb
d = pathlib.Path(sys.argv[1])
for f in list(d.glob("*.parquet")) + list((d / "events").glob("*.parquet")):
    pq.read_table(f)  # every file reads
events = ds.dataset(d / "events", format="parquet").to_table()
kinds = ["cow_copy_anon", "cow_copy_file", "cow_fill_file", "cow_zero", "cow_reuse", "write_notify"]
arrow = {k: events.filter(pc.equal(events["kind"], k)).num_rows for k in kinds}
con = duckdb.connect()
rows = con.execute(
    "select kind, count(*) from read_parquet(?) where kind = 'cow_copy_anon' or kind <> 'cow_copy_anon' group by kind",
    [str(d / "events" / "*.parquet")],
).fetchall()
duck = {k: 0 for k in kinds}
duck.update(dict(rows))
meta = pq.read_metadata(next((d / "events").glob("*.parquet"))).metadata
print(json.dumps({"arrow": arrow, "duckdb": duck, "version": meta[b"cowprof.schema_version"].decode()}))
"#;
    let out = output(Command::new(python).args(["-c", script]).arg(&profile));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        read["arrow"], offline["totals"],
        "pyarrow, filtering on kind"
    );
    assert_eq!(read["duckdb"], offline["totals"], "DuckDB");
    assert_eq!(read["version"], "1");
}

#[test]
fn a_profile_moved_elsewhere_keeps_its_names() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let Some(fixture) = crate::attribution::fixture() else {
        return;
    };
    let profile = dir.path().join("profile");
    let by = "symbol,writer,section,stack";
    let live = record_profile(
        &profile,
        by,
        &[fixture.path().join("fixture").display().to_string()],
    );
    // Another place, and the traced binaries gone.
    let moved = dir.path().join("moved");
    let copied = output(Command::new("cp").arg("-r").arg(&profile).arg(&moved));
    assert!(copied.status.success());
    drop(fixture);
    assert!(
        moved.join("stacks.parquet").exists(),
        "stacks were recorded"
    );
    let offline = report(&moved, &["--by", by]);
    assert_same_views(&live, &offline, by);
    let hot = offline["views"]["symbol"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["key"].as_str().is_some_and(|k| k.ends_with(".data hot")))
        })
        .expect("the hot symbol, named without the library");
    assert!(hot["first_writer"]
        .as_str()
        .is_some_and(|w| w.contains("write_hot")));
}

#[test]
fn damaged_profiles_are_one_line_errors_with_their_own_codes() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let dir = scratch();
    let good = dir.path().join("good");
    record_profile(&good, "mapping", &fork_command(&files, "256"));
    let copy = |name: &str| -> PathBuf {
        let to = dir.path().join(name);
        assert!(output(Command::new("cp").arg("-r").arg(&good).arg(&to))
            .status
            .success());
        to
    };
    let part = |p: &Path| p.join("events").join("part-00000.parquet");
    let truncated = copy("truncated");
    let bytes = std::fs::read(part(&truncated)).expect("part");
    std::fs::write(part(&truncated), &bytes[..bytes.len() / 2]).expect("truncate");
    let corrupt = copy("corrupt");
    let mut bytes = std::fs::read(part(&corrupt)).expect("part");
    let len = bytes.len();
    bytes[len - 8..len - 4].copy_from_slice(&[0xff; 4]);
    bytes[len - 4..].copy_from_slice(b"XXXX");
    std::fs::write(part(&corrupt), &bytes).expect("corrupt");
    let no_manifest = copy("no-manifest");
    std::fs::remove_file(no_manifest.join("profile.json")).expect("rm");
    let future = copy("future");
    let manifest = std::fs::read_to_string(future.join("profile.json")).expect("manifest");
    std::fs::write(
        future.join("profile.json"),
        manifest.replace("\"schema_version\": 1", "\"schema_version\": 99"),
    )
    .expect("write");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (profile, code, names) in [
        (&truncated, 9, part(&truncated)),
        (&corrupt, 9, part(&corrupt)),
        (&no_manifest, 8, no_manifest.clone()),
        (&future, 10, future.join("profile.json")),
        (&empty, 8, empty.clone()),
    ] {
        let out = output(Command::new(cowprof()).arg("report").arg(profile));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}: {stderr}",
            profile.display()
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(&names.display().to_string()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn report_diff_shows_what_grew() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    record_profile(&a, "writer", &fork_command(&Files::new(), "256"));
    record_profile(&b, "writer", &fork_command(&Files::new(), "512"));
    let diff = report(
        &b,
        &["--by", "writer", "--diff", a.to_str().expect("utf-8")],
    );
    let changes = diff["diff"]["writer"].as_array().expect("changes");
    let top = &changes[0];
    assert!(
        top["key"]
            .as_str()
            .is_some_and(|k| k.contains("write_volatile")),
        "the writing function grew most: {changes:?}"
    );
    // The child copies 256 more pages, the parent reuses 256 more.
    assert_eq!(top["delta"], 512, "{top}");
}
