//! `cargo xtask setup`: everything a fresh machine needs, idempotently.
//!
//! 1. nightly `rust-src` (the eBPF crate is built with `-Z build-std=core`);
//! 2. bpf-linker 0.13, built against the nightly toolchain's own libLLVM
//!    (docs/kernel.md §6), cached in `~/.cache/cowprof/bpf-linker`;
//! 3. kernel BTF present;
//! 4. tracefs mounted.
use std::{
    ffi::OsString,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::cache;

const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// What later steps need from setup.
pub struct Env {
    /// `PATH` with the cached bpf-linker first.
    pub path: OsString,
}

impl Env {
    /// A cargo command with this environment.
    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.env("PATH", &self.path);
        cmd.current_dir(cache::workspace());
        cmd
    }
}

/// Runs `cmd`, failing with its name when it fails.
pub fn status(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run() -> Result<Env> {
    rust_src()?;
    let linker_bin = bpf_linker()?;
    check_btf();
    mount_tracefs();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(linker_bin).chain(std::env::split_paths(&path)))
            .context("joining PATH")?;
    Ok(Env { path })
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .context("a nightly toolchain is required (rustup toolchain install nightly)")?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing nightly rust-src");
    status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// The directory holding a working bpf-linker, building it when needed.
fn bpf_linker() -> Result<PathBuf> {
    let root = cache::dir().join("bpf-linker");
    let bin = root.join("bin");
    let linker = bin.join("bpf-linker");
    if linker.is_file()
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(bin);
    }
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM (a few minutes, once)");
    let llvm = llvm_prefix()?;
    status(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features", "llvm-22", "--root"])
            .arg(&root)
            .env("LLVM_PREFIX", &llvm)
            .env("CARGO_TARGET_DIR", cache::dir().join("bpf-linker-build")),
    )?;
    Ok(bin)
}

/// A stable directory whose `lib/` holds nightly's libLLVM under the names
/// bpf-linker's build looks for. bpf-linker's RUNPATH points here.
fn llvm_prefix() -> Result<PathBuf> {
    let sysroot =
        output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let libs: Vec<PathBuf> = fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM") && n.contains(".so"))
        })
        .collect();
    // The versioned name is the library's SONAME.
    let main = libs
        .iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .or_else(|| libs.first())
        .with_context(|| {
            format!(
                "no libLLVM in {}; is the nightly toolchain complete?",
                lib.display()
            )
        })?;
    let prefix = cache::dir().join("llvm");
    let dest = prefix.join("lib");
    fs::create_dir_all(&dest)?;
    let mut links = vec![(dest.join("libLLVM.so"), main.clone())];
    for lib in &libs {
        links.push((
            dest.join(lib.file_name().context("libLLVM name")?),
            lib.clone(),
        ));
    }
    for (link, target) in links {
        let _ = fs::remove_file(&link);
        symlink(&target, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(prefix)
}

fn check_btf() {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        eprintln!("xtask: warning: this kernel has no BTF (/sys/kernel/btf/vmlinux); live tests cannot run");
    }
}

fn mount_tracefs() {
    let tracing = Path::new("/sys/kernel/tracing");
    if tracing.join("events").is_dir() {
        return;
    }
    let mounted = Command::new("mount")
        .args(["-t", "tracefs", "nodev"])
        .arg(tracing)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "xtask: warning: tracefs is not mounted at {} and mounting it failed",
            tracing.display()
        );
    }
}

/// The Python packages the tests check outputs with, as (`PyPI` name,
/// import name): profiles with pyarrow and `DuckDB`, the gate's `JUnit` XML
/// with junitparser and its markdown with markdown-it-py (GFM tables), the
/// exporter's OpenMetrics with `prometheus_client`'s strict parser.
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("pyarrow", "pyarrow"),
    ("duckdb", "duckdb"),
    ("junitparser", "junitparser"),
    ("markdown-it-py", "markdown_it"),
    ("prometheus_client", "prometheus_client"),
];

/// A Python with pyarrow and `DuckDB`, in a virtual environment cached in
/// `~/.cache/cowprof/venv` (made, and filled from `PyPI`, once).
pub fn python() -> Result<PathBuf> {
    let venv = cache::dir().join("venv");
    let python = venv.join("bin").join("python3");
    let imports = PYTHON_PACKAGES
        .iter()
        .map(|(_, module)| *module)
        .collect::<Vec<_>>()
        .join(", ");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {imports}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return Ok(python);
    }
    if !python.exists() {
        status(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("making the tests' Python environment (python3 -m venv)")?;
    }
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYTHON_PACKAGES.iter().map(|(package, _)| *package)),
    )
    .context("installing the tests' Python packages from PyPI")?;
    if !ready() {
        bail!(
            "{} cannot import {imports} after installing them",
            python.display()
        );
    }
    Ok(python)
}

/// Debian packages the tests drive, as (a command it provides or
/// `pkg:NAME`, package, what for): tmux for the end-to-end test of
/// `cowprof top`, a real Prometheus (with promtool) for the exporter's,
/// bpftool for the kill-point test, glibc's debug files for naming
/// writers in stripped libraries, and lld for relinking the advisor's
/// fixture with the ordering file it writes.
const DEBIAN_PACKAGES: &[(&str, &str, &str)] = &[
    ("tmux", "tmux", "the end-to-end test of top"),
    ("prometheus", "prometheus", "the exporter's Prometheus test"),
    (
        "promtool",
        "prometheus",
        "checking the exporter's rules and metrics",
    ),
    (
        "bpftool",
        "bpftool",
        "the kill-point test's check that nothing stays in the kernel",
    ),
    (
        "pkg:libc6-dbg",
        "libc6-dbg",
        "the test that names writers in ld.so and libc through debug information",
    ),
    (
        "ld.lld",
        "lld",
        "relinking the advisor's fixture with its symbol ordering file",
    ),
];

/// Installs the [`DEBIAN_PACKAGES`] whose commands are missing (apt, as
/// root). Debian's prometheus package does not start its service here
/// (no init system runs it); the tests start their own.
pub fn debian_tools() -> Result<()> {
    // A command on PATH, or `pkg:NAME`: a package with no command, installed.
    let found = |cmd: &str| match cmd.strip_prefix("pkg:") {
        Some(package) => Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .output()
            .is_ok_and(|o| o.stdout.ends_with(b"install ok installed")),
        None => Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success()),
    };
    let mut missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(cmd, _, _)| !found(cmd))
        .map(|(_, package, _)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    for (_, package, why) in DEBIAN_PACKAGES
        .iter()
        .filter(|(_, p, _)| missing.contains(p))
    {
        eprintln!("xtask: installing {package} (apt) for {why}");
    }
    status(Command::new("apt-get").args(["update", "-qq"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {} (needs root)", missing.join(", ")))?;
    if let Some((cmd, _, _)) = DEBIAN_PACKAGES.iter().find(|(cmd, _, _)| !found(cmd)) {
        bail!("{cmd} is not on PATH (or installed) after installing it");
    }
    Ok(())
}
