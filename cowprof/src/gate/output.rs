//! The verdict as a person or a CI system reads it: a text table, JSON
//! (with a schema version), a GitHub-flavoured markdown table, `JUnit` XML
//! (a test case per metric), and GitHub Actions annotations.
use std::fmt::Write as _;

use super::verdict::{Line, Status, Verdict};

/// The JSON report's schema version.
pub const JSON_SCHEMA_VERSION: u32 = 1;

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn status(line: &Line) -> &'static str {
    match line.status {
        Status::Pass => "ok",
        Status::Regression => "REGRESSION",
        Status::Stale => "stale",
    }
}

/// Why a regression happened, in words: the contributors that grew.
fn explanation(line: &Line) -> String {
    let parts: Vec<String> = line
        .grew
        .iter()
        .map(|g| {
            format!(
                "{} {} +{} ({} → {})",
                g.dimension,
                g.key,
                g.current - g.baseline,
                g.baseline,
                g.current
            )
        })
        .collect();
    if parts.is_empty() {
        "no recorded contributor grew".to_owned()
    } else {
        parts.join("; ")
    }
}

fn summary(verdict: &Verdict) -> String {
    let word = if verdict.passed() { "PASS" } else { "FAIL" };
    format!(
        "gate: {word}: {} metrics, {} regressions, {} stale{}",
        verdict.lines.len(),
        verdict.regressions,
        verdict.stale,
        if verdict.strict { " (strict)" } else { "" }
    )
}

/// Lines worth showing: all but plain passes, unless `all`.
fn shown(verdict: &Verdict, all: bool) -> impl Iterator<Item = &Line> {
    verdict
        .lines
        .iter()
        .filter(move |l| all || l.status != Status::Pass || !l.reason.is_empty())
}

/// The human table: every metric that is not a plain pass (all with
/// `all`), then each regression's contributors, then the verdict.
#[must_use]
pub fn table(verdict: &Verdict, all: bool) -> String {
    let mut out = String::new();
    for note in &verdict.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let width = shown(verdict, all)
        .map(|l| l.metric.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 80);
    let _ = writeln!(
        out,
        "{:<width$} {:>12} {:>12} {:>9} {:>8}  {:<10} NOTE",
        "METRIC", "BASELINE", "CURRENT", "DELTA", "ALLOWED", "STATUS"
    );
    for l in shown(verdict, all) {
        let mut note = l.reason.clone();
        if let Some((lo, hi)) = l.spread {
            format!("{note} (runs {lo}..{hi})")
                .trim()
                .clone_into(&mut note);
        }
        let _ = writeln!(
            out,
            "{:<width$} {:>12} {:>12} {:>+9} {:>8}  {:<10} {note}",
            l.metric,
            show(l.expected),
            show(l.current),
            l.delta(),
            format!("±{}", l.allowed),
            status(l)
        );
    }
    for l in verdict
        .lines
        .iter()
        .filter(|l| l.status == Status::Regression)
    {
        let _ = writeln!(out, "{} grew: {}", l.metric, explanation(l));
    }
    let _ = writeln!(out, "{}", summary(verdict));
    out
}

/// GitHub-flavoured markdown: a table and the explanations.
#[must_use]
pub fn markdown(verdict: &Verdict) -> String {
    let mut out = format!("### cowprof gate: {}\n\n", summary(verdict));
    for note in &verdict.notes {
        let _ = writeln!(out, "> {note}\n");
    }
    out.push_str("| metric | baseline | current | delta | allowed | status | note |\n");
    out.push_str("|---|---:|---:|---:|---:|---|---|\n");
    let cell = |s: &str| s.replace('|', "\\|");
    for l in shown(verdict, false) {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {:+} | ±{} | {} | {} |",
            cell(&l.metric),
            show(l.expected),
            show(l.current),
            l.delta(),
            l.allowed,
            status(l),
            cell(&l.reason)
        );
    }
    for l in verdict
        .lines
        .iter()
        .filter(|l| l.status == Status::Regression)
    {
        let _ = writeln!(
            out,
            "\n- `{}` grew: {}",
            cell(&l.metric),
            cell(&explanation(l))
        );
    }
    out
}

