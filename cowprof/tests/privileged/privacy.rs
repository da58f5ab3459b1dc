//! Private outputs: the files cowprof writes are its owner's alone unless
//! `--mode` says otherwise, and never written through a link someone else
//! planted.
use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use serde_json::Value;

use crate::harness::{bpf_available, cowprof, output, scratch};

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn outputs_are_private_and_planted_links_are_refused() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let summary = dir.path().join("summary.json");
    let events = dir.path().join("events.jsonl");
    let profile = dir.path().join("profile");
    let mut args = vec![
        "record".to_owned(),
        "--json".to_owned(),
        "--summary".to_owned(),
        summary.display().to_string(),
        "--events".to_owned(),
        events.display().to_string(),
    ];
    // Profiles are left out of the VM guests' build.
    let profiles = cfg!(feature = "parquet");
    if profiles {
        args.extend(["-o".to_owned(), profile.display().to_string()]);
    }
    let out = output(Command::new(cowprof()).args(&args).args(["--", "true"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode_of(&summary), 0o600);
    assert_eq!(mode_of(&events), 0o600);
    if profiles {
        assert_eq!(mode_of(&profile), 0o700);
        for entry in walk(&profile) {
            let want = if entry.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode_of(&entry), want, "{}", entry.display());
        }
    }

    // --mode widens them on request.
    let shared = dir.path().join("shared.json");
    let out = output(Command::new(cowprof()).args([
        "record",
        "--mode",
        "0640",
        "--summary",
        &shared.display().to_string(),
        "--",
        "true",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode_of(&shared), 0o640);
}

#[test]
fn planted_links_are_refused_and_this_users_are_followed() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    // A link another user planted where the summary goes is refused, with
    // the output exit code, and its target is untouched. /proc/self/fd/1, a
    // link of this user's in a directory only root writes, is followed.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").expect("victim");
    let planted = dir.path().join("planted.json");
    std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
    // Planted by another user (nobody).
    std::os::unix::fs::lchown(&planted, Some(65534), Some(65534)).expect("lchown");
    let out = output(Command::new(cowprof()).args([
        "record",
        "--summary",
        &planted.display().to_string(),
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(6), "exit code of an output error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read(&victim).expect("victim"), b"keep me");
    let out = output(Command::new(cowprof()).args([
        "record",
        "--json",
        "--summary",
        "/proc/self/fd/1",
        "--",
        "true",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("the summary on stdout");
    assert!(summary["lost_events"].is_u64(), "{summary}");

    // And a linked profile directory.
    if !cfg!(feature = "parquet") {
        return;
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let linked = dir.path().join("linked");
    std::os::unix::fs::symlink(&empty, &linked).expect("symlink");
    let out = output(Command::new(cowprof()).args([
        "record",
        "-o",
        &linked.display().to_string(),
        "--",
        "true",
    ]));
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_dir(&empty).expect("dir").next().is_none());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
