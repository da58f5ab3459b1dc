//! Every view drawn with ratatui's `TestBackend`, at 80x24 and 160x48, as
//! insta snapshots (pids and times redacted).
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ratatui::{backend::TestBackend, Terminal};

use super::{draw, Theme};
use crate::top::{
    app::{App, Meta},
    fixture,
    keymap::{Action, Mode},
};

fn app() -> App {
    let mut app = App::fixture("kv-server --port 6379 (pid 4242)");
    let mut earlier = fixture::report();
    earlier.totals = cowprof_model::state::KindCounts::default();
    app.update(Arc::new(earlier), Duration::from_secs(41));
    app.update(Arc::new(fixture::report()), Duration::from_secs(42));
    app
}

fn screen(app: &mut App, width: u16, height: u16) -> String {
    screen_at(app, width, height, Instant::now())
}

/// The screen drawn at `now` (pauses are shown relative to it).
fn screen_at(app: &mut App, width: u16, height: u16, now: Instant) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| draw(f, app, &Theme::plain(), now))
        .expect("draws");
    terminal.backend().to_string()
}

fn check(name: &str, actions: &[Action]) {
    for (width, height) in [(80, 24), (160, 48)] {
        let mut app = app();
        for action in actions {
            app.act(*action, Instant::now());
        }
        let text = screen(&mut app, width, height);
        insta::with_settings!({
            filters => vec![
                (r"pid \d+", "pid [PID]"),
                (r"\d\d:\d\d:\d\d", "[TIME]"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("{name}_{width}x{height}"), text);
        });
    }
}

#[test]
fn processes() {
    check("processes", &[]);
}

#[test]
fn mappings() {
    check("mappings", &[Action::View(1)]);
}

#[test]
fn process_mappings() {
    check("process_mappings", &[Action::Drill]);
}

#[test]
fn images() {
    check("images", &[Action::View(2)]);
}

#[test]
fn page_map() {
    check(
        "page_map",
        &[Action::View(2), Action::Drill, Action::Right, Action::Right],
    );
}

#[test]
fn writers() {
    check("writers", &[Action::View(4), Action::InvertSort]);
}

#[test]
fn latency() {
    check("latency", &[Action::View(5)]);
}

#[test]
fn help() {
    check("help", &[Action::Help]);
}

#[test]
fn paused_with_lost_events_and_a_filter() {
    for (width, height) in [(80, 24), (160, 48)] {
        let mut app = app();
        let t0 = Instant::now();
        app.act(Action::Pause, t0);
        let mut lossy = fixture::report();
        lossy.kernel.lost_events = 1234;
        app.act(Action::Pause, t0);
        app.update(Arc::new(lossy), Duration::from_secs(43));
        app.act(Action::Pause, t0);
        app.act(Action::Filter, t0);
        for c in "kv".chars() {
            app.text_input(crate::top::keymap::Key::Char(c));
        }
        let text = screen_at(&mut app, width, height, t0 + Duration::from_secs(7));
        assert!(text.contains("PAUSED 00:00:07"), "{text}");
        assert!(text.contains("LOST 1,234 EVENTS"), "{text}");
        assert!(text.contains("filter: kv"), "{text}");
        assert!(!text.contains("sh "), "the filter hides sh: {text}");
    }
}

#[test]
fn an_empty_recording_says_so() {
    let mut app = App::new(Mode::Live, Meta::default());
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("no COW faults yet"), "{text}");
}

#[test]
fn no_color_turns_colors_off_when_set_and_not_empty() {
    use std::ffi::OsStr;
    assert_eq!(Theme::for_no_color(Some(OsStr::new("1"))), Theme::plain());
    assert_eq!(Theme::for_no_color(None), Theme::color());
    assert_eq!(Theme::for_no_color(Some(OsStr::new(""))), Theme::color());
    // The plain theme carries meaning without color: no foreground or
    // background anywhere.
    let plain = Theme::plain();
    for style in [
        plain.title,
        plain.header,
        plain.selected,
        plain.tab,
        plain.warn,
        plain.hot,
    ] {
        assert_eq!((style.fg, style.bg), (None, None));
    }
}
