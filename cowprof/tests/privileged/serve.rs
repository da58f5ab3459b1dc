//! `cowprof serve`: exact counts scraped over HTTP, the formats, bounded
//! cardinality with 10,000 short-lived processes, and where it listens.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::harness::{bpf_available, cowprof, forced_probe, in_vm, output, scratch, workload};

/// A running `cowprof serve`, stopped with SIGINT on drop.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    stderr: PathBuf,
}

impl Exporter {
    /// Starts `cowprof serve --listen ADDR ARGS` and waits until it serves.
    pub fn start(dir: &Path, listen: Option<SocketAddr>, args: &[String]) -> Self {
        let stderr = dir.join(format!("serve-{}.err", std::process::id()));
        let mut cmd = Command::new(cowprof());
        cmd.arg("serve");
        if let Some(listen) = listen {
            cmd.arg("--listen").arg(listen.to_string());
        }
        if let Some(p) = forced_probe() {
            cmd.arg(format!("--probe={p}"));
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("cowprof serve starts");
        let mut exporter = Self {
            child,
            addr: listen.unwrap_or_else(|| "127.0.0.1:9464".parse().expect("address")),
            stderr,
        };
        exporter.wait_for_stderr("cowprof: serving");
        // The address it bound, as it says: `--listen HOST:0` takes a port
        // no other test can race for.
        let stderr = exporter.stderr();
        if let Some(bound) = stderr
            .split("serving http://")
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next())
            .and_then(|addr| addr.parse().ok())
        {
            exporter.addr = bound;
        }
        exporter
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until stderr holds `what`; fails if cowprof exits first.
    pub fn wait_for_stderr(&mut self, what: &str) {
        let deadline = Instant::now() + crate::harness::TIMEOUT;
        while !self.stderr().contains(what) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "cowprof serve exited ({status}) before {what:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} in:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` with `Accept`: the Content-Type and the body.
    pub fn get(&self, path: &str, accept: Option<&str>) -> (u16, String, String) {
        get(self.addr, path, accept).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The Prometheus-text exposition, as samples.
    pub fn samples(&self) -> Vec<Sample> {
        let (status, _, body) = self.get("/metrics", None);
        assert_eq!(status, 200);
        parse(&body)
    }

    /// Scrapes until three scrapes a second apart agree (the last batch
    /// of tallies has arrived, even in an emulated guest), then returns the
    /// samples.
    pub fn settled(&self) -> Vec<Sample> {
        let mut last = self.samples();
        let mut agreed = 0;
        let deadline = Instant::now() + crate::harness::TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "the exporter's counts never settled:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_secs(1));
            let now = self.samples();
            let faults = |s: &[Sample]| {
                s.iter()
                    .filter(|s| s.name == "cowprof_cow_faults_total")
                    .map(|s| (s.labels.clone(), s.value.to_bits()))
                    .collect::<BTreeSet<_>>()
            };
            if faults(&now) == faults(&last) {
                agreed += 1;
                if agreed == 2 {
                    return now;
                }
            } else {
                agreed = 0;
            }
            last = now;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id().cast_signed(), libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET: status, Content-Type, body.
pub fn get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> Result<(u16, String, String), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut request = agent.get(format!("http://{addr}{path}"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let mut response = request.call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, content_type, body))
}

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Reads samples from the Prometheus text format as cowprof writes it
/// (label values without `,` or `"`; the strict parsers run in
/// `prometheus.rs`).
pub fn parse(body: &str) -> Vec<Sample> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once("=\"").expect("label=\"value\"");
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// A free port on loopback.
/// A port free now, for a program that cannot say which it bound
/// (Prometheus); another process may take it before that program does.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Where `cowprof serve` listens in the tests: loopback, on a port the
/// kernel picks (`Exporter::start` reads the one bound).
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn copies_of(samples: &[Sample], comm: &str) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == "cowprof_cow_faults_total"
                && s.label("kind") == "cow_copy_anon"
                && s.label("comm") == comm
        })
        .map(|s| s.value)
        .sum()
}

#[test]
#[expect(clippy::float_cmp, reason = "counts are integers, exact in an f64")]
fn serve_counts_each_process_exactly_in_both_formats() {
    if !bpf_available() {
        return;
    }
    let dir = scratch();
    let pages = 100;
    let mut exporter = Exporter::start(
        dir.path(),
        Some(loopback()),
        &[
            "--sections".into(),
            "--symbols".into(),
            // The latency histogram is opt-in.
            "--latency".into(),
            // The three children, their parent, and the held child
            // before its exec (comm "cowprof"; it may fault): 5 < 6.
            "--top".into(),
            "6".into(),
            "--".into(),
            workload().display().to_string(),
            "many-comms".into(),
            "--pages".into(),
            pages.to_string(),
            "--read".into(),
            "3".into(),
        ],
    );
    exporter.wait_for_stderr("the command exited (0)");
    let samples = exporter.settled();
    for child in ["cw000000", "cw000001", "cw000002"] {
        assert_eq!(
            copies_of(&samples, child),
            f64::from(pages),
            "{child}: one cow_copy_anon per page it wrote"
        );
        let bytes: f64 = samples
            .iter()
            .filter(|s| s.name == "cowprof_cow_copied_bytes_total" && s.label("comm") == child)
            .map(|s| s.value)
            .sum();
        assert_eq!(bytes, f64::from(pages) * 4096.0, "{child}: copied bytes");
    }
    let lost = samples
        .iter()
        .find(|s| s.name == "cowprof_events_lost_total");
    assert_eq!(lost.map(|s| s.value), Some(0.0));
    let count = |name: &str| samples.iter().filter(|s| s.name == name).count();
    assert!(
        count("cowprof_cow_fault_latency_seconds_bucket") >= 17,
        "the latency histogram"
    );
    assert_eq!(count("cowprof_probe_info"), 1);
    assert_eq!(count("cowprof_build_info"), 1);
    assert_eq!(count("process_cpu_seconds_total"), 1);
    assert_eq!(count("process_resident_memory_bytes"), 1);
    // Sections and symbols are capped like the rest: at most K pairs and
    // "other".
    for (name, label) in [
        ("cowprof_cow_section_faults_total", "section"),
        ("cowprof_cow_symbol_faults_total", "symbol"),
    ] {
        let pairs: BTreeSet<(&str, &str)> = samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.label("image"), s.label(label)))
            .collect();
        assert!(
            !pairs.is_empty(),
            "{name}: the loader and libc write their .data"
        );
        assert!(pairs.len() <= 7, "{name}: {pairs:?}");
    }
    // Content negotiation: what Prometheus asks for gets OpenMetrics.
    let (_, content_type, body) = exporter.get(
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    );
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"));
    let (_, content_type, body) = exporter.get("/metrics", Some("*/*"));
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(!body.contains("# EOF") && body.contains("# TYPE cowprof_cow_faults_total counter"));
    assert_eq!(exporter.get("/healthz", None).0, 200);
    assert_eq!(exporter.get("/nothing", None).0, 404);
}

