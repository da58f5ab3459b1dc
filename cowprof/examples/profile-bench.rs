//! The profile writer alone, on synthetic events shaped like a fork-write
//! storm (one writer, sequential pages, copies): its rate, its bytes per
//! event on disk and its peak memory. Used by `cargo xtask bench`.
//!
//! ```text
//! profile-bench EVENTS DIR
//! ```
//! prints one JSON line: `events`, `seconds`, `events_per_s`,
//! `bytes_on_disk`, `bytes_per_event`, `peak_rss_kib`.
use std::{sync::Arc, time::Instant};

use cowprof::{profile::writer::ProfileWriter, report::events::EventRow};

fn peak_rss_kib() -> u64 {
    cowprof::kernel::procstat::own_status()
        .and_then(|s| s.vmhwm)
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "profile-bench".into()));
    cowprof::profile::writer::create_dir(&dir).expect("a new profile directory");
    let (writer, tx) = ProfileWriter::spawn(&dir).expect("the writer thread");
    let comm: Arc<str> = "cow-workload".into();
    let mapping: Arc<str> = "[anon]".into();
    let writer_text: Arc<str> =
        "cow-workload`cow_workload::write_pages+0x2b (cow-workload.rs:141)".into();
    let function: Arc<str> = "cow-workload`cow_workload::write_pages".into();
    let base = 0x7f00_0000_0000_u64;
    let started = Instant::now();
    let mut sent = 0;
    let mut ts = 1_000_000_000_u64;
    while sent < events {
        let n = (events - sent).min(4096);
        let batch: Vec<EventRow> = (sent..sent + n)
            .map(|i| {
                ts += 2_400 + (i * 7919) % 600;
                let address = base + (i % 131_072) * 4096;
                EventRow {
                    ts_ns: ts,
                    pid: 4242 + u32::try_from(i / 131_072).unwrap_or(0),
                    tid: 4242 + u32::try_from(i / 131_072).unwrap_or(0),
                    cpu: u32::try_from(i / 100_000 % 2).unwrap_or(0),
                    comm: comm.clone(),
                    kind: "cow_copy_anon",
                    address,
                    page: address,
                    file_offset: None,
                    mapping: mapping.clone(),
                    mapping_start: base,
                    mapping_end: base + 131_072 * 4096,
                    anon: true,
                    image: None,
                    section: None,
                    symbol: None,
                    writer: writer_text.clone(),
                    writer_function: function.clone(),
                    writer_ip: 0x5555_5555_0000 + 0x2b,
                    latency_ns: 1_800 + (i * 104_729) % 1_500,
                    stack: None,
                }
            })
            .collect();
        tx.send(batch).expect("the writer takes events");
        sent += n;
    }
    drop(tx);
    let written = writer.finish().expect("the writer closes its parts");
    let seconds = started.elapsed().as_secs_f64();
    let bytes: u64 = written
        .parts
        .iter()
        .filter_map(|p| std::fs::metadata(dir.join(p)).ok())
        .map(|m| m.len())
        .sum();
    #[expect(clippy::cast_precision_loss, reason = "rates for display")]
    let (rate, per_event) = (
        written.events as f64 / seconds,
        bytes as f64 / written.events.max(1) as f64,
    );
    println!(
        "{{\"events\":{},\"seconds\":{seconds:.3},\"events_per_s\":{rate:.0},\"bytes_on_disk\":{bytes},\"bytes_per_event\":{per_event:.2},\"peak_rss_kib\":{}}}",
        written.events,
        peak_rss_kib()
    );
}
