//! What profiles on disk cost: the writer alone on synthetic events (rate,
//! bytes per event, memory), bytes per event of a real fork-write storm,
//! and the two-writer storm recorded with `-o`.
use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cowprof-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("parsing its JSON")
}

/// Bytes of the events parts of the profile in `dir`, and its events.
fn parts(dir: &Path) -> Result<(u64, u64)> {
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("profile.json"))?)?;
    let bytes = std::fs::read_dir(dir.join("events"))?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok((bytes, manifest["events_written"].as_u64().unwrap_or(0)))
}

/// Runs the profile benchmarks; appends their section to `md`.
pub fn run(
    md: &mut String,
    cowprof: &Path,
    bench: &Path,
    read_bench: &Path,
    storm: &[&str],
    two_writers: &str,
) -> Result<Value> {
    eprintln!("xtask: bench the profile writer on 10 million synthetic events");
    let dir = fresh_dir("writer");
    let writer = run_json(Command::new(bench).arg("10000000").arg(&dir))?;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("xtask: bench a fork-write storm recorded with -o");
    let dir = fresh_dir("storm");
    let status = Command::new(cowprof)
        .args(["record", "--summary", "/dev/null", "-o"])
        .arg(&dir)
        .arg("--")
        .args(storm)
        .output()?;
    if !status.status.success() {
        bail!(
            "record -o failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let (bytes, events) = parts(&dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("xtask: bench two writers recorded with -o");
    let dir = fresh_dir("two-writers");
    let summary = dir.with_extension("json");
    let status = Command::new(cowprof)
        .args(["record", "--json", "--by", "page", "--summary"])
        .arg(&summary)
        .arg("-o")
        .arg(&dir)
        .args(["--", "sh", "-c", two_writers])
        .output()?;
    if !status.status.success() {
        bail!(
            "record -o failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let loaded: Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("profile.json"))?)?;
    let (two_bytes, two_events) = parts(&dir)?;
    let mut reading = String::new();
    let read = read(&mut reading, read_bench, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let read = read?;
    let _ = std::fs::remove_file(&summary);
    #[expect(clippy::cast_precision_loss, reason = "ratios for display")]
    let per_event = |b: u64, e: u64| b as f64 / e.max(1) as f64;
    let _ = writeln!(md, "## Profiles on disk (`record -o DIR`)\n");
    let _ = writeln!(md, "| measurement | value |\n|---|---|");
    let _ = writeln!(
        md,
        "| writer alone, 10 M synthetic storm events | {} events/s, {:.2} bytes/event, peak RSS {:.1} MiB |",
        writer["events_per_s"],
        writer["bytes_per_event"].as_f64().unwrap_or(0.0),
        writer["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0
    );
    let _ = writeln!(
        md,
        "| fork-write storm, events parts on disk | {:.2} bytes/event ({events} events, {bytes} bytes) |",
        per_event(bytes, events)
    );
    let _ = writeln!(
        md,
        "| two writers recorded with `-o` | {} events written, {} lost, {} not taken by the writer, {:.2} bytes/event, cowprof CPU {:.1}%, peak RSS {:.1} MiB |\n",
        two_events,
        loaded["lost_events"],
        manifest["events_dropped"],
        per_event(two_bytes, two_events),
        loaded["cost"]["cpu_percent"].as_f64().unwrap_or(0.0),
        loaded["cost"]["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0
    );
    md.push_str(&reading);
    Ok(json!({
        "read": read,
        "writer": writer,
        "storm_bytes_per_event": per_event(bytes, events),
        "two_writers": {
            "events_written": two_events,
            "lost_events": loaded["lost_events"],
            "events_dropped": manifest["events_dropped"],
            "bytes_per_event": per_event(two_bytes, two_events),
            "cpu_percent": loaded["cost"]["cpu_percent"],
            "peak_rss_kib": loaded["cost"]["peak_rss_kib"],
        },
    }))
}

/// Records the two writers to the profile `dir`.
pub fn record_two_writers(cowprof: &Path, script: &str, dir: &Path) -> Result<()> {
    eprintln!("xtask: bench two writers recorded with -o");
    let status = Command::new(cowprof)
        .args(["record", "--summary", "/dev/null", "-o"])
        .arg(dir)
        .args(["--", "sh", "-c", script])
        .output()?;
    if !status.status.success() {
        bail!(
            "record -o failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    Ok(())
}

/// Reading the profile in `dir` back: `report` with the default view and
/// with every view, and a replay of 20 steps with a seek back; appends
/// the section to `md`.
pub fn read(md: &mut String, read_bench: &Path, dir: &Path) -> Result<Value> {
    eprintln!("xtask: bench reading a profile back");
    let all = "mapping,image,section,symbol,page,writer";
    let default = run_json(Command::new(read_bench).arg("report").arg(dir))?;
    let every = run_json(Command::new(read_bench).arg("report").arg(dir).arg(all))?;
    let replay = run_json(Command::new(read_bench).arg("replay").arg(dir).arg("20"))?;
    let mib = |v: &Value| v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0;
    let n = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let _ = writeln!(
        md,
        "## Reading a profile back ({} events, two writers)\n",
        default["events"]
    );
    let _ = writeln!(md, "| measurement | time | peak RSS |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| `report` (process view) | {:.0} ms | {:.1} MiB |",
        n(&default, "ms"),
        mib(&default)
    );
    let _ = writeln!(
        md,
        "| `report --by {all}` | {:.0} ms | {:.1} MiB |",
        n(&every, "ms"),
        mib(&every)
    );
    let _ = writeln!(
        md,
        "| replay: open | {:.0} ms | |\n| replay: 20 steps forward, each | median {:.0} ms, mean {:.0} ms, max {:.0} ms | |\n| replay: seek back to a quarter, then to the end | {:.0} ms, {:.0} ms | {:.1} MiB |\n",
        n(&replay, "open_ms"),
        n(&replay, "step_ms_median"),
        n(&replay, "step_ms_mean"),
        n(&replay, "step_ms_max"),
        n(&replay, "seek_back_ms"),
        n(&replay, "to_end_ms"),
        mib(&replay)
    );
    Ok(json!({ "report": default, "report_every_view": every, "replay": replay }))
}
