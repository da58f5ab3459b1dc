//! The same faults through both feeders: applied one at a time as the
//! collector applies them, and written to a profile and fed back by
//! polars groups. Every view, total, histogram and folded row must agree.
use cowprof_common::{FaultEvent, Kind, VmaInfo};
use cowprof_model::{
    keys::{Loc, MapKey, MappingKey, Resolved, StackKey},
    state::{retire::KEEP_EXITED, SnapshotOptions, State, View},
};

use super::{
    dictionary::{comm, Dictionary},
    offline,
    read::Profile,
    scan::Filters,
    sink::{Ending, ProfileSink},
    timeline::{Timeline, VIEWS},
};
use crate::{
    collector::Exit,
    probe::ProbeStats,
    report::{events::EventNames, naming, Report},
};

const IMAGE: &str = "/usr/lib/libwork.so";
const BASE: u64 = 0x7f00_0000_0000;

/// The recording: its names, its faults (each with the raw event the
/// profile records), and where it retired exited processes.
struct Recording {
    names: Dictionary,
    faults: Vec<(FaultEvent, Resolved)>,
    exits: Vec<Exit>,
}

impl Recording {
    fn new() -> Self {
        let mut names = Dictionary::default();
        let image = names.file(IMAGE);
        for page in 0..8u64 {
            let section = names.section_id(Some(if page < 6 { ".data" } else { ".bss" }));
            names.add_page(image, 0x4000 + page * 4096, section);
        }
        Self {
            names,
            faults: Vec::new(),
            exits: Vec::new(),
        }
    }

    /// One fault of `pid` (thread `tid`, named `name`) at time `ts`.
    #[expect(clippy::too_many_arguments, reason = "a fault's every key")]
    fn fault(
        &mut self,
        pid: u32,
        tid: u32,
        name: &str,
        kind: Kind,
        ts: u64,
        at: Place,
        writer: &str,
    ) {
        let names = &mut self.names;
        let function = names.text_id(writer);
        let instruction = names.text_id(&format!("{writer}+0x{:x}", ts % 7));
        let stack = if ts.is_multiple_of(5) {
            StackKey::Missing
        } else {
            StackKey::Stack(names.text_id(&format!("{writer};main")))
        };
        let (mapping, loc, addr, vma) = match at {
            Place::Anon(page) => {
                let start = BASE + u64::from(pid) * 0x10_0000;
                let map = if page.is_multiple_of(3) {
                    MapKey::Heap
                } else {
                    MapKey::Anon
                };
                let addr = start + page * 4096 + 8;
                let vma = VmaInfo {
                    vm_start: start,
                    vm_end: start + 0x10_0000,
                    ..VmaInfo::default()
                };
                let mapping = MappingKey {
                    map,
                    start,
                    end: start + 0x10_0000,
                    pid,
                };
                let loc = Loc {
                    image: None,
                    section: None,
                    symbol: None,
                    page: addr & !0xfff,
                };
                (mapping, loc, addr, vma)
            }
            Place::Image(page, symbol) => {
                let image = names.file(IMAGE);
                let start = 0x5000_0000;
                let vaddr = 0x4000 + page * 4096;
                let vma = VmaInfo {
                    vm_start: start,
                    vm_end: start + 0x10_0000,
                    file_backed: 1,
                    ..VmaInfo::default()
                };
                let mapping = MappingKey {
                    map: MapKey::File(image),
                    start: 0,
                    end: 0,
                    pid: 0,
                };
                let loc = Loc {
                    image: Some(image),
                    section: names.section_id(Some(if page < 6 { ".data" } else { ".bss" })),
                    symbol: symbol.map(|s| names.intern(s)),
                    page: vaddr,
                };
                (mapping, loc, start + vaddr + 16, vma)
            }
        };
        let event = FaultEvent {
            kind: kind as u8,
            cpu: u16::try_from(ts % 2).unwrap_or(0),
            ts_ns: ts,
            addr,
            ip: 0x40_0000 + ts % 7,
            vma,
            pid,
            tid,
            ..FaultEvent::default()
        };
        let resolved = Resolved {
            pid,
            tid,
            comm: comm(name),
            kind,
            ts_ns: ts,
            latency_ns: 500 + (ts % 13) * 100,
            mapping,
            loc,
            offset: u16::try_from(addr & 0xfff).unwrap_or(0),
            writer: function,
            instruction,
            stack,
        };
        self.faults.push((event, resolved));
    }

    fn exit(&mut self, pid: u32) {
        let seq = self.faults.len() as u64;
        self.exits.push(Exit {
            pid,
            seq,
            ts_ns: seq,
        });
    }

    /// The live state: every fault applied in order, the exits where they
    /// were found.
    fn live(&self) -> State {
        let mut state = State::default();
        let mut exits = self.exits.iter().peekable();
        for (i, (_, fault)) in self.faults.iter().enumerate() {
            while let Some(exit) = exits.next_if(|e| e.seq <= i as u64) {
                state.exited(exit.pid);
            }
            state.apply(fault);
        }
        for exit in exits {
            state.exited(exit.pid);
        }
        state
    }