/// JSON, with a schema version.
#[must_use]
pub fn json(verdict: &Verdict) -> String {
    let lines: Vec<serde_json::Value> = verdict
        .lines
        .iter()
        .map(|l| {
            let mut v = serde_json::to_value(l).unwrap_or_default();
            v["delta"] = serde_json::json!(i64::try_from(l.delta()).unwrap_or(i64::MAX));
            v
        })
        .collect();
    let doc = serde_json::json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "passed": verdict.passed(),
        "regressions": verdict.regressions,
        "stale": verdict.stale,
        "strict": verdict.strict,
        "notes": verdict.notes,
        "metrics": lines,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// `JUnit` XML (by `quick-junit`): one test case per metric, a failure per
/// regression (and per stale baseline under `--strict`).
#[must_use]
pub fn junit(verdict: &Verdict) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let fails =
        |l: &Line| l.status == Status::Regression || (verdict.strict && l.status == Status::Stale);
    let mut suite = TestSuite::new("cowprof gate");
    for l in &verdict.lines {
        let mut case = if fails(l) {
            let mut failed = TestCaseStatus::non_success(NonSuccessKind::Failure);
            failed
                .set_message(format!(
                    "{}: {} → {} (allowed ±{}): {}",
                    l.metric,
                    show(l.expected),
                    show(l.current),
                    l.allowed,
                    l.reason
                ))
                .set_type(status(l))
                .set_description(explanation(l));
            TestCase::new(l.metric.as_str(), failed)
        } else {
            let mut passed = TestCase::new(l.metric.as_str(), TestCaseStatus::success());
            if !l.reason.is_empty() {
                passed.set_system_out(l.reason.as_str());
            }
            passed
        };
        case.set_classname("cowprof.gate");
        suite.add_test_case(case);
    }
    let mut report = Report::new("cowprof gate");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

/// GitHub Actions: an `::error` line per regression (for stdout), and the
/// markdown report appended to `$GITHUB_STEP_SUMMARY`.
#[must_use]
pub fn github(verdict: &Verdict) -> String {
    let mut out = String::new();
    for l in verdict
        .lines
        .iter()
        .filter(|l| l.status == Status::Regression)
    {
        let message = format!(
            "{}: {} → {} (allowed ±{}); grew: {}",
            l.metric,
            show(l.expected),
            show(l.current),
            l.allowed,
            explanation(l)
        );
        // Workflow commands escape %, CR and LF.
        let message = message
            .replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        let _ = writeln!(out, "::error title=cowprof gate regression::{message}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::verdict::Growth;

    fn verdict() -> Verdict {
        Verdict {
            lines: vec![
                Line {
                    metric: "kind/cow_copy_anon".into(),
                    expected: Some(1000),
                    current: Some(1100),
                    spread: Some((1099, 1101)),
                    allowed: 10,
                    status: Status::Regression,
                    reason: "over tolerance".into(),
                    grew: vec![Growth {
                        dimension: "writer".into(),
                        key: "write<pages>".into(),
                        baseline: 1000,
                        current: 1100,
                    }],
                },
                Line {
                    metric: "process/a|b".into(),
                    expected: Some(5),
                    current: Some(5),
                    spread: None,
                    allowed: 4,
                    status: Status::Pass,
                    reason: String::new(),
                    grew: Vec::new(),
                },
            ],
            regressions: 1,
            ..Verdict::default()
        }
    }

    #[test]
    fn every_format_names_the_regression() {
        let v = verdict();
        let t = table(&v, false);
        assert!(t.contains("kind/cow_copy_anon"));
        assert!(t.contains("REGRESSION"));
        assert!(t.contains("writer write<pages> +100"));
        assert!(t.ends_with("gate: FAIL: 2 metrics, 1 regressions, 0 stale\n"));
        assert!(!t.contains("process/a|b"), "plain passes are left out");
        assert!(table(&v, true).contains("process/a|b"));
        let j: serde_json::Value = serde_json::from_str(&json(&v)).unwrap();
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["metrics"][0]["delta"], 100);
        let x = junit(&v);
        assert!(x.contains("write&lt;pages&gt;"));
        assert_eq!(x.matches("<testcase ").count(), 2);
        assert_eq!(x.matches("<failure ").count(), 1);
        assert!(github(&v).starts_with("::error title=cowprof gate regression::kind/cow_copy_anon"));
        assert!(markdown(&v)
            .contains("| `kind/cow_copy_anon` | 1000 | 1100 | +100 | ±10 | REGRESSION |"));
    }
}
