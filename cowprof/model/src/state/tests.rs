use cowprof_common::{FileKey, Kind};

use super::*;
use crate::keys::{comm_str, Loc, MapKey, MappingKey, Resolved, StackKey, TextId};

/// An anon write at `addr` by `pid` in the mapping [0x10000, 0x20000).
fn anon(pid: u32, addr: u64, kind: Kind) -> Resolved {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"work");
    Resolved {
        pid,
        tid: pid,
        comm,
        kind,
        ts_ns: 0,
        latency_ns: 10,
        mapping: MappingKey {
            map: MapKey::Anon,
            start: 0x10000,
            end: 0x20000,
            pid,
        },
        loc: Loc {
            image: None,
            section: None,
            symbol: None,
            page: addr & !0xfff,
        },
        offset: u16::try_from(addr & 0xfff).unwrap_or(0),
        writer: TextId(1),
        instruction: TextId(2),
        stack: StackKey::NotRecorded,
    }
}

fn image_write(pid: u32, page: u64, symbol: Option<u32>) -> Resolved {
    let image = FileKey::new(5, 1);
    Resolved {
        mapping: MappingKey {
            map: MapKey::File(image),
            start: 0,
            end: 0,
            pid: 0,
        },
        loc: Loc {
            image: Some(image),
            section: Some(3),
            symbol,
            page,
        },
        ..anon(pid, page, Kind::CowCopyFile)
    }
}

fn state(events: &[Resolved]) -> State {
    let mut state = State::default();
    for e in events {
        state.apply(e);
    }
    state
}

#[test]
fn aggregates_per_process_and_kind() {
    let s = state(&[
        anon(1, 0x10000, Kind::CowCopyAnon),
        anon(1, 0x11000, Kind::CowCopyAnon),
        anon(1, 0x12000, Kind::CowReuse),
        anon(2, 0x10000, Kind::WriteNotify),
    ]);
    let snap = s.snapshot(SnapshotOptions::default());
    assert_eq!(snap.events, 4);
    let p1 = snap.processes.iter().find(|p| p.pid == 1).expect("pid 1");
    assert_eq!(comm_str(&p1.comm), "work");
    assert_eq!(p1.counts.get(Kind::CowCopyAnon), 2);
    assert_eq!(p1.counts.copies(), 2);
    assert_eq!(p1.counts.cow_total(), 3);
    assert_eq!(p1.latency_ns, 30);
    assert_eq!(snap.latencies.len(), 3, "three kinds seen");
    assert_eq!(snap.latencies[0].0, Kind::CowCopyAnon);
    assert_eq!(snap.latencies[0].1.count, 2);
    assert_eq!(snap.latencies[0].1.p50_ns, 10);
    assert_eq!(snap.totals.get(Kind::WriteNotify), 1);
    assert_eq!(snap.totals.cow_total(), 3);
}

#[test]
fn pages_of_anon_memory_aggregate_across_processes() {
    let snap = state(&[
        anon(7, 0x10008, Kind::CowCopyAnon),
        anon(8, 0x10010, Kind::CowCopyAnon),
        anon(8, 0x10ff0, Kind::CowReuse),
        anon(7, 0x11000, Kind::CowCopyAnon),
    ])
    .snapshot(SnapshotOptions::default());
    let rows = snap.rows(View::Page);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].key, RowKey::Page(MapKey::Anon, 0x10000));
    assert_eq!(rows[0].counts.cow_total(), 3);
    assert_eq!(rows[0].counts.copies(), 2);
    assert_eq!(rows[0].processes, 2, "pids 7 and 8, each counted once");
    assert_eq!(rows[0].first_writer, TextId(2));
    assert_eq!(rows[1].processes, 1);
    // Anon mappings are told apart by process.
    assert_eq!(snap.rows(View::Mapping).len(), 2);
    assert!(snap.rows(View::Image).is_empty(), "anon is no image");
    assert_eq!(snap.rows(View::Writer).len(), 1);
}

