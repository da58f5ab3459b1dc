//! Hostile input: files a traced program controls are parsed with bounded
//! work and named "not attributed" with a reason, and nothing is lost.
use std::path::Path;

use cowprof::resolve::craft;
use serde_json::Value;

use crate::harness::{bpf_available, record_summary, scratch, workload};

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
