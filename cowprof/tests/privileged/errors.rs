//! docs/errors.md holds true: each documented error, produced by its bad
//! input, with its exit code and its words.
use std::{path::PathBuf, process::Command};

use crate::harness::{bpf_available, cowprof, in_vm, output, scratch, workload};

/// One row of the first table: exit code, what stderr says, the command.
struct Row {
    exit: i32,
    says: String,
    command: String,
}

fn rows(doc: &str) -> Vec<Row> {
    let table = doc
        .split("## Errors and the bad input that produces each")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the table of docs/errors.md");
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| exit"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "four cells: {line}");
            Row {
                exit: cells[0].parse().expect("an exit code"),
                says: cells[1].to_owned(),
                command: cells[3].trim_matches('`').to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_documented_error_is_produced_by_its_bad_input() {
    if !bpf_available() || in_vm() {
        return;
    }
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/errors.md");
    let rows = rows(&doc);
    assert!(rows.len() >= 25, "{} rows", rows.len());
    // A good profile and a good baseline, for the rows that damage copies.
    let fixtures = scratch();
    let profile = fixtures.path().join("profile");
    let baseline = fixtures.path().join("baseline.json");
    let good = output(
        Command::new(cowprof())
            .args(["record", "--summary", "/dev/null", "-o"])
            .arg(&profile)
            .args(["--", "true"]),
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let good = output(
        Command::new(cowprof())
            .args(["gate", "--update", "--baseline"])
            .arg(&baseline)
            .args(["--", "true"]),
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    for row in &rows {
        let dir = scratch();
        let out = output(
            Command::new("sh")
                .args(["-c", &row.command])
                .current_dir(dir.path())
                .env("COWPROF", cowprof())
                .env("WORKLOAD", workload())
                .env("PROFILE", &profile)
                .env("BASELINE", &baseline),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(row.exit),
            "`{}` should exit {}: {stderr}",
            row.command,
            row.exit
        );
        assert!(
            stderr.contains(&row.says),
            "`{}` should say {:?}: {stderr}",
            row.command,
            row.says
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