#[test]
fn every_view_accounts_for_every_fault_it_covers() {
    let mut events = vec![
        anon(7, 0x10008, Kind::CowCopyAnon),
        anon(8, 0x11000, Kind::CowReuse),
        image_write(7, 0x3000, Some(1)),
        image_write(7, 0x4000, None),
        image_write(8, 0x3000, Some(1)),
    ];
    for e in &mut events {
        e.stack = StackKey::Missing;
    }
    events[0].stack = StackKey::Stack(TextId(9));
    let snap = state(&events).snapshot(SnapshotOptions {
        top: None,
        touch_map: true,
    });
    let sum = |view| -> u64 { snap.rows(view).iter().map(|r| r.counts.all()).sum() };
    let all = snap.totals.all();
    for view in [View::Mapping, View::Page, View::Writer, View::Stack] {
        assert_eq!(sum(view), all, "{view:?}");
    }
    for view in [View::Image, View::Section, View::Symbol] {
        assert_eq!(sum(view), 3, "{view:?}: the image faults");
    }
    assert_eq!(
        snap.touched[0].pages.get(&0x3000).map(|p| &p.pids),
        Some(&vec![7, 8]),
        "the touch map keeps who wrote each page"
    );
}

#[test]
fn faults_without_a_stack_are_kept_in_the_stack_view() {
    let mut event = anon(7, 0x10008, Kind::CowCopyAnon);
    event.stack = StackKey::Missing;
    let snap = state(&[event]).snapshot(SnapshotOptions::default());
    let rows = snap.rows(View::Stack);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, RowKey::Stack(StackKey::Missing));
    // Without --stacks there is no stack view at all.
    let snap = state(&[anon(7, 0x10008, Kind::CowCopyAnon)]).snapshot(SnapshotOptions::default());
    assert!(snap.rows(View::Stack).is_empty());
}

#[test]
fn snapshots_keep_the_top_rows() {
    let events: Vec<Resolved> = (0..10u64)
        .flat_map(|page| {
            (0..=page).map(move |_| anon(7, 0x10000 + page * 0x1000, Kind::CowCopyAnon))
        })
        .collect();
    let s = state(&events);
    let snap = s.snapshot(SnapshotOptions {
        top: Some(3),
        touch_map: false,
    });
    let pages = snap
        .views
        .iter()
        .find(|v| v.view == View::Page)
        .expect("the page view");
    assert_eq!(pages.total_rows, 10);
    let counts: Vec<u64> = pages.rows.iter().map(|r| r.counts.all()).collect();
    assert_eq!(counts, [10, 9, 8]);
}

#[test]
fn a_frozen_state_keeps_the_number_of_processes() {
    let mut s = state(&[
        anon(7, 0x10008, Kind::CowCopyAnon),
        anon(8, 0x10010, Kind::CowCopyAnon),
    ]);
    let before = s.snapshot(SnapshotOptions::default());
    s.freeze();
    let after = s.snapshot(SnapshotOptions::default());
    assert_eq!(after.rows(View::Page), before.rows(View::Page));
    assert_eq!(after.rows(View::Page)[0].processes, 2);
    let taken: Vec<ViewRow> = s.take_rows(View::Page).collect();
    assert_eq!(taken.len(), before.rows(View::Page).len());
    assert!(taken.iter().all(|r| before.rows(View::Page).contains(r)));
    assert!(s
        .snapshot(SnapshotOptions::default())
        .rows(View::Page)
        .is_empty());
}

/// `n` processes, pids 1..=n: each writes its own anon mapping and the
/// shared image page 0x3000; pids up to `light` once, the others twice.
fn many_exited(n: u32, light: u32) -> State {
    let mut s = State::with_process_mappings();
    for pid in 1..=n {
        s.apply(&anon(pid, 0x10000, Kind::CowCopyAnon));
        if pid > light {
            s.apply(&image_write(pid, 0x3000, Some(1)));
        }
    }
    for pid in 1..=light {
        s.apply(&image_write(pid, 0x3000, Some(1)));
    }
    for pid in 1..=n {
        s.exited(pid);
    }
    s
}

