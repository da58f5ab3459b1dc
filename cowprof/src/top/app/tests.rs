use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::*;
use crate::top::fixture;
use cowprof_model::state::KindCounts;

fn app() -> App {
    let mut app = App::fixture("kv-server");
    app.update(Arc::new(fixture::report()), Duration::from_secs(1));
    app
}

fn act(app: &mut App, action: Action) {
    app.act(action, Instant::now());
}

#[test]
fn sorting_picks_columns_and_inverts() {
    let mut app = app();
    let pids = |app: &App| -> Vec<String> {
        let table = app.table(TableKind::Processes);
        (0..table.len()).filter_map(|i| table.key(i)).collect()
    };
    assert_eq!(pids(&app), ["4243", "4242", "4250"], "most COW first");
    act(&mut app, Action::InvertSort);
    assert_eq!(pids(&app), ["4250", "4242", "4243"]);
    act(&mut app, Action::PrevSort);
    act(&mut app, Action::PrevSort);
    assert_eq!(app.sort(TableKind::Processes).column, 0, "by pid");
    assert_eq!(
        pids(&app),
        ["4250", "4243", "4242"],
        "numbers largest first"
    );
    act(&mut app, Action::NextSort);
    assert_eq!(pids(&app), ["4243", "4242", "4250"], "by command, A to Z");
}

#[test]
fn the_filter_is_typed_kept_and_cleared() {
    let mut app = app();
    act(&mut app, Action::View(1));
    act(&mut app, Action::Filter);
    for c in "LIBC".chars() {
        assert!(app.text_input(Key::Char(c)));
    }
    assert!(app.text_input(Key::Enter));
    assert!(!app.editing);
    assert!(!app.text_input(Key::Char('q')), "keys act again");
    let table = app.table(TableKind::Mappings);
    assert_eq!(table.len(), 1);
    assert!(table.key(0).expect("a row").ends_with("libc.so.6"));
    act(&mut app, Action::Back);
    assert!(app.filter.is_empty(), "Esc clears the filter first");
    assert_eq!(app.table(TableKind::Mappings).len(), 7);
}

#[test]
fn drilling_down_and_back() {
    let mut app = app();
    assert_eq!(app.selected_key().as_deref(), Some("4243"));
    act(&mut app, Action::Drill);
    assert_eq!(app.level(), &Level::Table(TableKind::ProcessMappings(4243)));
    assert_eq!(
        app.breadcrumb(),
        ["Processes", "pid 4243 (kv-save) mappings"]
    );
    let table = app.table(TableKind::ProcessMappings(4243));
    let keys: Vec<String> = (0..table.len()).filter_map(|i| table.key(i)).collect();
    assert_eq!(keys, ["[heap]", fixture::SERVER]);
    act(&mut app, Action::Drill);
    assert!(app.status.is_some(), "[heap] has no page map, and says so");
    assert_eq!(app.stack().len(), 2);
    act(&mut app, Action::Down);
    act(&mut app, Action::Drill);
    assert_eq!(
        app.level(),
        &Level::PageMap(Some(fixture::SERVER.to_owned()))
    );
    assert_eq!(app.stack().len(), 3);
    assert_eq!(app.selected_key().as_deref(), Some("0x10000"));
    act(&mut app, Action::Right);
    assert_eq!(app.selected_key().as_deref(), Some("0x11000"));
    act(&mut app, Action::Back);
    act(&mut app, Action::Back);
    assert_eq!(app.level(), &Level::Table(TableKind::Processes));
    act(&mut app, Action::Back);
    assert_eq!(app.stack().len(), 1, "the top level stays");
    assert_eq!(
        app.selected_key().as_deref(),
        Some("4243"),
        "the selection is where it was"
    );
}

#[test]
fn pause_freezes_the_view_and_resuming_catches_up() {
    let mut app = app();
    let t0 = Instant::now();
    app.act(Action::Pause, t0);
    assert_eq!(
        app.paused_for(t0 + Duration::from_secs(3)),
        Some(Duration::from_secs(3))
    );
    let mut newer = fixture::report();
    newer.processes[2].counts = KindCounts::from_array([100_000, 0, 0, 0, 0, 0]);
    newer.totals = KindCounts::from_array([106_212, 0, 0, 0, 303, 0]);
    app.update(Arc::new(newer), Duration::from_secs(2));
    assert_eq!(app.elapsed(), Duration::from_secs(1), "frozen");
    assert_eq!(app.table(TableKind::Processes).key(0).unwrap(), "4243");
    assert_eq!(app.latest().totals.copies(), 106_212, "collection goes on");
    app.act(Action::Pause, t0 + Duration::from_secs(3));
    assert_eq!(app.paused_for(t0), None);
    assert_eq!(app.elapsed(), Duration::from_secs(2), "caught up");
    assert_eq!(app.table(TableKind::Processes).key(0).unwrap(), "4250");
    assert!(app.rate().copies_per_s >= 100_000.0);
    assert!(app.take_requests().is_empty(), "live pause asks nothing");
}

#[test]
fn the_selection_follows_its_row_when_counts_change() {
    let mut app = app();
    act(&mut app, Action::Down);
    assert_eq!(app.selected_key().as_deref(), Some("4242"));
    // kv-server now pays most: it moves to the top, and the cursor with it.
    let mut newer = fixture::report();
    newer.processes[0].counts = KindCounts::from_array([90_000, 0, 0, 0, 0, 0]);
    app.update(Arc::new(newer), Duration::from_secs(2));
    let table = app.table(TableKind::Processes);
    assert_eq!(table.key(0).as_deref(), Some("4242"));
    assert_eq!(app.selected_key().as_deref(), Some("4242"));
    // A row that goes away leaves the cursor at its place.
    let mut fewer = fixture::report();
    fewer.processes.retain(|p| p.pid != 4242);
    app.update(Arc::new(fewer), Duration::from_secs(3));
    assert_eq!(app.selected_key().as_deref(), Some("4250"));
}

#[test]
fn views_by_number_and_tab_and_requests() {
    let mut app = app();
    act(&mut app, Action::View(5));
    assert_eq!(app.level(), &Level::Table(TableKind::Latency));
    act(&mut app, Action::NextView);
    assert_eq!(app.level(), &Level::Table(TableKind::Processes));
    act(&mut app, Action::PrevView);
    assert_eq!(app.level().tab(), 5);
    act(&mut app, Action::View(3));
    assert_eq!(app.level(), &Level::PageMap(None));
    assert_eq!(
        app.page_map_image(None).as_deref(),
        Some(fixture::SERVER),
        "the image with most pages never written"
    );
    act(&mut app, Action::End);
    assert_eq!(app.selected_key().as_deref(), Some("0x2f000"));
    act(&mut app, Action::Export);
    act(&mut app, Action::Reset);
    assert_eq!(app.take_requests(), [Request::Export, Request::Reset]);
    assert!(
        app.shown_history().is_empty(),
        "a reset starts the rates over"
    );
    act(&mut app, Action::Quit);
    assert!(app.quit);
}

#[test]
fn replay_asks_its_clock_to_pause_seek_and_change_speed() {
    let mut app = App::new(
        Mode::Replay,
        Meta {
            speed: 1.0,
            ..Meta::default()
        },
    );
    act(&mut app, Action::Pause);
    act(&mut app, Action::SeekForward);
    act(&mut app, Action::Faster);
    act(&mut app, Action::Pause);
    assert_eq!(
        app.take_requests(),
        [
            Request::Pause(true),
            Request::Seek(10.0),
            Request::Speed(2.0),
            Request::Pause(false)
        ]
    );
}
