//! A report with every view filled, deterministic, for the tests and the
//! render benchmark (feature `fixtures`; not in release builds).
use std::collections::BTreeMap;

use cowprof_common::Kind;

use crate::report::{ImageWaste, PageRow, ProcessMappingRow, ProcessSummary, Report, Row, Waste};
use cowprof_model::state::{KindCounts, LatencySummary, View};

fn counts(copies: u64, reuses: u64) -> KindCounts {
    let mut values = [0; 6];
    values[0] = copies;
    values[4] = reuses;
    KindCounts::from_array(values)
}

fn row(key: &str, copies: u64, reuses: u64, processes: usize, writer: &str) -> Row {
    let counts = counts(copies, reuses);
    Row {
        key: key.to_owned(),
        copies: counts.copies(),
        counts,
        processes,
        first_writer: writer.to_owned(),
    }
}

/// The server binary whose page map the tests look at.
pub const SERVER: &str = "/usr/bin/kv-server";
const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

/// `mappings` extra anonymous mappings and `pages` writable pages of the
/// server image (at least the fixed ones).
#[must_use]
#[expect(clippy::too_many_lines, reason = "one literal report")]
pub fn report_with(mappings: usize, pages: usize) -> Report {
    let processes = vec![
        ProcessSummary {
            pid: 4242,
            comm: "kv-server".into(),
            counts: counts(1200, 300),
            latency_ns: 1500 * 2100,
        },
        ProcessSummary {
            pid: 4243,
            comm: "kv-save".into(),
            counts: counts(5000, 0),
            latency_ns: 5000 * 3900,
        },
        ProcessSummary {
            pid: 4250,
            comm: "sh".into(),
            counts: counts(12, 3),
            latency_ns: 15 * 1800,
        },
    ];
    let mut mapping_rows = vec![
        row("[heap]", 4800, 200, 2, "dict_rehash (dict.c:301)"),
        row(SERVER, 900, 60, 2, "server_init (server.c:88)"),
        row(LIBC, 300, 40, 3, "__libc_setlocale (setlocale.c:210)"),
        row("[stack]", 212, 3, 3, "main (server.c:12)"),
    ];
    for i in 0..mappings {
        let start = 0x7f00_0000_0000 + (i as u64) * 0x10_0000;
        mapping_rows.push(row(
            &format!("[anon] {start:#x}-{:#x} pid 4243", start + 0x10_0000),
            (i % 97) as u64,
            0,
            1,
            "bgsave_copy (rdb.c:77)",
        ));
    }
    let mut views = BTreeMap::new();
    views.insert(View::Mapping, mapping_rows);
    views.insert(
        View::Image,
        vec![
            row(SERVER, 900, 60, 2, "server_init (server.c:88)"),
            row(LIBC, 300, 40, 3, "__libc_setlocale (setlocale.c:210)"),
        ],
    );
    views.insert(
        View::Writer,
        vec![
            row("bgsave_copy", 4100, 0, 1, ""),
            row("dict_rehash", 900, 200, 2, ""),
            row("server_init", 850, 60, 2, ""),
            row("__libc_setlocale", 300, 40, 3, ""),
        ],
    );
    let sections = [(".got", 2usize), (".data", 20), (".bss", 10)];
    let fixed: usize = sections.iter().map(|s| s.1).sum();
    let mut page_rows = Vec::new();
    let mut addr = 0x1_0000u64;
    for (name, n) in sections
        .iter()
        .map(|(name, n)| (*name, *n))
        .chain(std::iter::once((".data.rel", pages.saturating_sub(fixed))))
    {
        for i in 0..n {
            let faults = match (name, i % 5) {
                (".bss", _) | (_, 4) => 0,
                (_, 0) => 40,
                (_, k) => k as u64,
            };
            page_rows.push(PageRow {
                image: SERVER.into(),
                page: addr,
                section: name.into(),
                written: faults > 0,
                processes: u32::from(faults > 0) * 2,
                faults,
                symbol: if faults > 0 {
                    format!("table_{i}")
                } else {
                    String::new()
                },
                first_writer: if faults > 0 {
                    "server_init (server.c:88)".into()
                } else {
                    String::new()
                },
            });
            addr += 0x1000;
        }
    }
    let mut total = Waste {
        name: SERVER.into(),
        ..Waste::default()
    };
    for p in &page_rows {
        total.pages.count(p.written);
    }
    let mut libc = Waste {
        name: LIBC.into(),
        ..Waste::default()
    };
    for i in 0..12 {
        libc.pages.count(i < 3);
    }
    let waste = vec![
        ImageWaste {
            total,
            ..ImageWaste::default()
        },
        ImageWaste {
            total: libc,
            ..ImageWaste::default()
        },
    ];
    let mut latency = BTreeMap::new();
    let mut latency_histogram = BTreeMap::new();
    for (kind, base, count) in [(Kind::CowCopyAnon, 2000, 6200), (Kind::CowReuse, 600, 303)] {
        latency.insert(
            kind.name(),
            LatencySummary {
                count,
                p50_ns: base,
                p90_ns: base * 2,
                p99_ns: base * 5,
                p999_ns: base * 11,
                max_ns: base * 40,
            },
        );
        latency_histogram.insert(
            kind.name(),
            (0..8u32)
                .map(|i| (1024u64 << i, (count >> (i + 1)).max(1)))
                .collect(),
        );
    }
    let process_mappings = vec![
        ProcessMappingRow {
            pid: 4243,
            mapping: "[heap]".into(),
            counts: counts(4600, 0),
            first_writer: "bgsave_copy (rdb.c:77)".into(),
        },
        ProcessMappingRow {
            pid: 4243,
            mapping: SERVER.into(),
            counts: counts(400, 0),
            first_writer: "bgsave_copy (rdb.c:77)".into(),
        },
        ProcessMappingRow {
            pid: 4242,
            mapping: SERVER.into(),
            counts: counts(500, 60),
            first_writer: "server_init (server.c:88)".into(),
        },
    ];
    let mut totals = KindCounts::default();
    for p in &processes {
        totals.merge(&p.counts);
    }
    Report {
        events: totals.all(),
        total_processes: processes.len(),
        processes,
        views,
        waste,
        pages: page_rows,
        totals,
        latency,
        latency_histogram,
        process_mappings,
        ..Report::default()
    }
}

/// The fixture the snapshots show.
#[must_use]
pub fn report() -> Report {
    report_with(3, 0)
}