    /// Writes the recording as `record -o` would, into `dir`.
    fn write(&self, dir: &std::path::Path, report: &Report) {
        let (sink, tx) = ProfileSink::open(dir, "test".to_owned()).expect("a profile");
        let mut names = EventNames::default();
        for chunk in self.faults.chunks(1000) {
            let rows = chunk
                .iter()
                .map(|(event, fault)| names.row(event, fault, &self.names))
                .collect();
            tx.send(rows).expect("the writer");
        }
        drop(tx);
        sink.finish(&Ending {
            report,
            duration_s: 1.0,
            stop_reason: "CommandExited",
            dropped: 0,
            warnings: &[],
            exits: &self.exits,
        })
        .expect("the end tables");
    }
}

#[derive(Clone, Copy)]
enum Place {
    Anon(u64),
    Image(u64, Option<&'static str>),
}

/// Processes past the kept exited ones, threads with names of their own,
/// pids reused before and after their exit was found, and image pages
/// written by several processes.
fn recording() -> Recording {
    let mut r = Recording::new();
    let mut ts = 1_000;
    let mut next = || {
        ts += 17;
        ts
    };
    let children = u32::try_from(KEEP_EXITED).expect("small") + 40;
    for pid in 100..100 + children {
        let name = format!("w{pid}");
        r.fault(
            pid,
            pid,
            "parent",
            Kind::CowCopyAnon,
            next(),
            Place::Anon(0),
            "fork_child",
        );
        r.fault(
            pid,
            pid,
            &name,
            Kind::CowCopyAnon,
            next(),
            Place::Anon(1),
            "write",
        );
        if pid.is_multiple_of(4) {
            r.fault(
                pid,
                pid + 50_000,
                "thread",
                Kind::CowReuse,
                next(),
                Place::Anon(3),
                "write",
            );
        }
        let page = u64::from(pid % 8);
        let symbol = (page < 6).then_some("table");
        r.fault(
            pid,
            pid,
            &name,
            Kind::CowCopyFile,
            next(),
            Place::Image(page, symbol),
            "init",
        );
        if pid.is_multiple_of(7) {
            r.fault(
                pid,
                pid,
                &name,
                Kind::WriteNotify,
                next(),
                Place::Anon(2),
                "sync",
            );
        }
        // Every few processes, the earliest ones are found exited.
        if pid.is_multiple_of(3) && pid > 110 {
            r.exit(pid - 10);
            r.exit(pid - 9);
            r.exit(pid - 8);
        }
    }
    // pid 105 was found exited; a new process takes its pid.
    r.fault(
        105,
        105,
        "reborn",
        Kind::CowZero,
        next(),
        Place::Anon(4),
        "again",
    );
    r.fault(
        105,
        105,
        "reborn",
        Kind::CowFillFile,
        next(),
        Place::Image(6, None),
        "again",
    );
    // And one that writes again before its exit is found: the same
    // process to both feeders.
    r.fault(
        110 + children - 1,
        7,
        "late",
        Kind::CowCopyAnon,
        next(),
        Place::Anon(5),
        "late",
    );
    r
}

fn json(report: &Report) -> serde_json::Value {
    serde_json::to_value(report).expect("JSON")
}

#[test]
fn both_feeders_give_every_view_alike() {
    let r = recording();
    let live = r.live();
    let all = SnapshotOptions {
        top: None,
        touch_map: true,
    };
    let live_report = naming::report(
        live.snapshot(all),
        &r.names,
        View::ALL,
        ProbeStats::default(),
    );
    assert!(
        live_report.folded_processes > 0,
        "some processes were folded"
    );
    assert!(!live_report.waste.is_empty(), "the image's waste");
    let scratch = tempfile::tempdir().expect("a directory");
    let dir = scratch.path().join("p");
    r.write(&dir, &live_report);

    let profile = Profile::open(&dir).expect("the profile");
    let mut dict = Dictionary::default();
    let state = offline::state(&profile, View::ALL, &Filters::default(), &mut dict)
        .expect("the profile fed");
    let offline_report =
        naming::report(state.snapshot(all), &dict, View::ALL, ProbeStats::default());
    assert_eq!(json(&live_report), json(&offline_report));
    assert_eq!(live_report.pages, offline_report.pages, "the touch map");
    assert_eq!(
        live_report.latency_histogram,
        offline_report.latency_histogram
    );
    assert_eq!(live_report.events, offline_report.events);

    // The replay's end, too (its views, with each process's mappings).
    let mut timeline = Timeline::open(Profile::open(&dir).expect("the profile")).expect("replay");
    timeline.seek(500).expect("a moment");
    timeline.seek(100).expect("back");
    let replayed = timeline.report_at(None).expect("the end");
    let live_views = naming::report(
        {
            let mut state = State::with_process_mappings();
            let mut exits = r.exits.iter().peekable();
            for (i, (_, fault)) in r.faults.iter().enumerate() {
                while let Some(exit) = exits.next_if(|e| e.seq <= i as u64) {
                    state.exited(exit.pid);
                }
                state.apply(fault);
            }
            exits.for_each(|e| state.exited(e.pid));
            state.snapshot(all)
        },
        &r.names,
        &VIEWS,
        ProbeStats::default(),
    );
    let mut a = json(&live_views);
    let mut b = json(&replayed);
    for v in [&mut a, &mut b] {
        v.as_object_mut().expect("an object").remove("probe_stats");
    }
    assert_eq!(a, b);
    let mappings = |r: &Report| {
        let mut m: Vec<_> = r
            .process_mappings
            .iter()
            .map(|m| (m.pid, m.mapping.clone(), m.counts, m.first_writer.clone()))
            .collect();
        m.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        m
    };
    assert_eq!(
        mappings(&live_views),
        mappings(&replayed),
        "each process's mappings"
    );
}
