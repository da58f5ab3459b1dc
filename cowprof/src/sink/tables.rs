//! Text tables shared by the live summary and `cowprof report`.
use std::{collections::BTreeMap, fmt::Write as _};

use cowprof_common::Kind;

use crate::report::{ImageWaste, ProcessSummary, Row};
use cowprof_model::state::{KindCounts, View};

/// The per-process table with its total row. `AVG_NS` is `-` when no
/// latency was measured (`--latency` was not given).
pub fn processes(out: &mut String, processes: &[ProcessSummary], totals: &KindCounts) {
    let measured = processes.iter().any(|p| p.latency_ns > 0);
    let _ = write!(out, "{:>8} {:<16}", "PID", "COMM");
    for kind in Kind::ALL {
        let _ = write!(out, " {:>13}", kind.name());
    }
    let _ = writeln!(out, " {:>10} {:>10}", "COW", "AVG_NS");
    let row = |out: &mut String, pid: &str, comm: &str, counts: &KindCounts, latency: u64| {
        let _ = write!(out, "{pid:>8} {comm:<16}");
        for kind in Kind::ALL {
            let _ = write!(out, " {:>13}", counts.get(kind));
        }
        let avg = if measured {
            latency.checked_div(counts.all()).unwrap_or(0).to_string()
        } else {
            "-".to_owned()
        };
        let _ = writeln!(out, " {:>10} {avg:>10}", counts.cow_total());
    };
    for p in processes {
        row(out, &p.pid.to_string(), &p.comm, &p.counts, p.latency_ns);
    }
    let latency = processes.iter().map(|p| p.latency_ns).sum();
    row(out, "", "total", totals, latency);
}

/// Each view's rows, as a table per view.
pub fn views(out: &mut String, views: &BTreeMap<View, Vec<Row>>) {
    for (view, rows) in views {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5}  {:<60} FIRST WRITER",
            "COPY_A",
            "COPY_F",
            "FILL_F",
            "ZERO",
            "REUSE",
            "NOTIFY",
            "COPIES",
            "PROCS",
            view.name().to_uppercase()
        );
        for r in rows {
            let c = &r.counts;
            let _ = writeln!(
                out,
                "{:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5}  {:<60} {}",
                c.get(Kind::CowCopyAnon),
                c.get(Kind::CowCopyFile),
                c.get(Kind::CowFillFile),
                c.get(Kind::CowZero),
                c.get(Kind::CowReuse),
                c.get(Kind::WriteNotify),
                r.copies,
                r.processes,
                r.key,
                r.first_writer
            );
        }
    }
}

/// Each image's writable pages never written.
pub fn waste(out: &mut String, waste: &[ImageWaste]) {
    for image in waste {
        let t = &image.total;
        let _ = writeln!(
            out,
            "\n{}: {} writable pages, {} written, {} never written ({} KiB)",
            t.name,
            t.pages.writable_pages,
            t.pages.touched_pages,
            t.pages.untouched_pages,
            t.pages.untouched_bytes / 1024
        );
        for s in &image.sections {
            let _ = writeln!(
                out,
                "  {:<20} {:>6} writable {:>6} written {:>6} never written",
                s.name, s.pages.writable_pages, s.pages.touched_pages, s.pages.untouched_pages
            );
        }
        for s in image
            .symbols
            .iter()
            .filter(|s| s.pages.untouched_pages > 0)
            .take(10)
        {
            let _ = writeln!(
                out,
                "  symbol {:<20} {:>6} writable {:>6} written {:>6} never written",
                s.name, s.pages.writable_pages, s.pages.touched_pages, s.pages.untouched_pages
            );
        }
        for (pid, touched, untouched) in &image.per_process {
            let _ = writeln!(
                out,
                "  pid {pid:<8} wrote {touched} pages, left {untouched} untouched"
            );
        }
    }
}
