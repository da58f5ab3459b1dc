//! Hostile input and private outputs: files a traced program controls are
//! parsed with bounded work and named "not attributed" with a reason; the
//! files cowprof writes are its owner's alone and never written through a
//! link someone planted.
use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use cowprof::resolve::craft;
use serde_json::Value;

use crate::harness::{bpf_available, cowprof, output, record_summary, scratch, workload};

/// Each hostile file, and what its mapping must be called.
fn hostile_files(dir: &Path) -> Vec<(std::path::PathBuf, Option<&'static str>)> {
    let cases: Vec<(&str, craft::Elf, Option<&'static str>)> = vec![
        (
            "ten-million-symbols.so",
            craft::many_symbols(10_000_000),
            Some("[not attributed: 10000000 entries in a symbol table, over 4000000]"),
        ),
        ("one-gib.so", craft::large(1 << 30), None),
        (
            "headers-past-the-end.so",
            craft::headers_past_the_end(),
            Some("[not attributed: malformed ELF"),
        ),
        (
            "lying-section-count.so",
            craft::lying_section_count(),
            Some("[not attributed: malformed ELF"),
        ),
        (
            "overflowing-segment.so",
            craft::overflowing_segment(),
            Some("[not attributed: malformed ELF: a range past the end"),
        ),
        (
            "huge-bss.so",
            craft::huge_bss(),
            Some("[not attributed: writable segments span more than"),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, elf, named)| {
            let path = dir.join(name);
            elf.write(&path).expect("hostile file");
            (path, named)
        })
        .collect()
}

fn rows(summary: &Value) -> &Vec<Value> {
    summary["views"]
        .as_object()
        .and_then(|views| views.values().next())
        .and_then(Value::as_array)
        .expect("the mapping view's rows")
}

#[test]
fn hostile_elf_files_are_named_not_attributed_and_nothing_is_lost() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let files = hostile_files(dir.path());
    // One process per file maps it privately and writes its first page
    // (one cow_fill_file each); a looping file rides along.
    let looping = dir.path().join("looping-links.so");
    craft::looping_links().write(&looping).expect("file");
    let script = format!(
        "for f; do {} file-private --keep --pages 1 --file \"$f\" || exit 1; done",
        workload().display()
    );
    let mut args: Vec<String> = ["--by", "mapping", "--", "sh", "-c", &script, "sh"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.extend(files.iter().map(|(p, _)| p.display().to_string()));
    args.push(looping.display().to_string());
    let summary = record_summary(&args);
    assert_eq!(summary["lost_events"], 0, "{summary}");
    for (path, named) in &files {
        let path = path.display().to_string();
        let row = rows(&summary)
            .iter()
            .find(|r| r["key"].as_str().is_some_and(|k| k.starts_with(&path)))
            .unwrap_or_else(|| panic!("no mapping row for {path}: {summary}"));
        assert_eq!(row["counts"]["cow_fill_file"], 1, "{row}");
        let key = row["key"].as_str().unwrap_or_default();
        match named {
            Some(reason) => assert!(key.contains(reason), "{key} should say {reason}"),
            None => assert!(!key.contains("not attributed"), "{key} is attributed"),
        }
    }
}

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

    // A link planted where the summary goes is refused, with the output
    // exit code, and its target is untouched.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").expect("victim");
    let planted = dir.path().join("planted.json");
    std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
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

    // And a linked profile directory.
    if !profiles {
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
