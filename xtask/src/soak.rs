//! `cargo xtask soak --minutes N`: cowprof with every output on at once,
//! under a workload of more than 100,000 COW faults a second, for N
//! minutes.
//!
//! `cowprof record -o` (Parquet, plus the JSON summary) runs the
//! `soak-workload` example (short- and long-lived processes, `exec`,
//! `mmap`/`munmap` churn, many threads); `cowprof serve -p` follows the
//! same processes and is scraped every second. Every 10 s the soak samples
//! each cowprof's RSS, CPU and open descriptors. It fails when, after the
//! warm-up, either one's RSS grows faster than 1 MiB a minute (record's
//! after its memory filled, [`RECORD_FILL_S`]: a 3-minute run reports it,
//! longer runs judge it) or its descriptors grow at all (the fewest open
//! in the second half above the fewest in the first: a file open for a
//! moment at a sample, an ELF being read, is no leak); when an event is
//! lost without being counted (kernel counts against
//! events received plus events lost, for both); when any output is invalid
//! at the end (the profile read back by `cowprof report` and complete, the
//! exposition checked by promtool); or when the workload fell short of
//! 100,000 faults a second. Results go to `bench/soak.md`.
use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use crate::{bench::serve::Serve, cache, setup};

/// RSS growth allowed after the warm-up.
const RSS_SLOPE_MIB_PER_MIN: f64 = 1.0;
/// When record's memory has filled under the workload: its 1,024 kept
/// exited processes, the lists of writers between compactions, the
/// symbolizer's caches, the allocator's high-water mark. Measured: runs of
/// 3 and 6 minutes grew by steps until 100–180 s, then the 6-minute run
/// stayed within 0.2 MiB from 181 s to 351 s. Its slope is judged after
/// this, so a 3-minute run reports it and longer runs enforce it.
const RECORD_FILL_S: f64 = 180.0;
/// The workload's rate the soak requires.
const MIN_RATE: f64 = 100_000.0;
const SAMPLE: Duration = Duration::from_secs(10);

/// One sample of one process.
#[derive(Clone, Debug, Default)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    cpu_s: f64,
    fds: usize,
    /// What each descriptor names, to name a leak.
    targets: Vec<String>,
}

fn sample(pid: u32, at_s: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| {
            std::fs::read_link(e.path())
                .map_or_else(|_| "?".to_owned(), |t| t.display().to_string())
        })
        .collect();
    // The profile writer keeps the part it is writing open (as
    // `.part-N.parquet.tmp`) while rows arrive; under a steady load most
    // samples catch one, so one such file is not counted. A leaked part
    // would show under its final name, or as a second `.tmp`.
    let writing = targets.iter().any(|t| is_part_in_progress(t));
    let fds = targets.len() - usize::from(writing);
    // USER_HZ is 100 on Linux.
    Some(Sample {
        at_s,
        rss_kib,
        cpu_s: ticks / 100.0,
        fds,
        targets,
    })
}

/// Whether `target` is a profile part still being written.
fn is_part_in_progress(target: &str) -> bool {
    std::path::Path::new(target)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".part-") && n.ends_with(".parquet.tmp"))
}

/// Least-squares slope of RSS in MiB per minute.
#[expect(clippy::cast_precision_loss, reason = "KiB as floating point")]
fn rss_slope(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.at_s).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.at_s - mean_t) * (s.rss_kib as f64 - mean_r);
        den += (s.at_s - mean_t).powi(2);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0 / 1024.0
    }
}

fn sum_counts(counts: &Value) -> u64 {
    counts
        .as_object()
        .map_or(0, |o| o.values().filter_map(Value::as_u64).sum())
}

/// The sum of a metric family's samples in an exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// serve's faults that no metric counts: kernel counts minus events
/// received minus events lost.
#[expect(clippy::cast_possible_truncation, reason = "counters of whole events")]
fn serve_uncounted(text: &str) -> i64 {
    (metric_sum(text, "cowprof_kernel_faults_total")
        - metric_sum(text, "cowprof_events_total")
        - metric_sum(text, "cowprof_events_lost_total")) as i64
}

struct Run {
    record: Child,
    record_pid: u32,
    serve: Serve,
    go: std::process::ChildStdin,
}

fn start(cowprof: &Path, workload: &Path, dir: &Path, seconds: u64) -> Result<Run> {
    let file = dir.join("private.bin");
    let mut record = Command::new(cowprof)
        .args(["record", "--json", "--summary"])
        .arg(dir.join("summary.json"))
        .arg("-o")
        .arg(dir.join("profile"))
        .arg("--")
        .arg(workload)
        .arg(seconds.to_string())
        .arg("--file")
        .arg(&file)
        .arg("--wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cowprof record")?;
    let go = record.stdin.take().context("record's stdin")?;
    let stderr = record.stderr.take().context("record's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let workload_pid: u32 = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("recording command pid") => {
                break line
                    .split_whitespace()
                    .skip_while(|w| *w != "pid")
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .context("the workload's pid")?;
            }
            Some(Ok(_)) => {}
            other => bail!("cowprof record did not start: {other:?}"),
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let record_pid = record.id();
    let serve = Serve::start(cowprof, &["-p", &workload_pid.to_string()])?;
    Ok(Run {
        record,
        record_pid,
        serve,
        go,
    })
}

