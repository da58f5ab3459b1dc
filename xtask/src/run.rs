//! `cargo xtask run -- ARGS`: build in release mode and run as root.
use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::{Context as _, Result};

use crate::setup;

pub fn run(args: &[String]) -> Result<()> {
    let env = setup::run()?;
    setup::status(
        env.cargo()
            .args(["build", "--release", "--package", "cowprof"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::cache::workspace().join("target"), Into::into);
    let bin = target.join("release").join("cowprof");
    let root = effective_uid() == 0;
    let mut cmd = if root {
        Command::new(&bin)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("-E").arg(&bin);
        sudo
    };
    cmd.args(args);
    Err(cmd.exec()).with_context(|| format!("running {}", bin.display()))
}

fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .unwrap_or(u32::MAX)
}
