//! `cowprof serve` read by its real consumers: a Prometheus scraping it
//! during a fork workload, whose HTTP API answers every expression of the
//! dashboard and the rules; promtool (metrics, rules, rule unit tests); and
//! `prometheus_client`'s strict OpenMetrics parser.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    harness::{
        bpf_available, in_vm, output, output_with_input, python, scratch, workload, TIMEOUT,
    },
    serve::{loopback, Exporter},
};

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// A Prometheus of the test's own on loopback, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Self {
        let rules = dashboards().join("prometheus/cowprof-rules.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: cowprof\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .expect("config");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], crate::serve::free_port()));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus runs (cargo xtask test installs it)");
        let prometheus = Self { child, addr };
        let deadline = Instant::now() + TIMEOUT;
        while crate::serve::get(addr, "/-/ready", None).map(|r| r.0) != Ok(200) {
            assert!(Instant::now() < deadline, "prometheus never got ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    fn api(&self, path: &str, query: Option<&str>) -> Value {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut request = agent.get(format!("http://{}{path}", self.addr));
        if let Some(q) = query {
            request = request.query("query", q);
        }
        let body = request
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let value: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(value["status"], "success", "{path} {query:?}: {value}");
        value["data"].clone()
    }

    /// An instant query's result vector.
    fn query(&self, expr: &str) -> Vec<Value> {
        self.api("/api/v1/query", Some(expr))["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every query of the dashboard, with Grafana's variables given values.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dashboards().join("cowprof.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let expr = expr
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m");
            out.push((format!("panel {:?}", panel["title"]), expr));
        }
    }
    out
}

/// The part of an alert's expression before its threshold: the full
/// expression is empty by design while the alert should not fire (promtool
/// tests when it fires).
fn before_threshold(expr: &str) -> &str {
    [" > ", " == ", " < ", " >= ", " <= "]
        .iter()
        .filter_map(|op| expr.rsplit_once(op).map(|(lhs, _)| lhs))
        .max_by_key(|lhs| lhs.len())
        .unwrap_or(expr)
}

#[test]
fn prometheus_scrapes_serve_and_every_dashboard_and_rule_expression_has_data() {
    if !bpf_available() || in_vm() {
        // The guests have no Prometheus; the counting is tested there by
        // `serve_counts_each_process_exactly_in_both_formats`.
        return;
    }
    let dir = scratch();
    let pages = 64;
    let runs = 5;
    let script = format!(
        "for i in $(seq {runs}); do {} many-comms --pages {pages} --read 1 || exit 1; sleep 1; done",
        workload().display()
    );
    let mut exporter = Exporter::start(
        dir.path(),
        Some(loopback()),
        &[
            "--latency".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script,
        ],
    );
    let prometheus = Prometheus::start(dir.path(), exporter.addr);
    exporter.wait_for_stderr("the command exited (0)");
    // The known answer: each run's child writes its pages once, under its
    // own comm.
    let expected = f64::from(pages * runs);
    let copies = "sum(cowprof_cow_faults_total{kind=\"cow_copy_anon\",comm=\"cw000000\"})";
    let deadline = Instant::now() + Duration::from_mins(2);
    let mut last = None;
    loop {
        let value = prometheus.query(copies).first().map(|v| {
            v["value"][1]
                .as_str()
                .expect("value")
                .parse::<f64>()
                .expect("number")
        });
        if value == Some(expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{copies} = {value:?} (was {last:?}), not {expected}"
        );
        last = value;
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every expression of the dashboard and the rules (the unit test
    // `the_dashboard_and_rules_read_only_what_the_exporter_emits` checks
    // their names), once the recording rules have had two evaluations over
    // the scraped samples.
    let rules = prometheus.api("/api/v1/rules", None);
    let mut queries = dashboard_queries();
    for group in rules["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let (name, query) = (
                rule["name"].as_str().expect("name"),
                rule["query"].as_str().expect("query"),
            );
            match rule["type"].as_str() {
                Some("recording") => {
                    queries.push((format!("recording rule {name}"), query.to_owned()));
                    queries.push((format!("recorded series {name}"), name.to_owned()));
                }
                _ => queries.push((format!("alert {name}"), before_threshold(query).to_owned())),
            }
        }
    }
    assert!(queries.len() >= 20, "{queries:?}");
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let empty: Vec<&(String, String)> = queries
            .iter()
            .filter(|(_, e)| prometheus.query(e).is_empty())
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no data for: {empty:#?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    // The dashboard's host variable.
    let hosts = prometheus.api("/api/v1/label/instance/values", None);
    assert!(hosts.as_array().is_some_and(|h| h
        .iter()
        .any(|h| h == &Value::from(exporter.addr.to_string()))));
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    if !bpf_available() || in_vm() {
        return;
    }
    let rules = dashboards().join("prometheus");
    for args in [
        vec!["check", "rules", "cowprof-rules.yml"],
        vec!["test", "rules", "cowprof-rules.test.yml"],
    ] {
        let out = output(Command::new("promtool").args(&args).current_dir(&rules));
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn promtool_and_the_strict_openmetrics_parser_read_the_exposition() {
    if !bpf_available() || in_vm() {
        return;
    }
    let dir = scratch();
    let mut exporter = Exporter::start(
        dir.path(),
        Some(loopback()),
        &[
            "--sections".into(),
            "--symbols".into(),
            "--latency".into(),
            "--".into(),
            workload().display().to_string(),
            "many-comms".into(),
            "--pages".into(),
            "16".into(),
            "--read".into(),
            "2".into(),
        ],
    );
    exporter.wait_for_stderr("the command exited (0)");
    exporter.settled();
    let (_, _, text) = exporter.get("/metrics", Some("text/plain"));
    let out = output_with_input(
        Command::new("promtool").args(["check", "metrics"]),
        Some(text.as_bytes()),
    );
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(python) = python() else {
        return;
    };
    let (_, content_type, openmetrics) =
        exporter.get("/metrics", Some("application/openmetrics-text"));
    assert!(content_type.starts_with("application/openmetrics-text"));
    let families = |parser: &str, text: &str| {
        let script = format!(
            "import sys\nfrom {parser} import text_string_to_metric_families as parse\nfor f in parse(sys.stdin.read()):\n    print(f.name, f.type, len(f.samples))\n"
        );
        let out = output_with_input(
            Command::new(&python).args(["-c", &script]),
            Some(text.as_bytes()),
        );
        assert!(
            out.status.success(),
            "{parser}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let strict = families("prometheus_client.openmetrics.parser", &openmetrics);
    for family in [
        "cowprof_cow_faults counter",
        "cowprof_cow_copied_bytes counter",
        "cowprof_cow_section_faults counter",
        "cowprof_cow_symbol_faults counter",
        "cowprof_cow_fault_latency_seconds histogram",
        "cowprof_events_lost counter",
        "cowprof_probe info",
        "cowprof_build info",
        "cowprof_probe_programs gauge",
        "process_cpu_seconds counter",
        "process_resident_memory_bytes gauge",
    ] {
        assert!(
            strict.lines().any(|l| l.starts_with(&format!("{family} "))),
            "{family} in:\n{strict}"
        );
    }
    let classic = families("prometheus_client.parser", &text);
    assert!(
        classic.contains("cowprof_cow_fault_latency_seconds histogram"),
        "{classic}"
    );
}