/// Runs the soak for `minutes`; fails on any of the module's conditions.
#[expect(
    clippy::too_many_lines,
    reason = "one run, its checks and its report, in order"
)]
pub fn run(minutes: u64) -> Result<()> {
    let env = setup::run()?;
    setup::debian_tools()?;
    setup::status(env.cargo().args([
        "build",
        "--release",
        "--package",
        "cowprof",
        "--bins",
        "--example",
        "soak-workload",
    ]))?;
    let release = crate::bench::target_dir().join("release");
    let (cowprof, workload) = (
        release.join("cowprof"),
        release.join("examples/soak-workload"),
    );
    let dir = cache::dir().join("soak");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let seconds = minutes * 60;
    let mut run = start(&cowprof, &workload, &dir, seconds)?;
    let serve_pid = run.serve.pid();
    writeln!(run.go).context("starting the workload")?;
    let started = Instant::now();
    let (mut record_samples, mut serve_samples) = (Vec::new(), Vec::new());
    let (mut scrapes, mut failed_scrapes) = (0u64, 0u64);
    let mut next_sample = started;
    let ended = loop {
        if let Some(status) = run.record.try_wait()? {
            break status;
        }
        if Instant::now() >= next_sample {
            let at = started.elapsed().as_secs_f64();
            record_samples.extend(sample(run.record_pid, at));
            serve_samples.extend(sample(serve_pid, at));
            next_sample += SAMPLE;
            eprintln!(
                "xtask: soak {at:>5.0} s: record {} KiB, serve {} KiB",
                record_samples.last().map_or(0, |s| s.rss_kib),
                serve_samples.last().map_or(0, |s| s.rss_kib)
            );
        }
        match run.serve.scrape() {
            Ok(_) => scrapes += 1,
            Err(_) => failed_scrapes += 1,
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let elapsed = started.elapsed().as_secs_f64();
    let mut stdout = String::new();
    if let Some(mut out) = run.record.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    // serve's last word, once the workload is gone: scrapes until two agree.
    let mut last = String::new();
    for _ in 0..30 {
        let (_, text) = run.serve.scrape()?;
        let settled = serve_uncounted(&text) == serve_uncounted(&last) && !last.is_empty();
        last = text;
        if settled {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let exposition = dir.join("metrics.txt");
    std::fs::write(&exposition, &last)?;
    drop(run.serve);

    let mut problems = Vec::new();
    if !ended.success() {
        problems.push(format!("cowprof record exited {ended}"));
    }
    let summary: Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json"))?)
        .context("record's JSON summary")?;
    let mut notes = Vec::new();
    if let Some(folded) = summary.pointer("/folded_processes").and_then(Value::as_u64) {
        notes.push(format!(
            "record summed {folded} exited processes into pid 0 \"(exited)\", keeping the 1,024 heaviest; processes seen: {}",
            summary.pointer("/total_processes").unwrap_or(&Value::Null)
        ));
    }
    let kernel = sum_counts(&summary["kernel_totals"]);
    let received = sum_counts(&summary["totals"]);
    let lost_events = summary["lost_events"].as_u64().unwrap_or(0);
    if kernel != received + lost_events {
        problems.push(format!(
            "record: {kernel} faults in the kernel, {received} received, {lost_events} lost: {} uncounted",
            kernel.abs_diff(received + lost_events)
        ));
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("profile/profile.json"))?)?;
    let written = manifest["events_written"].as_u64().unwrap_or(0);
    let dropped = manifest["events_dropped"].as_u64().unwrap_or(0);
    if manifest["complete"] != true || written + dropped != received {
        problems.push(format!(
            "profile: complete {}, {written} events written + {dropped} dropped for {received} received",
            manifest["complete"]
        ));
    }
    let report = Command::new(&cowprof)
        .arg("report")
        .arg(dir.join("profile"))
        .output()?;
    if !report.status.success() {
        problems.push(format!(
            "cowprof report exited {} (a signal 9 with nothing said is the OOM killer: see dmesg): {}",
            report.status,
            String::from_utf8_lossy(&report.stderr).trim()
        ));
    }
    let uncounted = serve_uncounted(&last);
    if uncounted != 0 {
        problems.push(format!("serve: {uncounted} faults no metric counts"));
    }
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&exposition)?)
        .output()?;
    // Exit code 3 is promtool's lint advice (naming), 1 a parse error.
    if promtool.status.code() == Some(1) {
        problems.push(format!(
            "promtool check metrics: {}",
            String::from_utf8_lossy(&promtool.stderr).trim()
        ));
    }
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = kernel as f64 / elapsed;
    if rate < MIN_RATE {
        problems.push(format!(
            "the workload made {rate:.0} COW faults/s, under {MIN_RATE:.0}"
        ));
    }
    let warmup = (elapsed / 3.0).min(60.0);
    let mut text = format!(
        "# Soak: {minutes} min\n\n{kernel} COW faults in {elapsed:.0} s ({rate:.0}/s), {lost_events} lost (counted), workload: {}; {scrapes} scrapes ({failed_scrapes} failed)\n\n| process | RSS slope after the warm-up (MiB/min) | RSS first → last (MiB) | CPU (s) | fewest descriptors, first → second half |\n|---|---|---|---|---|\n",
        stdout.trim()
    );
    for (name, samples, filled) in [
        ("record -o", &record_samples, warmup.max(RECORD_FILL_S)),
        ("serve", &serve_samples, warmup),
    ] {
        // From the warm-up to the workload's end: after it, record writes
        // its summary and manifest (a file open for a moment).
        #[expect(clippy::cast_precision_loss, reason = "seconds")]
        let end = seconds as f64;
        let after: Vec<Sample> = samples
            .iter()
            .filter(|s| s.at_s >= warmup && s.at_s < end)
            .cloned()
            .collect();
        let filled: Vec<Sample> = after.iter().filter(|s| s.at_s >= filled).cloned().collect();
        let slope = rss_slope(&filled);
        let from_warmup = rss_slope(&after);
        // A leak keeps a descriptor open from then on: the fewest open in
        // the second half exceed the fewest in the first.
        let (first_half, second_half) = after.split_at(after.len() / 2);
        let fewest = |s: &[Sample]| s.iter().min_by_key(|s| s.fds).cloned().unwrap_or_default();
        let (at_warmup, late) = (fewest(first_half), fewest(second_half));
        let (fds_at_warmup, fds_late) = (at_warmup.fds, late.fds);
        let fds_max = after.iter().map(|s| s.fds).max().unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "MiB for display")]
        let mib = |s: Option<&Sample>| s.map_or(0.0, |s| s.rss_kib as f64 / 1024.0);
        let shown = if filled.len() < 3 {
            format!("{from_warmup:+.3} (filling: not judged)")
        } else {
            format!("{slope:+.3}")
        };
        let _ = writeln!(
            text,
            "| {name} | {shown} | {:.1} → {:.1} | {:.1} | {fds_at_warmup} → {fds_late} (max {fds_max}) |",
            mib(after.first()),
            mib(after.last()),
            after.last().map_or(0.0, |s| s.cpu_s),
        );
        if filled.len() < 3 {
            notes.push(format!(
                "{name}: its memory fills during the first {RECORD_FILL_S:.0} s of this workload; the run was too short to judge its RSS slope (reported from {warmup:.0} s: {from_warmup:+.2} MiB/min)"
            ));
        } else if slope > RSS_SLOPE_MIB_PER_MIN {
            problems.push(format!(
                "{name}: RSS grows {slope:.2} MiB/min after warm-up ({})",
                stdout.trim()
            ));
        }
        if fds_late > fds_at_warmup {
            let mut new = late.targets.clone();
            for target in &at_warmup.targets {
                if let Some(i) = new.iter().position(|t| t == target) {
                    new.swap_remove(i);
                }
            }
            problems.push(format!(
                "{name}: descriptors grew from {fds_at_warmup} to {fds_late} (at least, in the second half; {fds_max} at most); new: {}",
                new.join(", ")
            ));
        }
    }
    text.push_str("\n## RSS every 10 s (MiB)\n\n| s | record -o | serve |\n|---|---|---|\n");
    for (r, s) in record_samples.iter().zip(&serve_samples) {
        #[expect(clippy::cast_precision_loss, reason = "MiB for display")]
        let _ = writeln!(
            text,
            "| {:.0} | {:.1} | {:.1} |",
            r.at_s,
            r.rss_kib as f64 / 1024.0,
            s.rss_kib as f64 / 1024.0
        );
    }
    for note in &notes {
        let _ = writeln!(text, "\nNote: {note}");
    }
    let _ = writeln!(
        text,
        "\n{}",
        if problems.is_empty() {
            "Passed.".to_owned()
        } else {
            format!("FAILED:\n- {}", problems.join("\n- "))
        }
    );
    print!("{text}");
    let out: PathBuf = cache::workspace().join("bench/soak.md");
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    ensure!(
        problems.is_empty(),
        "the soak failed: {}",
        problems.join("; ")
    );
    Ok(())
}
