//! `cowprof gate` on workloads whose copies are known: a rerun passes, 10%
//! more pages fail and name the function that wrote them, 10% fewer show a
//! stale baseline; bad input is one line and exit 2; the `JUnit` and
//! markdown reports parse with real parsers; `gate compare` agrees with
//! the live gate.
use std::{path::Path, process::Command};

use serde_json::Value;

use crate::harness::{
    bpf_available, cowprof, forced_probe, output, python, scratch, workload, Files,
};

/// `cowprof gate ARGS -- cow-workload fork-anon --pages PAGES EXTRA...`:
/// its exit code, stdout and stderr.
fn gate(args: &[&str], pages: &str, extra: &[&str]) -> (i32, String, String) {
    gate_with(&[], args, pages, extra)
}

/// [`gate`] with environment variables.
fn gate_with(
    env: &[(&str, &Path)],
    args: &[&str],
    pages: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let files = Files::new();
    let mut cmd = Command::new(cowprof());
    cmd.envs(env.iter().map(|(k, v)| (*k, *v)));
    cmd.arg("gate").args(args);
    if let Some(p) = forced_probe() {
        cmd.arg(format!("--probe={p}"));
    }
    cmd.arg("--")
        .arg(workload())
        .args(["fork-anon", "--pages", pages, "--report"])
        .arg(&files.report)
        .args(extra);
    let out = output(&mut cmd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn baseline_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn a_rerun_passes_more_pages_fail_and_fewer_are_stale() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let baseline = dir.path().join("baseline.json");
    let b = baseline_arg(&baseline);
    let (code, _, stderr) = gate(&["--update", "--baseline", &b], "1000", &[]);
    assert_eq!(code, 0, "{stderr}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(written["schema_version"], 1);
    let copies = written["metrics"]["kind/cow_copy_anon"]["expected"]
        .as_u64()
        .expect("copies per kind");
    assert!((1000..1100).contains(&copies), "{copies}");
    for key in written["metrics"].as_object().unwrap().keys() {
        assert!(
            !key.contains("pid ") && !key.contains("0x"),
            "no pid or address in a key: {key}"
        );
    }
    assert!(written["environment"]["kernel"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));

    let (code, stdout, stderr) = gate(&["--baseline", &b], "1000", &[]);
    assert_eq!(code, 0, "a rerun passes:\n{stdout}{stderr}");
    assert!(stdout.contains("gate: PASS"), "{stdout}");

    // 10% more pages, written by a function of their own.
    let (code, stdout, stderr) = gate(&["--baseline", &b], "1000", &["--extra", "100"]);
    assert_eq!(code, 1, "10% more pages fail:\n{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("kind/cow_copy_anon "))
        .unwrap_or_else(|| panic!("the metric is named:\n{stdout}"));
    assert!(line.contains("REGRESSION"), "{line}");
    let delta: i64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix('+')?.parse().ok())
        .expect("a delta");
    assert!((96..=104).contains(&delta), "about 100 more pages: {line}");
    let why = stdout
        .lines()
        .find(|l| l.starts_with("kind/cow_copy_anon grew:"))
        .unwrap_or_else(|| panic!("the regression is explained:\n{stdout}"));
    assert!(
        why.contains("writer") && why.contains("write_extra_pages"),
        "{why}"
    );

    let (code, _, stderr) = gate(&["--update", "--baseline", &b], "1000", &["--extra", "100"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = gate(&["--baseline", &b], "1000", &["--extra", "100"]);
    assert_eq!(code, 0, "after --update it passes:\n{stdout}");

    // 10% fewer pages than the refreshed baseline.
    let (code, stdout, _) = gate(&["--baseline", &b], "900", &["--extra", "100"]);
    assert_eq!(code, 0, "fewer pages pass:\n{stdout}");
    assert!(stdout.contains("stale baseline: run --update"), "{stdout}");
    let (code, stdout, _) = gate(&["--strict", "--baseline", &b], "900", &["--extra", "100"]);
    assert_eq!(code, 1, "and fail under --strict:\n{stdout}");
}

#[test]
fn bad_baselines_and_commands_are_one_line_and_exit_2() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let malformed = dir.path().join("malformed.json");
    std::fs::write(&malformed, "{ not json").unwrap();
    let version = dir.path().join("version.json");
    std::fs::write(&version, r#"{"schema_version": 99, "metrics": {}}"#).unwrap();
    let missing = dir.path().join("missing.json");
    for (path, says) in [
        (&malformed, "is not a cowprof baseline"),
        (&version, "schema version 99"),
        (&missing, "does not exist"),
    ] {
        let (code, _, stderr) = gate(&["--baseline", &baseline_arg(path)], "10", &[]);
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let out = output(
        Command::new(cowprof())
            .args(["gate", "--update", "--baseline"])
            .arg(dir.path().join("b.json"))
            .args(["--", "/dev/null/no-such-program"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    // A baseline from another kernel: one line of notice, or an error under
    // --strict-env.
    let foreign = dir.path().join("foreign.json");
    let (code, _, stderr) = gate(
        &["--update", "--baseline", &baseline_arg(&foreign)],
        "10",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&foreign).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["environment"]["kernel"] = "4.19.0-old".into();
    std::fs::write(&foreign, value.to_string()).unwrap();
    let (code, stdout, _) = gate(&["--baseline", &baseline_arg(&foreign)], "10", &[]);
    assert_eq!(code, 0, "{stdout}");
    let notes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "{stdout}");
    assert!(notes[0].contains("kernel 4.19.0-old"), "{stdout}");
    let (code, _, stderr) = gate(
        &["--strict-env", "--baseline", &baseline_arg(&foreign)],
        "10",
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--strict-env"), "{stderr}");
    let out = output(Command::new(cowprof()).args([
        "gate",
        "--update",
        "--baseline",
        "x",
        "--",
        "false",
    ]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failing command is not measured"
    );
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn junit_and_markdown_parse_and_compare_agrees_with_the_live_gate() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let b = baseline_arg(&dir.path().join("baseline.json"));
    let base = dir.path().join("base");
    let new = dir.path().join("new");
    let keep = |d: &Path| d.display().to_string();
    let (code, _, stderr) = gate(
        &[
            "--update",
            "--baseline",
            &b,
            "--keep-profiles",
            &keep(&base),
        ],
        "500",
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    // The live verdict of run "new", and `gate compare` on the same runs.
    let (code, live_json, stderr) = gate(
        &[
            "--baseline",
            &b,
            "--keep-profiles",
            &keep(&new),
            "--format",
            "json",
        ],
        "500",
        &["--extra", "50"],
    );
    assert_eq!(code, 1, "{stderr}");
    let live: Value = serde_json::from_str(&live_json).expect("JSON");
    let compare = |format: &str| {
        output(
            Command::new(cowprof())
                .args(["gate", "compare", "--format", format])
                .arg(base.join("run-1"))
                .arg(new.join("run-1")),
        )
    };
    let out = compare("json");
    assert_eq!(out.status.code(), Some(1), "compare agrees: a regression");
    let compared: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(compared["schema_version"], 1);
    let regressed = |v: &Value| -> Vec<String> {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["status"] == "regression")
            .map(|m| m["metric"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        regressed(&compared),
        regressed(&live),
        "the same metrics regress"
    );
    assert!(regressed(&live).contains(&"kind/cow_copy_anon".to_owned()));
    let junit = dir.path().join("gate.xml");
    std::fs::write(&junit, compare("junit").stdout).unwrap();
    // Under GitHub Actions: an annotation per regression, and the markdown
    // report in the step summary.
    let step_summary = dir.path().join("step-summary.md");
    let (code, stdout, _) = gate_with(
        &[
            ("GITHUB_ACTIONS", Path::new("true")),
            ("GITHUB_STEP_SUMMARY", &step_summary),
        ],
        &["--baseline", &b],
        "500",
        &["--extra", "50"],
    );
    assert_eq!(code, 1);
    let annotations = stdout.lines().filter(|l| l.starts_with("::error ")).count();
    let rows = stdout
        .lines()
        .filter(|l| l.contains(" REGRESSION "))
        .count();
    assert!(annotations >= 1, "{stdout}");
    assert_eq!(annotations, rows, "one annotation per regression: {stdout}");
    let summary = std::fs::read_to_string(&step_summary).expect("the step summary");
    assert!(summary.contains("| `kind/cow_copy_anon` |"), "{summary}");
    let Some(python) = python() else {
        return;
    };
    let metrics = compared["metrics"].as_array().unwrap().len();
    let failures = regressed(&compared).len();
    let script = format!(
        "import sys\nfrom junitparser import JUnitXml\nxml = JUnitXml.fromfile(sys.argv[1])\ncases = [c for s in xml for c in s]\nfailed = [c for c in cases if c.result]\nassert len(cases) == {metrics}, len(cases)\nassert len(failed) == {failures}, len(failed)\nassert any(c.name == 'kind/cow_copy_anon' for c in failed)\nprint('ok')\n"
    );
    let out = output(Command::new(&python).arg("-c").arg(&script).arg(&junit));
    assert!(
        out.status.success(),
        "junitparser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, markdown, _) = gate(
        &["--baseline", &b, "--format", "markdown"],
        "500",
        &["--extra", "50"],
    );
    let md = dir.path().join("gate.md");
    std::fs::write(&md, &markdown).unwrap();
    let script = "import sys\nfrom markdown_it import MarkdownIt\ntokens = MarkdownIt('commonmark').enable('table').parse(open(sys.argv[1]).read())\nheads = [t for t in tokens if t.type == 'th_open']\nrows = [t for t in tokens if t.type == 'tr_open']\nassert len(heads) == 7, len(heads)\ninline = [t.content for t in tokens if t.type == 'inline']\nassert any('kind/cow_copy_anon' in c for c in inline)\nprint(len(rows))\n";
    let out = output(Command::new(&python).arg("-c").arg(script).arg(&md));
    assert!(
        out.status.success(),
        "markdown-it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rows");
    assert!(rows >= 2, "a header and a regression row: {markdown}");
}
