//! `cowprof doctor` agrees with what recording can actually do.
use std::process::Command;

use serde_json::Value;

use crate::harness::{bpf_available, cowprof};

#[test]
fn doctor_verdicts_match_what_record_can_attach() {
    if !bpf_available() {
        return;
    }
    let output = crate::harness::output(Command::new(cowprof()).args(["doctor", "--json"]));
    let doctor: Value = serde_json::from_slice(&output.stdout).expect("doctor JSON");
    assert_eq!(output.status.code(), Some(0), "some strategy works here");
    let strategies = doctor["strategies"].as_array().expect("strategies");
    assert_eq!(strategies.len(), 3);
    for report in strategies {
        let name = report["strategy"].as_str().expect("name");
        let recorded = crate::harness::output(Command::new(cowprof()).args([
            "record",
            "--probe",
            name,
            "--summary",
            "/dev/null",
            "--",
            "true",
        ]));
        let available = report["available"].as_bool().expect("available");
        assert_eq!(
            recorded.status.success(),
            available,
            "doctor says {name} available={available}: {report}; record said {}",
            String::from_utf8_lossy(&recorded.stderr)
        );
        if !available {
            assert!(
                !report["reason"].as_str().unwrap_or("").is_empty(),
                "{report}"
            );
            assert_eq!(recorded.status.code(), Some(4), "unsupported exit code");
            let stderr = String::from_utf8_lossy(&recorded.stderr);
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(stderr.contains(name), "{stderr}");
        }
    }
    // The chosen strategy is the best available one, and record's auto
    // choice agrees.
    let first_available = strategies
        .iter()
        .find(|s| s["available"] == true)
        .map(|s| s["strategy"].clone());
    assert_eq!(Some(doctor["chosen"].clone()), first_available);
    let auto =
        crate::harness::output(Command::new(cowprof()).args(["record", "--json", "--", "true"]));
    let summary: Value = serde_json::from_slice(&auto.stdout).expect("summary");
    assert_eq!(summary["strategy"], doctor["chosen"]);
}
