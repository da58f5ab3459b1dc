//! rustfmt and clippy, pedantic, warnings as errors; no module cycle.
use anyhow::Result;

use crate::setup::{status, Env};

pub fn run(env: &Env) -> Result<()> {
    status(env.cargo().args(["fmt", "--all", "--check"]))?;
    status(env.cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "cowprof-ebpf",
        "--features",
        "cowprof/fixtures",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The VM guests' build: cowprof without profiles (no polars).
    status(env.cargo().args([
        "clippy",
        "--package",
        "cowprof",
        "--no-default-features",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::cycles::run()
}
