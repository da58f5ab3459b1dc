//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `cowprof/fuzz` with
//! nightly and libFuzzer, each for a given time, starting from the
//! committed corpus. New inputs go to `~/.cache/cowprof/fuzz-corpus/TARGET`
//! (the committed corpus stays as it is: `cargo fuzz cmin` keeps what is
//! worth committing); a crash, a timeout or an out-of-memory stops the run
//! and leaves its input in `cowprof/fuzz/artifacts/TARGET/`.
use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{bail, Context as _, Result};

use crate::{cache, setup};

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// cargo-fuzz, installed once into the cache.
fn cargo_fuzz() -> Result<PathBuf> {
    let root = cache::dir().join("cargo-fuzz");
    let bin = root.join("bin").join("cargo-fuzz");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} (once)");
    setup::status(
        Command::new("cargo")
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(&root)
            .env("CARGO_TARGET_DIR", cache::dir().join("cargo-fuzz-build")),
    )?;
    Ok(bin)
}

/// Runs each of `targets` (all when empty) for `seconds`.
pub fn run(env: &setup::Env, targets: &[String], seconds: u64, rss_limit_mb: u64) -> Result<()> {
    let fuzz = cargo_fuzz()?;
    let crate_dir = cache::workspace().join("cowprof");
    let listed = Command::new(&fuzz)
        .args(["fuzz", "list"])
        .current_dir(&crate_dir)
        .output()
        .context("cargo fuzz list")?;
    let all: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let chosen: Vec<&str> = if targets.is_empty() {
        all.iter().map(String::as_str).collect()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = chosen.iter().find(|t| !all.iter().any(|a| a == *t)) {
        bail!(
            "no fuzz target {unknown}; the targets are {}",
            all.join(", ")
        );
    }
    let mut summary = Vec::new();
    for target in chosen {
        let scratch = cache::dir().join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("making {}", scratch.display()))?;
        let started = Instant::now();
        let status = Command::new(&fuzz)
            .args([
                "fuzz",
                "run",
                "--sanitizer",
                "none",
                "--debug-assertions",
                target,
            ])
            .arg(&scratch)
            .arg(crate_dir.join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-rss_limit_mb={rss_limit_mb}"))
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            .current_dir(&crate_dir)
            .env("PATH", &env.path)
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .env("CARGO_TARGET_DIR", cache::dir().join("fuzz-target"))
            .status()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        let verdict = if status.success() {
            "no finding"
        } else {
            "FOUND"
        };
        summary.push(format!(
            "{target}: {verdict} in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
        if !status.success() {
            eprintln!("{}", summary.join("\n"));
            bail!(
                "fuzz target {target} found a crash, timeout or leak: see cowprof/fuzz/artifacts/{target}/"
            );
        }
    }
    eprintln!("{}", summary.join("\n"));
    Ok(())
}