#[test]
fn exited_processes_past_the_kept_ones_fold_with_exact_totals() {
    let light = 10;
    let n = u32::try_from(retire::KEEP_EXITED).expect("small") + light;
    let s = many_exited(n, light);
    let snap = s.snapshot(SnapshotOptions {
        top: None,
        touch_map: true,
    });
    assert_eq!(snap.total_processes, n as usize, "folded ones still count");
    assert_eq!(snap.folded_processes, u64::from(light));
    assert_eq!(snap.processes.len(), retire::KEEP_EXITED + 1);
    let folded = snap
        .processes
        .iter()
        .find(|p| p.pid == retire::FOLDED_PID)
        .expect("the (exited) entry");
    assert_eq!(comm_str(&folded.comm), "(exited)");
    assert_eq!(folded.counts.all(), 2 * u64::from(light), "the lightest");
    assert!(snap.processes.iter().all(|p| p.pid == 0 || p.pid > light));
    assert_eq!(snap.totals.all(), 2 * u64::from(n));
    // Each folded process's anon row joined one row, counting it once.
    let mapping = snap.rows(View::Mapping);
    let joined = MappingKey {
        map: MapKey::Anon,
        start: 0,
        end: 0,
        pid: retire::FOLDED_PID,
    };
    let row = mapping
        .iter()
        .find(|r| r.key == RowKey::Mapping(joined))
        .expect("the folded anon row");
    assert_eq!(row.processes, light as usize);
    assert_eq!(row.counts.all(), u64::from(light));
    assert_eq!(
        mapping.len(),
        retire::KEEP_EXITED + 2,
        "kept anon rows, the folded one, the image"
    );
    let sum: u64 = mapping.iter().map(|r| r.counts.all()).sum();
    assert_eq!(sum, snap.totals.all());
    // The shared page still counts every writer.
    let page = snap.touched[0].pages.get(&0x3000).expect("page 0x3000");
    assert_eq!(page.processes(), n as usize);
    let image = &snap.rows(View::Image)[0];
    assert_eq!(image.processes, n as usize);
}

#[test]
fn compaction_keeps_every_count_and_frees_the_lists() {
    let light = 10;
    let n = u32::try_from(retire::KEEP_EXITED).expect("small") + light;
    let mut s = many_exited(n, light);
    let before = s.snapshot(SnapshotOptions::default());
    s.compact();
    let after = s.snapshot(SnapshotOptions::default());
    assert_eq!(after.rows(View::Image), before.rows(View::Image));
    assert_eq!(after.rows(View::Image)[0].processes, n as usize);
    let page = &s.touched.values().next().expect("an image")[&0x3000];
    assert_eq!(
        page.pids.len(),
        retire::KEEP_EXITED,
        "folded pids left the list"
    );
    assert_eq!(page.processes(), n as usize);
}

#[test]
fn a_reused_pid_of_a_folded_process_counts_anew() {
    let light = 10;
    let n = u32::try_from(retire::KEEP_EXITED).expect("small") + light;
    let mut s = many_exited(n, light);
    // pid 1 was folded; a new process gets its pid and writes the page.
    s.apply(&image_write(1, 0x3000, Some(1)));
    let snap = s.snapshot(SnapshotOptions::default());
    assert_eq!(snap.total_processes, n as usize + 1);
    assert_eq!(snap.rows(View::Image)[0].processes, n as usize + 1);
    let p1 = snap.processes.iter().find(|p| p.pid == 1).expect("pid 1");
    assert_eq!(p1.counts.all(), 1, "the new process, not the folded one");
}

#[test]
fn a_reused_pid_of_an_exited_process_is_a_new_process() {
    let mut s = state(&[anon(7, 0x10008, Kind::CowCopyAnon)]);
    s.exited(7);
    // Another process with pid 7: the exited one is folded, this one counts.
    s.apply(&anon(7, 0x10010, Kind::CowCopyAnon));
    s.apply(&anon(7, 0x10018, Kind::CowCopyAnon));
    let snap = s.snapshot(SnapshotOptions::default());
    assert_eq!(snap.total_processes, 2);
    assert_eq!(snap.folded_processes, 1);
    let p7 = snap.processes.iter().find(|p| p.pid == 7).expect("pid 7");
    assert_eq!(p7.counts.all(), 2, "the new process only");
    let folded = snap
        .processes
        .iter()
        .find(|p| p.pid == retire::FOLDED_PID)
        .expect("the (exited) entry");
    assert_eq!(folded.counts.all(), 1);
    // The page both wrote counts two processes.
    let page = &snap.rows(View::Page)[0];
    assert_eq!(page.processes, 2);
    assert_eq!(page.counts.all(), 3);
    let mapping = snap.rows(View::Mapping);
    assert_eq!(mapping.len(), 2, "the new anon row and the folded one");
    assert!(mapping.iter().all(|r| r.processes == 1));
}
