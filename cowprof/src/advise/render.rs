//! `advise`'s text output.
use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use super::{
    image::PAGE,
    ordering::Linker,
    plan::{self, Advice},
};

#[expect(clippy::cast_precision_loss, reason = "KiB for people")]
fn kib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn one(out: &mut String, image: &str, a: &Advice, top: usize) {
    let n = a.processes.len();
    let saved = a.pages_now.saturating_sub(a.pages_predicted);
    let _ = writeln!(out, "{image}");
    let _ = writeln!(
        out,
        "  pages written: {} now, {} with the written data packed: {} pages ({}) less, summed over {n} process{}",
        a.pages_now,
        a.pages_predicted,
        saved,
        kib(saved * PAGE),
        if n == 1 { "" } else { "es" }
    );
    for p in a.processes.iter().take(top) {
        let _ = writeln!(
            out,
            "    pid {:<8} {:>5} -> {:<5} pages",
            p.pid, p.now, p.predicted
        );
    }
    if n > top {
        let _ = writeln!(out, "    … {} more processes (--top)", n - top);
    }
    let charged = a.commit_charge * n as u64;
    let copied = a.pages_now * PAGE;
    let _ = writeln!(
        out,
        "  commit charge: {} per process, {} over {n}; copied {} of it ({:.0}%): {} charged and never written",
        kib(a.commit_charge),
        kib(charged),
        kib(copied),
        percent(copied, charged),
        kib(charged.saturating_sub(copied)),
    );
    let ordered = a.hot.iter().filter(|h| h.unorderable.is_none()).count();
    let _ = writeln!(
        out,
        "  written data symbols: {} ({ordered} can be ordered), hottest first:",
        a.hot.len()
    );
    for h in a.hot.iter().take(top) {
        let mut notes = Vec::new();
        if h.loader_only {
            notes.push("only ld.so wrote it".to_owned());
        }
        if let Some(why) = h.unorderable {
            notes.push(format!("not orderable: {why}"));
        }
        let _ = writeln!(
            out,
            "    {:<32} {:<10} {:>7} B  {} proc{}",
            h.name,
            h.section,
            h.size,
            h.processes,
            if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            }
        );
    }
    if a.hot.len() > top {
        let _ = writeln!(out, "    … {} more (--top)", a.hot.len() - top);
    }
    let _ = writeln!(
        out,
        "  cold passengers: {} never-written symbols, {} on written pages",
        a.cold_passengers.len(),
        kib(a.cold_bytes)
    );
    for c in a.cold_passengers.iter().take(top) {
        let _ = writeln!(
            out,
            "    {:<32} {:<10} {:>7} B  {:>7} B on written pages",
            c.name, c.section, c.size, c.bytes_on_written_pages
        );
    }
    if a.cold_passengers.len() > top {
        let _ = writeln!(out, "    … {} more (--top)", a.cold_passengers.len() - top);
    }
    relocation_pressure(out, a, top);
}

/// The advice for one image, or why it was skipped.
#[derive(Debug, serde::Serialize)]
pub struct ImageAdvice {
    pub image: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub advice: Option<plan::Advice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The pages only the loader wrote, by the section each starts in, most
/// pages first.
fn relocation_pressure(out: &mut String, a: &Advice, top: usize) {
    if a.relocation_pages.is_empty() {
        return;
    }
    let mut by_section: BTreeMap<&str, (u64, u64, &str)> = BTreeMap::new();
    for r in &a.relocation_pages {
        let section = r.section.split(',').next().unwrap_or_default();
        let e = by_section.entry(section).or_insert((0, 0, r.remedy));
        e.0 += 1;
        e.1 += r.relocations;
    }
    let mut rows: Vec<_> = by_section.into_iter().collect();
    rows.sort_by_key(|(name, (pages, _, _))| (std::cmp::Reverse(*pages), *name));
    let _ = writeln!(
        out,
        "  relocation pressure: {} pages only the dynamic loader wrote, by section:",
        a.relocation_pages.len()
    );
    for (section, (pages, relocations, remedy)) in rows.iter().take(top) {
        let _ = writeln!(
            out,
            "    {section:<20} {pages:>5} pages {relocations:>7} relocations  {remedy}"
        );
    }
}

/// The text report of every image's advice.
pub fn text(advice: &[ImageAdvice], top: usize, ordering: Option<&Path>, linker: Linker) -> String {
    let mut out = String::new();
    for (i, a) in advice.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match (&a.advice, &a.skipped) {
            (Some(advice), _) => one(&mut out, &a.image, advice, top),
            (None, Some(why)) => {
                let _ = writeln!(out, "{}\n  skipped: {why}", a.image);
            }
            (None, None) => {}
        }
    }
    if advice.iter().any(|a| a.advice.is_some()) {
        out.push_str(
            "\nA fault is each page's first write in a process: data written after its page was copied is not seen, \
             so a cold passenger may be written later. Record the relinked program again to confirm.\n",
        );
    }
    if let Some(file) = ordering {
        let how = match linker {
            Linker::Lld => "-fuse-ld=lld -Wl,--symbol-ordering-file=",
            Linker::Gnu => "-fuse-ld=gold -Wl,--section-ordering-file=",
            Linker::Bfd => "-Wl,--section-ordering-file=",
        };
        let _ = writeln!(
            out,
            "\nordering file: {} (compile with -fdata-sections -fno-common; link with {how}{})",
            file.display(),
            file.display()
        );
    }
    out
}
