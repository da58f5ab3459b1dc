//! What `cowprof serve` costs: a run of a workload under the exporter (for
//! the per-fault tables, scraped every second as Prometheus would), and the
//! exporter watching every process (`-a`) through the two-writer fork
//! storm: how long a scrape takes, its size, and the exporter's CPU and
//! memory.
use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader},
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

/// A running `cowprof serve`, stopped with SIGINT on drop.
pub(crate) struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    pub(crate) fn start(cowprof: &Path, args: &[&str]) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(cowprof)
            .args(["serve", "--listen", &addr.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting cowprof serve")?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("cowprof: serving") => break,
                Some(Ok(_)) => {}
                other => bail!("cowprof serve did not start: {other:?}"),
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, addr })
    }

    /// A scrape: its wall time and its body.
    pub(crate) fn scrape(&self) -> Result<(Duration, String)> {
        scrape(self.addr)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn scrape(addr: SocketAddr) -> Result<(Duration, String)> {
    let started = Instant::now();
    let body = ureq::get(format!("http://{addr}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .context("scraping cowprof serve")?;
    Ok((started.elapsed(), body))
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Scrapes every second on a thread until dropped; the scrapes' wall times.
struct Scraper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Duration>>>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut times = Vec::new();
            while !flag.load(Ordering::Acquire) {
                if let Ok((took, _)) = scrape(addr) {
                    times.push(took);
                }
                let next = Instant::now() + Duration::from_secs(1);
                while Instant::now() < next && !flag.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            times
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Runs `argv` under `cowprof serve`, scraped every second; returns the
/// line of the workload's stdout that starts with `prefix`.
pub fn once(cowprof: &Path, argv: &[String], prefix: &str) -> Result<String> {
    let mut serve_args: Vec<&str> = vec!["--"];
    serve_args.extend(argv.iter().map(String::as_str));
    let mut serve = Serve::start(cowprof, &serve_args)?;
    let scraper = Scraper::start(serve.addr);
    let stdout = serve.child.stdout.take().context("stdout")?;
    let found = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix(prefix).map(str::to_owned));
    scraper.finish();
    drop(serve);
    found.with_context(|| format!("the workload under cowprof serve printed no {prefix}"))
}

/// A metric's value in a Prometheus-text scrape, summed over its series
/// whose labels contain `having`.
fn value(body: &str, name: &str, having: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
                && l.contains(having)
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The exporter with `-a` through the two-writer storm.
pub fn run(md: &mut String, cowprof: &Path, storm_script: &str) -> Result<Value> {
    eprintln!("xtask: bench cowprof serve -a under the two-writer storm");
    let serve = Serve::start(cowprof, &["-a"])?;
    let (_, before) = serve.scrape()?;
    let started = Instant::now();
    let scraper = Scraper::start(serve.addr);
    let status = Command::new("sh")
        .args(["-c", storm_script])
        .status()
        .context("running the storm")?;
    if !status.success() {
        bail!("the storm failed: {status}");
    }
    let wall = started.elapsed().as_secs_f64();
    let mut times = scraper.finish();
    std::thread::sleep(Duration::from_millis(500));
    let (last_took, after) = serve.scrape()?;
    times.push(last_took);
    times.sort();
    let cpu = value(&after, "process_cpu_seconds_total", "")
        - value(&before, "process_cpu_seconds_total", "");
    let rss_mib = value(&after, "process_resident_memory_bytes", "") / 1_048_576.0;
    let faults = value(&after, "cowprof_cow_faults_total", "comm=\"cow-workload\"");
    let lost = value(&after, "cowprof_events_lost_total", "");
    let series = after.lines().filter(|l| !l.starts_with('#')).count();
    #[expect(clippy::cast_precision_loss, reason = "sizes for display")]
    let kib = after.len() as f64 / 1024.0;
    let p = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index"
        )]
        let i = ((times.len() - 1) as f64 * q).round() as usize;
        millis(times[i])
    };
    let cpu_percent = 100.0 * cpu / wall;
    let _ = writeln!(md, "## cowprof serve -a under the two-writer fork storm\n");
    let _ = writeln!(
        md,
        "Scraped every second during the storm ({wall:.1} s). The writers' faults counted: {faults:.0} (`comm=\"cow-workload\"`), lost events {lost:.0}.\n"
    );
    let _ = writeln!(md, "| scrapes | scrape time p50 / p99 / max | exposition | series | exporter CPU | exporter RSS |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| {} | {:.2} / {:.2} / {:.2} ms | {kib:.1} KiB | {series} | {cpu_percent:.1}% of a core | {rss_mib:.1} MiB |\n",
        times.len(),
        p(0.5),
        p(0.99),
        millis(*times.last().unwrap_or(&Duration::ZERO)),
    );
    Ok(json!({
        "wall_s": wall,
        "scrapes": times.len(),
        "scrape_ms": times.iter().map(|t| millis(*t)).collect::<Vec<_>>(),
        "exposition_kib": kib,
        "series": series,
        "cpu_percent": cpu_percent,
        "rss_mib": rss_mib,
        "writer_faults": faults,
        "lost_events": lost,
    }))
}
