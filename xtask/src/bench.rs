//! `cargo xtask bench`: overhead of cowprof per COW fault, measured as
//! interleaved A/B pairs against no profiler, medians reported.
//!
//! The workload (`cow-workload fork-time`) first-touches N pages, forks, and
//! the child times writing one byte to each page: N `cow_copy_anon` faults.
use std::{fmt::Write as _, path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::{cache, setup};

/// One configuration under test.
struct Config {
    name: &'static str,
    /// Arguments to `cowprof record` before `--`, or `None` for no profiler.
    record: Option<&'static [&'static str]>,
}

const CONFIGS: [Config; 2] = [
    Config {
        name: "no profiler",
        record: None,
    },
    Config {
        name: "cowprof record",
        record: Some(&["-o", "/dev/null"]),
    },
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| cache::workspace().join("target"), Into::into)
}

fn once(config: &Config, pages: usize) -> Result<f64> {
    let release = target_dir().join("release");
    let workload = release.join("examples").join("cow-workload");
    let mut cmd = match config.record {
        None => Command::new(&workload),
        Some(args) => {
            let mut cmd = Command::new(release.join("cowprof"));
            cmd.arg("record").args(args).arg("--").arg(&workload);
            cmd
        }
    };
    cmd.args(["fork-time", "--pages", &pages.to_string()]);
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("ns_per_fault="))
        .context("workload printed no ns_per_fault")?
        .trim()
        .parse()
        .context("parsing ns_per_fault")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        f64::midpoint(values[mid - 1], values[mid])
    } else {
        values[mid]
    }
}

pub fn run(pairs: usize, pages: usize) -> Result<()> {
    let env = setup::run()?;
    setup::status(env.cargo().args([
        "build",
        "--release",
        "--package",
        "cowprof",
        "--bins",
        "--examples",
    ]))?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); CONFIGS.len()];
    // Warm-up, discarded.
    for config in &CONFIGS {
        once(config, pages)?;
    }
    for pair in 0..pairs {
        // Alternate the order so drift does not favour one side.
        let order: Vec<usize> = if pair.is_multiple_of(2) {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in order {
            samples[i].push(once(&CONFIGS[i], pages)?);
        }
    }
    let base = median(&mut samples[0].clone());
    let mut table = String::new();
    let _ = writeln!(table, "Child writes {pages} pages after fork (one `cow_copy_anon` each); {pairs} interleaved A/B pairs, median ns per fault.\n");
    let _ = writeln!(
        table,
        "| configuration | ns per COW fault (median) | added ns | ratio | samples |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|");
    let mut json = Vec::new();
    for (config, values) in CONFIGS.iter().zip(&samples) {
        let m = median(&mut values.clone());
        let list: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            table,
            "| {} | {m:.0} | {:+.0} | {:.3} | {} |",
            config.name,
            m - base,
            m / base,
            list.join(", ")
        );
        json.push(format!(
            "{{\"configuration\":\"{}\",\"median_ns\":{m:.1},\"ratio\":{:.4},\"samples\":[{}]}}",
            config.name,
            m / base,
            list.join(",")
        ));
    }
    print!("{table}");
    let dir = cache::workspace().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("results.md"),
        format!("# cowprof benchmarks\n\n{table}"),
    )?;
    std::fs::write(dir.join("results.json"), format!("[{}]\n", json.join(",")))?;
    Ok(())
}
