//! Reading a profile back, timed: `report`'s views, and a replay's steps.
//! Used by `cargo xtask bench` on its 10M-event profile.
//!
//! ```text
//! read-bench report DIR [VIEW,...]   the views (default: process)
//! read-bench replay DIR STEPS         STEPS moments forward, then a seek
//!                                     back to a quarter and on to the end
//! ```
//! Each prints one JSON line with its times and its peak RSS (`VmHWM`).
use std::{path::PathBuf, time::Instant};

use cowprof::profile::{offline, read::Profile, scan::Filters, timeline::Timeline};
use cowprof_model::state::View;

fn peak_rss_kib() -> u64 {
    cowprof::kernel::procstat::own_status()
        .and_then(|s| s.vmhwm)
        .unwrap_or(0)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn usage() -> ! {
    eprintln!("usage: read-bench report DIR [VIEW,...] | read-bench replay DIR STEPS");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
        usage()
    };
    let profile = Profile::open(&PathBuf::from(dir)).unwrap_or_else(|e| {
        eprintln!("read-bench: {e}");
        std::process::exit(1)
    });
    let events = profile.events;
    match mode.as_str() {
        "report" => {
            let views: Vec<View> = args
                .get(2)
                .map_or("process", String::as_str)
                .split(',')
                .filter_map(View::from_name)
                .collect();
            let start = Instant::now();
            let views = offline::views(&profile, &views, &Filters::default()).expect("the views");
            let took = ms(start);
            println!(
                "{}",
                serde_json::json!({
                    "events": events,
                    "ms": took,
                    "processes": views.processes.len(),
                    "peak_rss_kib": peak_rss_kib(),
                })
            );
        }
        "replay" => {
            let steps: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
            let length = profile.manifest.duration_s;
            let start = Instant::now();
            let mut timeline = Timeline::open(profile).expect("the replay");
            let open_ms = ms(start);
            let mut step_ms = Vec::new();
            for step in 1..=steps {
                let at = length * f64::from(step) / f64::from(steps);
                let start = Instant::now();
                timeline.report_at(Some(at)).expect("a moment");
                step_ms.push(ms(start));
            }
            let start = Instant::now();
            timeline.report_at(Some(length / 4.0)).expect("a quarter");
            let back_ms = ms(start);
            let start = Instant::now();
            timeline.report_at(None).expect("the end");
            let end_ms = ms(start);
            let mut sorted = step_ms.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({
                    "events": events,
                    "open_ms": open_ms,
                    "steps": steps,
                    "step_ms_mean": step_ms.iter().sum::<f64>() / f64::from(steps.max(1)),
                    "step_ms_max": sorted.last().copied().unwrap_or(0.0),
                    "step_ms_median": sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
                    "seek_back_ms": back_ms,
                    "to_end_ms": end_ms,
                    "peak_rss_kib": peak_rss_kib(),
                })
            );
        }
        _ => usage(),
    }
}
