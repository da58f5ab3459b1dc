//! The exporter on the host: what it emits for known tallies, how it
//! bounds and ends series, and that the dashboards and rules read only
//! what it emits.
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use cowprof_common::Kind;

use super::{
    exporter::{Exporter, Limits, ProbeInfo},
    exposition::prometheus_text,
    processes::Identity,
};
use crate::{
    probe::ProbeStats,
    report::tallies::{TallyBatch, TallyRow},
};
use cowprof_model::state::KindCounts;

fn dead(_: u32) -> Option<Identity> {
    None
}

fn exporter(top: usize) -> Exporter {
    let info = ProbeInfo {
        strategy: "tracepoint",
        kernel: "6.18.0".into(),
        programs: 7,
    };
    Exporter::new(
        Limits {
            top,
            grace: Duration::from_secs(5),
            sections: true,
            symbols: true,
        },
        &info,
        dead,
    )
}

fn row(pid: u32, comm: &str, image: &str, counts: [u64; 6]) -> TallyRow {
    TallyRow {
        pid,
        comm: comm.into(),
        image: image.into(),
        section: Some(".data".into()),
        symbol: Some("counter".into()),
        counts: KindCounts::from_array(counts),
    }
}

fn batch(rows: Vec<TallyRow>) -> TallyBatch {
    let mut batch = TallyBatch {
        rows,
        stats: Some(ProbeStats {
            lost_events: 3,
            ..ProbeStats::default()
        }),
        ..TallyBatch::default()
    };
    batch.latency.record(Kind::CowCopyAnon, 3_000);
    batch
}

/// `name{labels} value` lines of the Prometheus text format.
fn lines(exporter: &Exporter) -> Vec<String> {
    prometheus_text(&exporter.openmetrics())
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn known_tallies_give_known_counters() {
    let mut e = exporter(4);
    let now = Instant::now();
    e.apply(
        &batch(vec![row(10, "redis", "[anon]", [5, 0, 0, 0, 2, 0])]),
        now,
    );
    e.apply(
        &batch(vec![row(10, "redis", "[anon]", [1, 0, 0, 0, 0, 0])]),
        now,
    );
    let text = lines(&e);
    let has = |line: &str| text.iter().any(|l| l == line);
    assert!(has(
        r#"cowprof_cow_faults_total{kind="cow_copy_anon",comm="redis",image="[anon]"} 6"#
    ));
    assert!(has(
        r#"cowprof_cow_faults_total{kind="cow_reuse",comm="redis",image="[anon]"} 2"#
    ));
    assert!(has(
        r#"cowprof_cow_copied_bytes_total{comm="redis",image="[anon]"} 24576"#
    ));
    assert!(
        has("cowprof_events_lost_total 3"),
        "the kernel's counter, once"
    );
    assert!(has(
        r#"cowprof_cow_fault_latency_seconds_count{kind="cow_copy_anon"} 2"#
    ));
    assert!(has(
        r#"cowprof_cow_section_faults_total{kind="cow_copy_anon",image="[anon]",section=".data"} 6"#
    ));
    assert!(has(
        r#"cowprof_probe_info{strategy="tracepoint",kernel="6.18.0"} 1"#
    ));
    assert!(has("cowprof_probe_programs 7"));
}

#[test]
fn values_past_k_share_other_and_end_after_the_grace_period() {
    let mut e = exporter(1);
    let t0 = Instant::now();
    e.apply(
        &batch(vec![row(1, "first", "/bin/a", [1, 0, 0, 0, 0, 0])]),
        t0,
    );
    e.apply(
        &batch(vec![row(2, "second", "/bin/b", [1, 0, 0, 0, 0, 0])]),
        t0,
    );
    let text = lines(&e);
    let has = |line: &str| text.iter().any(|l| l == line);
    assert!(has(
        r#"cowprof_cow_faults_total{kind="cow_copy_anon",comm="first",image="/bin/a"} 1"#
    ));
    assert!(has(
        r#"cowprof_cow_faults_total{kind="cow_copy_anon",comm="other",image="other"} 1"#
    ));
    // Both processes are gone (the probe finds none): after the grace
    // period their values and series end, and what "other" holds stays.
    e.maintain(t0 + Duration::from_secs(4));
    assert!(lines(&e).iter().any(|l| l.contains(r#"comm="first""#)));
    e.maintain(t0 + Duration::from_secs(6));
    let text = lines(&e);
    assert!(
        !text.iter().any(|l| l.contains(r#"comm="first""#)),
        "{text:#?}"
    );
    assert!(text
        .iter()
        .any(|l| l == r#"cowprof_series_dropped_total{label="comm",reason="expired"} 1"#));
    assert!(text
        .iter()
        .any(|l| l
            == r#"cowprof_cow_faults_total{kind="cow_copy_anon",comm="other",image="other"} 1"#));
    // The freed slot goes to the next value seen.
    e.apply(
        &batch(vec![row(3, "third", "/bin/c", [1, 0, 0, 0, 0, 0])]),
        t0 + Duration::from_secs(7),
    );
    assert!(lines(&e)
        .iter()
        .any(|l| l.contains(r#"comm="third",image="/bin/c""#)));
}

/// Every metric name the exporter can emit, from one exposition with every
/// option on.
fn emitted() -> BTreeSet<String> {
    let mut e = exporter(4);
    let t0 = Instant::now();
    e.apply(&batch(vec![row(1, "a", "[anon]", [1, 1, 1, 1, 1, 1])]), t0);
    e.maintain(t0);
    lines(&e)
        .iter()
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The metric names an expression reads.
fn names_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            w.starts_with("cowprof_") || w.starts_with("cowprof:") || w.starts_with("process_")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_and_rules_read_only_what_the_exporter_emits() {
    let mut known = emitted();
    let rules = include_str!("../../../dashboards/prometheus/cowprof-rules.yml");
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../dashboards/cowprof.json")).expect("JSON");
    let mut exprs: Vec<String> = Vec::new();
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- record: ") {
            known.insert(name.to_owned());
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            exprs.push(expr.to_owned());
        }
    }
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = var["definition"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    assert!(exprs.len() >= 25, "{}", exprs.len());
    for expr in &exprs {
        let names = names_in(expr);
        assert!(!names.is_empty() || expr.starts_with("up{"), "{expr}");
        let unknown: Vec<&String> = names.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{expr} reads {unknown:?}; emitted: {known:#?}"
        );
    }
}