#[test]
fn serve_keeps_within_k_series_with_10000_processes_and_drops_them_after_grace() {
    if !bpf_available() || in_vm() {
        // 10,000 forks take minutes under emulation; the counting itself
        // is covered in the guests by the test above.
        return;
    }
    let dir = scratch();
    let k = 5;
    let exporter = Exporter::start(
        dir.path(),
        Some(loopback()),
        &[
            "--top".into(),
            k.to_string(),
            "--grace".into(),
            "3".into(),
            "--".into(),
            workload().display().to_string(),
            "many-comms".into(),
            "--pages".into(),
            "2".into(),
            "--read".into(),
            "10000".into(),
        ],
    );
    let mut scrapes = 0;
    let mut most_comms = 0;
    let mut in_other: f64 = 0.0;
    let check = |samples: &[Sample]| {
        let values = |label: &str| {
            samples
                .iter()
                .filter(|s| s.name.starts_with("cowprof_cow_"))
                .filter_map(|s| s.labels.get(label).cloned())
                .collect::<BTreeSet<_>>()
        };
        let (comms, images) = (values("comm"), values("image"));
        assert!(comms.len() <= k + 1, "{} comms: {comms:?}", comms.len());
        assert!(images.len() <= k + 1, "{} images: {images:?}", images.len());
        for s in samples.iter().filter(|s| s.name == "cowprof_label_values") {
            assert!(s.value <= 5.0, "{s:?}");
        }
        comms.len()
    };
    loop {
        let done = exporter.stderr().contains("the command exited");
        let samples = exporter.samples();
        most_comms = most_comms.max(check(&samples));
        in_other = in_other.max(
            samples
                .iter()
                .filter(|s| s.name == "cowprof_cow_faults_total" && s.label("comm") == "other")
                .map(|s| s.value)
                .sum(),
        );
        scrapes += 1;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        exporter.stderr().contains("the command exited (0)"),
        "{}",
        exporter.stderr()
    );
    assert!(
        in_other > 0.0,
        "the processes outside the top K are summed in \"other\""
    );
    eprintln!("{scrapes} scrapes while 10,000 processes ran; at most {most_comms} comms");
    // Every process has exited: after the grace period their series go.
    let deadline = Instant::now() + crate::harness::TIMEOUT;
    loop {
        let samples = exporter.samples();
        let left: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name.starts_with("cowprof_cow_") && s.label("comm").starts_with("cw"))
            .collect();
        if left.is_empty() {
            let expired = samples
                .iter()
                .find(|s| s.label("label") == "comm" && s.label("reason") == "expired")
                .map_or(0.0, |s| s.value);
            assert!(expired >= 1.0, "cowprof_series_dropped_total counts them");
            break;
        }
        assert!(Instant::now() < deadline, "series left: {left:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A second address of this host (TEST-NET-2, on one end of a veth pair:
/// the kernels here have no dummy interfaces), removed on drop.
struct Dummy(&'static str);

impl Dummy {
    const ADDR: [u8; 4] = [198, 51, 100, 77];

    fn add() -> Self {
        let name = "cowprof-t0";
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stderr(Stdio::null())
            .status();
        for args in [
            vec![
                "link",
                "add",
                name,
                "type",
                "veth",
                "peer",
                "name",
                "cowprof-t1",
            ],
            vec!["addr", "add", "198.51.100.77/32", "dev", name],
            vec!["link", "set", name, "up"],
            vec!["link", "set", "cowprof-t1", "up"],
        ] {
            let out = output(Command::new("ip").args(&args));
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Self(name)
    }
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

#[test]
fn serve_listens_on_loopback_unless_told_and_says_why_it_cannot() {
    if !bpf_available() || in_vm() {
        // The guests have no `ip` to make a second address with.
        return;
    }
    let dir = scratch();
    let dummy = Dummy::add();
    let outside = SocketAddr::from((Dummy::ADDR, 9464));
    {
        let exporter = Exporter::start(dir.path(), None, &["-p".into(), "1".into()]);
        assert_eq!(
            exporter.get("/healthz", None).0,
            200,
            "127.0.0.1:9464 by default"
        );
        let err = TcpStream::connect_timeout(&outside, Duration::from_secs(5))
            .expect_err("unreachable on a non-loopback address");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    }
    {
        let listen = SocketAddr::from((Dummy::ADDR, 0));
        let exporter = Exporter::start(dir.path(), Some(listen), &["-p".into(), "1".into()]);
        assert_eq!(exporter.addr.ip(), listen.ip(), "--listen names it");
        assert_ne!(exporter.addr.port(), 0, "the port bound is printed");
        assert_eq!(
            get(exporter.addr, "/healthz", None).map(|r| r.0),
            Ok(200),
            "--listen names it"
        );
        drop(exporter);
    }
    drop(dummy);
    // A bad --listen value and a taken port: one line each, distinct codes.
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("address").port();
    for (listen, code, says) in [
        ("nonsense".to_owned(), 2, "is not HOST:PORT"),
        ("127.0.0.1".to_owned(), 2, "is not HOST:PORT"),
        (format!("127.0.0.1:{port}"), 11, "cannot listen on"),
        ("198.51.100.254:9464".to_owned(), 11, "cannot listen on"),
    ] {
        let out = output(Command::new(cowprof()).args(["serve", "--listen", &listen, "-p", "1"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{listen}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{listen}: one line: {stderr}");
        assert!(stderr.contains(says), "{listen}: {stderr}");
    }
    drop(taken);
}
