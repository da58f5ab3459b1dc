//! How long `top` takes to draw one frame of a large recording: the
//! mappings view with 10,000 mappings and the page map of an image with
//! 50,000 writable pages, at 200x50, into ratatui's `TestBackend` (the
//! terminal's own write is left out). Used by `cargo xtask bench`.
//!
//! ```text
//! top-bench [FRAMES]
//! ```
//! prints one JSON line: per view, the mean, p99 and max ms per frame.
use std::{sync::Arc, time::Duration, time::Instant};

use cowprof::top::{
    app::App,
    fixture,
    keymap::Action,
    render::{draw, Theme},
};
use ratatui::{backend::TestBackend, Terminal};

/// Frames of `app`; with `fresh`, each frame shows a report of its own (as
/// when a new one arrives), so the view is built anew.
fn measure(
    app: &mut App,
    report: &Arc<cowprof::report::Report>,
    fresh: bool,
    frames: usize,
) -> serde_json::Value {
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
    let theme = Theme::color();
    let mut times: Vec<f64> = (0..frames)
        .map(|i| {
            // Move the cursor each frame, as a user scrolling would.
            app.act(
                if i % 2 == 0 { Action::Down } else { Action::Up },
                Instant::now(),
            );
            let next = fresh.then(|| Arc::new(report.as_ref().clone()));
            let start = Instant::now();
            if let Some(next) = next {
                app.update(next, Duration::from_secs(1));
            }
            terminal
                .draw(|f| draw(f, app, &theme, Instant::now()))
                .expect("draws");
            let ms = start.elapsed().as_secs_f64() * 1e3;
            // top frees replaced reports on a thread of their own.
            drop(app.take_retired());
            ms
        })
        .collect();
    times.sort_by(f64::total_cmp);
    #[expect(clippy::cast_precision_loss, reason = "a mean")]
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    serde_json::json!({
        "frames": frames,
        "mean_ms": mean,
        "p99_ms": times[(times.len() * 99 / 100).min(times.len() - 1)],
        "max_ms": times[times.len() - 1],
    })
}

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
        .max(1);
    let report = Arc::new(fixture::report_with(10_000, 50_000));
    let mut app = App::fixture("bench");
    app.update(Arc::clone(&report), Duration::from_secs(1));
    let mut out = serde_json::json!({
        "mappings": report.views.values().map(Vec::len).max().unwrap_or(0),
        "pages": report.pages.len(),
    });
    for (name, view) in [("mappings_view", 1), ("page_map", 3)] {
        app.act(Action::View(view), Instant::now());
        out[name] = serde_json::json!({
            "new_report": measure(&mut app, &report, true, frames),
            "same_report": measure(&mut app, &report, false, frames),
        });
    }
    println!("{out}");
}
