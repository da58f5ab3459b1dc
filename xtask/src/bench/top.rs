//! What `cowprof top` costs: one frame of a large recording (the
//! `top-bench` example), the frame rate it keeps while the collector takes
//! the two-writer fork storm (keys pressed 20 times a second in tmux), and
//! its CPU use when nothing happens.
use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use cowprof_testkit::{shell_line, Tmux};
use serde_json::{json, Value};

/// A tmux server of the benchmark's own, 200x50, running `script`.
fn window(name: &str, script: &str) -> Result<Tmux> {
    let socket = std::env::temp_dir().join(format!("cowprof-bench-{name}.sock"));
    Tmux::start(&socket, 200, 50, script).context("running tmux")
}

/// The `key=value` fields of top's last summary line in `log`.
fn summary(log: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(log).context("reading top's log")?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("top: frames="))
        .context("top's log has no summary line")?;
    let fields = line
        .split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.parse::<f64>().map_or_else(|_| json!(v), |n| json!(n)),
            )
        })
        .collect::<serde_json::Map<_, _>>();
    Ok(Value::Object(fields))
}

/// CPU time of `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit(')').next().context("stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the ')'.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let hz: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse()?;
    Ok(ticks / hz)
}

/// Runs the three `top` benchmarks; appends their section to `md`.
pub fn run(md: &mut String, cowprof: &Path, bench: &Path, two_writers: &str) -> Result<Value> {
    eprintln!("xtask: bench one frame of top with 10,000 mappings and 50,000 pages");
    let out = Command::new(bench).arg("200").output()?;
    if !out.status.success() {
        bail!("top-bench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let frame: Value = serde_json::from_slice(&out.stdout)?;

    eprintln!("xtask: bench top's frame rate during the two-writer storm");
    let log = std::env::temp_dir().join("cowprof-bench-top.log");
    let _ = std::fs::remove_file(&log);
    let script = format!(
        "exec {}",
        shell_line(&[
            &cowprof.display().to_string(),
            "top",
            "--log-file",
            &log.display().to_string(),
            "--exit-when-done",
            "--",
            "sh",
            "-c",
            two_writers,
        ])?
    );
    let tmux = window("storm", &script)?;
    let deadline = Instant::now() + Duration::from_mins(10);
    let mut n = 0u64;
    while tmux.alive() && Instant::now() < deadline {
        let key = if n.is_multiple_of(2) { "j" } else { "k" };
        tmux.keys(&[key]);
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(tmux);
    let storm = summary(&log)?;

    eprintln!("xtask: bench top's CPU use with nothing to show (10 s)");
    let idle_cpu = idle_cpu(cowprof)?;

    let get = |v: &Value, path: &[&str]| {
        path.iter()
            .fold(v, |v, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let _ = writeln!(
        md,
        "## cowprof top\n\nOne frame drawn into ratatui's `TestBackend` at 200x50 ({} frames each; the terminal's own write left out):\n",
        get(&frame, &["mappings_view", "new_report", "frames"])
    );
    let _ = writeln!(
        md,
        "| view | after a new report: mean / p99 / max ms | same report: mean / max ms |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for (name, key) in [
        ("mappings, 10,000 rows", "mappings_view"),
        ("page map, 50,000 pages", "page_map"),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} |",
            get(&frame, &[key, "new_report", "mean_ms"]),
            get(&frame, &[key, "new_report", "p99_ms"]),
            get(&frame, &[key, "new_report", "max_ms"]),
            get(&frame, &[key, "same_report", "mean_ms"]),
            get(&frame, &[key, "same_report", "max_ms"]),
        );
    }
    let _ = writeln!(
        md,
        "\nDuring the two-writer storm, keys pressed every 50 ms: {:.1} frames/s over {:.1} s ({} frames, drawing {:.2} ms mean and {:.2} ms max), {} COW faults shown, {} events lost.\n\nIdle (`top -p` of a sleeping process, 10 s): {idle_cpu:.2}% of one core.\n",
        get(&storm, &["fps"]),
        get(&storm, &["seconds"]),
        get(&storm, &["frames"]),
        get(&storm, &["draw_mean_ms"]),
        get(&storm, &["draw_max_ms"]),
        get(&storm, &["cow"]),
        get(&storm, &["lost_events"]),
    );
    Ok(json!({"frame": frame, "storm": storm, "idle_cpu_percent": idle_cpu}))
}

/// The share of a core `top -p` of a sleeping process takes, over 10 s.
fn idle_cpu(cowprof: &Path) -> Result<f64> {
    let mut idle: Child = Command::new("sleep").arg("1000").spawn()?;
    let log = std::env::temp_dir().join("cowprof-bench-top-idle.log");
    let script = format!(
        "exec {}",
        shell_line(&[
            cowprof.display().to_string(),
            "top".to_owned(),
            "--log-file".to_owned(),
            log.display().to_string(),
            "-p".to_owned(),
            idle.id().to_string(),
        ])?
    );
    let tmux = window("idle", &script)?;
    std::thread::sleep(Duration::from_secs(3));
    let pid = tmux.pane_pid().context("top's pid")?;
    let before = cpu_seconds(pid)?;
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = (cpu_seconds(pid)? - before) / 10.0 * 100.0;
    tmux.keys(&["q"]);
    std::thread::sleep(Duration::from_secs(1));
    drop(tmux);
    let _ = idle.kill();
    let _ = idle.wait();
    Ok(idle_cpu)
}
