//! The sustained-rate run (two writers, two cores) and the attach time.
use std::{path::Path, process::Command};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// Pages each fork of a writer dirties.
const PAGES_PER_FORK: u64 = 65_536;

/// What one recording of the two writers cost.
pub struct LoadResult {
    pub events: u64,
    pub kernel_events: u64,
    pub lost: u64,
    pub duration_s: f64,
    pub cpu_percent: f64,
    pub peak_rss_kib: u64,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
        let events = self.kernel_events as f64;
        events / self.duration_s
    }
}

fn record_json(cowprof: &Path, args: &[&str], command: &[&str]) -> Result<Value> {
    let out_file = std::env::temp_dir().join(format!("cowprof-bench-{}.json", std::process::id()));
    let mut cmd = Command::new(cowprof);
    cmd.arg("record")
        .args(args)
        .arg("--json")
        .arg("--summary")
        .arg(&out_file)
        .arg("--")
        .args(command);
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = std::fs::read_to_string(&out_file).context("reading the summary")?;
    let _ = std::fs::remove_file(&out_file);
    serde_json::from_str(&text).context("parsing the summary")
}

fn sum_counts(counts: &Value) -> u64 {
    counts
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// Two writer processes, each forking children that dirty 65,536 pages
/// apiece, flat out on the two cores, until about `events` COW faults; all
/// recorded with full attribution.
pub fn two_writers(cowprof: &Path, workload: &Path, events: u64) -> Result<LoadResult> {
    let script = two_writers_script(workload, events);
    let summary = record_json(cowprof, &["--by", "page"], &["sh", "-c", &script])?;
    let number = |v: &Value| v.as_f64().unwrap_or(0.0);
    Ok(LoadResult {
        events: sum_counts(&summary["totals"]),
        kernel_events: sum_counts(&summary["kernel_totals"]),
        lost: summary["lost_events"].as_u64().unwrap_or(0),
        duration_s: number(&summary["duration_s"]),
        cpu_percent: number(&summary["cost"]["cpu_percent"]),
        peak_rss_kib: summary["cost"]["peak_rss_kib"].as_u64().unwrap_or(0),
    })
}

/// The shell script of the two writers (about `events` COW faults).
pub fn two_writers_script(workload: &Path, events: u64) -> String {
    let forks = events.div_ceil(2 * PAGES_PER_FORK).max(1);
    let writer = format!(
        "{} fork-storm --pages {PAGES_PER_FORK} --read {forks} > /dev/null",
        workload.display()
    );
    format!("{writer} & {writer} & wait")
}

/// Seconds from `cowprof record` starting to its probes attached and the
/// command released, `runs` times (warm: the binary and BTF are cached),
/// and the strategy auto chose.
pub fn attach_times(cowprof: &Path, runs: usize) -> Result<(Vec<f64>, String)> {
    let mut strategy = String::new();
    let times = (0..runs)
        .map(|_| {
            let summary = record_json(cowprof, &[], &["true"])?;
            summary["strategy"]
                .as_str()
                .unwrap_or("?")
                .clone_into(&mut strategy);
            summary["cost"]["attach_s"]
                .as_f64()
                .context("the summary has no cost.attach_s")
        })
        .collect::<Result<_>>()?;
    Ok((times, strategy))
}

/// Each program's runs and mean ns per run (the kernel's BPF statistics)
/// while `cowprof record ARGS --program-stats` records `command`.
pub fn program_costs(
    cowprof: &Path,
    args: &[&str],
    command: &[&str],
) -> Result<Vec<(String, u64, f64)>> {
    let mut all = args.to_vec();
    all.push("--program-stats");
    let summary = record_json(cowprof, &all, command)?;
    Ok(summary["program_stats"]
        .as_array()
        .map(|programs| {
            programs
                .iter()
                .map(|p| {
                    (
                        p["program"].as_str().unwrap_or("?").to_owned(),
                        p["runs"].as_u64().unwrap_or(0),
                        p["mean_ns"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
