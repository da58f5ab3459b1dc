//! Writers in stripped system libraries, named through their separate
//! debug information (Debian's `libc6-dbg`, which `cargo xtask test`
//! installs), and the hint when it is missing.
use serde_json::Value;

use crate::harness::{
    bpf_available, cowprof, forced_probe, in_vm, output, record_summary, scratch,
};

/// The loader, as the kernel names the file it maps.
const LOADER: &str = "ld-linux-x86-64.so.2";

fn writer_keys(summary: &Value) -> Vec<String> {
    summary["views"]["writer"]
        .as_array()
        .unwrap_or_else(|| panic!("no writer view: {summary}"))
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect()
}

/// Whether these tests can run: probes, and the host's Debian glibc (the
/// VM matrix's minimal guest has neither dpkg nor a dynamic loader).
fn runnable() -> bool {
    if in_vm() {
        eprintln!("skipped: the VM guest has no Debian glibc or dpkg");
        return false;
    }
    bpf_available()
}

fn libc_debug_installed() -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "libc6-dbg"])
        .output()
        .is_ok_and(|o| o.stdout.ends_with(b"install ok installed"))
}

#[test]
fn the_loaders_relocation_writes_are_named_through_debug_information() {
    if !runnable() {
        return;
    }
    assert!(
        libc_debug_installed(),
        "libc6-dbg is not installed: run `cargo xtask setup`"
    );
    let summary = record_summary(["--by", "writer", "--", "/bin/true"]);
    let keys = writer_keys(&summary);
    let relocate = format!("{LOADER}`_dl_relocate_object");
    assert!(
        keys.contains(&relocate),
        "no writer {relocate} among {keys:?}"
    );
    let unnamed = summary["unnamed_writers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !unnamed
            .iter()
            .filter_map(Value::as_str)
            .any(|p| p.ends_with(LOADER) || p.ends_with("/libc.so.6")),
        "ld.so or libc still unnamed: {unnamed:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with(&format!("{LOADER}+"))),
        "loader writers left as offsets: {keys:?}"
    );
}

#[test]
fn without_debug_information_writers_are_offsets_and_the_hint_names_the_package() {
    if !runnable() {
        return;
    }
    let empty = scratch();
    let debug_dir = empty.path().to_str().expect("utf-8").to_owned();
    let summary = record_summary([
        "--debug-dir",
        &debug_dir,
        "--by",
        "writer",
        "--",
        "/bin/true",
    ]);
    let keys = writer_keys(&summary);
    assert!(
        keys.iter().any(|k| k == LOADER),
        "the loader's writers should fall back to its name: {keys:?}"
    );
    let unnamed: Vec<&str> = summary["unnamed_writers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        unnamed.iter().any(|p| p.ends_with(LOADER)),
        "the loader is not listed as unnamed: {unnamed:?}"
    );
    // The text summary says what to install.
    let out = output(
        std::process::Command::new(cowprof())
            .args(["record", "--debug-dir", &debug_dir, "--by", "writer"])
            .args(forced_probe().map(|p| format!("--probe={p}")))
            .args(["--", "/bin/true"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hint = text
        .lines()
        .find(|l| l.starts_with("hint: writers in") && l.contains(LOADER))
        .unwrap_or_else(|| panic!("no hint for the loader in:\n{text}"));
    assert!(hint.contains("install libc6-dbg"), "{hint}");
    // Without a view that shows writers, no hint about them.
    let out = output(
        std::process::Command::new(cowprof())
            .args(["record", "--debug-dir", &debug_dir])
            .args(forced_probe().map(|p| format!("--probe={p}")))
            .args(["--", "/bin/true"]),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hint: writers in"), "{text}");
}
