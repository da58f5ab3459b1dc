//! The advice for one image, from its facts and the writes a profile saw:
//! pure, so it is tested on made-up images.
//!
//! The model of the relink (`docs/advisor.md`): in each output section,
//! the input sections of the ordered symbols go first (lld) or last
//! (gold), in the file's order, each at its alignment; every other one
//! keeps its old order. Only `.data` and `.bss` are ordered. A write inside a data symbol
//! moves with it, and so does every dynamic relocation's target in a
//! process the loader relocated the image in; any other write (`.got`,
//! `.dynamic`, RELRO, the zero-filled tail of a segment's last file page)
//! stays where it is.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::image::{Facts, Sym, PAGE};

/// Output sections whose input sections a linker orders.
pub const ORDERED_SECTIONS: [&str; 2] = [".data", ".bss"];

/// One write seen in the profile, at an address of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Write {
    pub pid: u32,
    pub vaddr: u64,
    /// Written by the dynamic loader (`ld.so`).
    pub loader: bool,
    /// The page came from the file (`cow_copy_file`, `cow_fill_file`): the
    /// process's first write to it since the image was mapped. A loader's
    /// write of this kind is the relocation of an image the process loaded;
    /// one on a page already private (a forked child's lazy binding) is
    /// not.
    pub from_file: bool,
}

/// A written symbol, in the order the ordering file lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hot {
    pub name: String,
    #[serde(skip)]
    pub raw: String,
    pub section: String,
    pub addr: u64,
    pub size: u64,
    pub processes: usize,
    /// Only the loader wrote it (its relocations).
    pub loader_only: bool,
    /// Why it cannot be ordered, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unorderable: Option<&'static str>,
}

/// A symbol never written that shares a written page.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Passenger {
    pub name: String,
    pub section: String,
    pub addr: u64,
    pub size: u64,
    /// Its bytes on pages that were written.
    pub bytes_on_written_pages: u64,
}

/// A page only the loader wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RelocPage {
    pub page: u64,
    pub section: String,
    pub relocations: u64,
    pub processes: usize,
    pub remedy: &'static str,
}

/// Pages of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessPages {
    pub pid: u32,
    pub now: u64,
    pub predicted: u64,
}

/// The advice for one image.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Advice {
    pub processes: Vec<ProcessPages>,
    /// Summed over the processes.
    pub pages_now: u64,
    pub pages_predicted: u64,
    /// Distinct pages of the image written by any process, and after.
    pub distinct_pages_now: u64,
    pub distinct_pages_predicted: u64,
    pub hot: Vec<Hot>,
    pub cold_passengers: Vec<Passenger>,
    /// Bytes on written pages that no write touched a symbol of.
    pub cold_bytes: u64,
    /// Commit charge per process mapping the image, bytes.
    pub commit_charge: u64,
    pub relocation_pages: Vec<RelocPage>,
}

/// A symbol's alignment as laid out: the largest power of two its
/// address is a multiple of, at most its size rounded up to a power of
/// two, and at most 64 (a cache line). The input section's own alignment
/// is not kept in a linked file, so this is an estimate: exact for data
/// aligned to its size or to a cache line.
fn alignment(s: &Sym) -> u64 {
    let of_address = if s.addr == 0 {
        64
    } else {
        1 << s.addr.trailing_zeros().min(6)
    };
    of_address.min(s.size.max(1).next_power_of_two()).min(64)
}

/// Whether `writer` (the events' `writer` column, or an image's file
/// name) is the dynamic loader.
#[must_use]
pub fn written_by_loader(writer: &str) -> bool {
    let image = writer.split(['`', '+', ' ']).next().unwrap_or_default();
    ["ld-linux", "ld-musl", "ld.so", "ld64.so"]
        .iter()
        .any(|p| image.starts_with(p))
}

/// The remedy for a page only the loader writes, by where it is.
fn remedy(section: &str, in_relro: bool) -> &'static str {
    if section == ".dynamic" {
        "the loader writes DT_DEBUG (for debuggers) into a program's .dynamic: every program pays this page"
    } else if in_relro {
        "RELRO: relocated once, then read-only; only fewer relocations shrink it (fewer pointers in data, or -no-pie)"
    } else if section == ".got.plt" {
        "lazy binding's GOT: link with -z now (and -z relro) to bind at start and make it read-only"
    } else if section == ".got" {
        "GOT outside RELRO: link with -z relro -z now"
    } else {
        "pointers in writable data, each a relocation in a PIE or library: the ordering file packs these objects too; make them const (RELRO), use indices, or link -no-pie (prelink is gone since glibc 2.36)"
    }
}

/// The symbols of each ordered output section, nested ones dropped (they
/// move with the one holding them), as indices into `facts.symbols`.
fn items(facts: &Facts) -> Vec<(u64, Vec<usize>)> {
    let mut out = Vec::new();
    for sec in facts
        .sections
        .iter()
        .filter(|s| ORDERED_SECTIONS.contains(&s.name.as_str()))
    {
        let mut list: Vec<usize> = Vec::new();
        let mut end = 0;
        for (i, s) in facts.symbols.iter().enumerate() {
            if s.addr < sec.addr || s.addr >= sec.addr.saturating_add(sec.size) || s.addr < end {
                continue;
            }
            end = s.addr.saturating_add(s.size);
            list.push(i);
        }
        out.push((sec.addr, list));
    }
    out
}

/// Processes and whether only the loader wrote, per symbol or page.
type Writers<K> = BTreeMap<K, (BTreeSet<u32>, bool)>;

/// An image's facts with what the model asks of them.
struct Model<'a> {
    facts: &'a Facts,
    /// Where the loader zero-fills a segment's last file page.
    boundaries: BTreeSet<u64>,
    /// Aliases (one object, several names: `_rtld_local` and
    /// `_rtld_global`) are one symbol: the first name at the address.
    canonical: Vec<usize>,
}

impl<'a> Model<'a> {
    fn new(facts: &'a Facts) -> Self {
        let canonical = facts
            .symbols
            .iter()
            .enumerate()
            .scan(0usize, |first, (i, s)| {
                if i == 0 || facts.symbols[*first].addr != s.addr {
                    *first = i;
                }
                Some(*first)
            })
            .collect();
        Self {
            facts,
            boundaries: facts.zero_fill_starts().collect(),
            canonical,
        }
    }

    /// The symbol a write at `vaddr` lies in.
    fn symbol_of(&self, vaddr: u64) -> Option<usize> {
        let symbols = &self.facts.symbols;
        let i = symbols
            .partition_point(|s| s.addr <= vaddr)
            .checked_sub(1)?;
        (vaddr - symbols[i].addr < symbols[i].size).then_some(self.canonical[i])
    }

    fn section_name(&self, addr: u64) -> String {
        self.facts
            .section_at(addr)
            .map_or_else(|| "?".to_owned(), |s| s.name.clone())
    }

    /// The dynamic relocations' addresses in writable segments.
    fn relocation_targets(&self) -> impl Iterator<Item = u64> + '_ {
        self.facts.relocations.iter().copied().filter(|r| {
            self.facts
                .segments
                .iter()
                .any(|s| s.writable && (s.vaddr..s.vaddr + s.mem_size).contains(r))
        })
    }

    /// Who wrote each symbol (the zero-filling of a page is no symbol's).
    /// A process the loader relocated the image in wrote every relocation's
    /// target, seen or not: a fault shows only a page's first write.
    fn written_symbols(&self, writes: &[Write], relocating: &BTreeSet<u32>) -> Writers<usize> {
        let mut by_symbol: Writers<usize> = BTreeMap::new();
        for w in writes
            .iter()
            .filter(|w| !self.boundaries.contains(&w.vaddr))
        {
            if let Some(i) = self.symbol_of(w.vaddr) {
                let e = by_symbol.entry(i).or_insert((BTreeSet::new(), true));
                e.0.insert(w.pid);
                e.1 &= w.loader;
            }
        }
        if !relocating.is_empty() {
            let relocated: BTreeSet<usize> = self
                .relocation_targets()
                .filter_map(|r| self.symbol_of(r))
                .collect();
            for i in relocated {
                let e = by_symbol.entry(i).or_insert((BTreeSet::new(), true));
                e.0.extend(relocating);
            }
        }
        by_symbol
    }

    /// The written symbols, hottest first: most processes, then program
    /// writes before the loader's, then by address.
    fn hot(&self, by_symbol: &Writers<usize>) -> Vec<Hot> {
        let mut hot: Vec<Hot> = by_symbol
            .iter()
            .map(|(i, (pids, loader_only))| {
                let s = &self.facts.symbols[*i];
                let section = self.section_name(s.addr);
                let unorderable = if !ORDERED_SECTIONS.contains(&section.as_str()) {
                    Some("not in .data or .bss")
                } else if self.facts.copies.contains(&s.addr) {
                    Some("copied from a library by a copy relocation")
                } else if s.ambiguous {
                    Some("its name is used by another symbol")
                } else {
                    None
                };
                Hot {
                    name: s.name.clone(),
                    raw: s.raw.clone(),
                    section,
                    addr: s.addr,
                    size: s.size,
                    processes: pids.len(),
                    loader_only: *loader_only,
                    unorderable,
                }
            })
            .collect();
        hot.sort_by(|a, b| {
            b.processes
                .cmp(&a.processes)
                .then(a.loader_only.cmp(&b.loader_only))
                .then(a.addr.cmp(&b.addr))
        });
        hot
    }

    /// Each symbol's address in the new layout: in each ordered section,
    /// the ordered symbols first, then the rest in their old order.
    fn layout(&self, hot: &[Hot], placement: Placement) -> HashMap<usize, u64> {
        let symbols = &self.facts.symbols;
        let rank: HashMap<u64, usize> = hot
            .iter()
            .enumerate()
            .filter(|(_, h)| h.unorderable.is_none())
            .map(|(r, h)| (h.addr, r))
            .collect();
        let mut moved = HashMap::new();
        for (start, list) in items(self.facts) {
            let (mut listed, rest): (Vec<usize>, Vec<usize>) = list
                .iter()
                .partition(|i| rank.contains_key(&symbols[**i].addr));
            listed.sort_by_key(|i| rank[&symbols[*i].addr]);
            let order = match placement {
                Placement::ListedFirst => [listed, rest].concat(),
                Placement::ListedLast => [rest, listed].concat(),
            };
            let mut cursor = start;
            for i in order {
                let a = alignment(&symbols[i]);
                let at = cursor.div_ceil(a) * a;
                moved.insert(i, at);
                cursor = at + symbols[i].size;
            }
        }
        moved
    }

    /// Where a write at `vaddr` lands in the new layout.
    fn moved(&self, moved: &HashMap<usize, u64>, vaddr: u64) -> u64 {
        if self.boundaries.contains(&vaddr) {
            return vaddr;
        }
        self.symbol_of(vaddr)
            .and_then(|i| Some(moved.get(&i)? + (vaddr - self.facts.symbols[i].addr)))
            .unwrap_or(vaddr)
    }

    /// Symbols never written that lie on written pages, and their bytes
    /// there.
    fn cold_passengers(
        &self,
        by_symbol: &Writers<usize>,
        pages: &Writers<u64>,
    ) -> (Vec<Passenger>, u64) {
        let mut passengers = Vec::new();
        let mut total = 0;
        for (i, s) in self.facts.symbols.iter().enumerate() {
            if self.canonical[i] != i || by_symbol.contains_key(&i) {
                continue;
            }
            let end = s.addr + s.size;
            let bytes: u64 = (s.addr & !(PAGE - 1)..end)
                .step_by(4096)
                .filter(|page| pages.contains_key(page))
                .map(|page| end.min(page + PAGE) - s.addr.max(page))
                .sum();
            if bytes > 0 {
                total += bytes;
                passengers.push(Passenger {
                    name: s.name.clone(),
                    section: self.section_name(s.addr),
                    addr: s.addr,
                    size: s.size,
                    bytes_on_written_pages: bytes,
                });
            }
        }
        passengers.sort_by(|a, b| {
            b.bytes_on_written_pages
                .cmp(&a.bytes_on_written_pages)
                .then(a.addr.cmp(&b.addr))
        });
        (passengers, total)
    }

    /// The pages only the loader wrote.
    fn relocation_pages(&self, pages: &Writers<u64>) -> Vec<RelocPage> {
        pages
            .iter()
            .filter(|(_, (_, loader_only))| *loader_only)
            .map(|(page, (pids, _))| {
                let section = self
                    .facts
                    .sections
                    .iter()
                    .filter(|s| s.addr < page + PAGE && s.addr + s.size > *page)
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                // glibc protects RELRO's whole pages only (`_dl_protect_relro`).
                let in_relro = self.facts.relro.is_some_and(|(start, end)| {
                    *page >= start & !(PAGE - 1) && *page < end & !(PAGE - 1)
                });
                RelocPage {
                    page: *page,
                    relocations: self.facts.relocations_in(*page),
                    processes: pids.len(),
                    remedy: remedy(section.split(',').next().unwrap_or_default(), in_relro),
                    section,
                }
            })
            .collect()
    }
}

/// Where a linker puts the listed input sections of an output section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// First, in the listed order, then the rest (lld:
    /// `sortISDBySectionOrder` inserts the ordered ones at the start of
    /// a data section).
    ListedFirst,
    /// After the rest, in the listed order (gold: an unlisted section's
    /// order index is 0 and sorts first; seen with gold 1.16 on the
    /// advisor's fixture).
    ListedLast,
}

/// Advice for an image with `facts`, given every write to it, for lld.
#[must_use]
pub fn advise(facts: &Facts, writes: &[Write]) -> Advice {
    advise_for(facts, writes, Placement::ListedFirst)
}

/// Advice for an image with `facts`, given every write to it, for a
/// linker that places the listed sections as `placement` says.
#[must_use]
pub fn advise_for(facts: &Facts, writes: &[Write], placement: Placement) -> Advice {
    let model = Model::new(facts);
    let relocating: BTreeSet<u32> = writes
        .iter()
        .filter(|w| w.loader && w.from_file)
        .map(|w| w.pid)
        .collect();
    let by_symbol = model.written_symbols(writes, &relocating);
    let hot = model.hot(&by_symbol);
    let moved = model.layout(&hot, placement);
    // The pages the relocations write in the new layout.
    let relocated: BTreeSet<u64> = model
        .relocation_targets()
        .map(|r| model.moved(&moved, r) & !(PAGE - 1))
        .collect();
    let mut now: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut predicted: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut pages: Writers<u64> = BTreeMap::new();
    for w in writes {
        let page = w.vaddr & !(PAGE - 1);
        now.entry(w.pid).or_default().insert(page);
        predicted
            .entry(w.pid)
            .or_default()
            .insert(model.moved(&moved, w.vaddr) & !(PAGE - 1));
        let e = pages.entry(page).or_insert((BTreeSet::new(), true));
        e.0.insert(w.pid);
        e.1 &= w.loader && !model.boundaries.contains(&w.vaddr);
    }
    for pid in &relocating {
        predicted
            .entry(*pid)
            .or_default()
            .extend(relocated.iter().copied());
    }
    let processes: Vec<ProcessPages> = now
        .iter()
        .map(|(pid, pages)| ProcessPages {
            pid: *pid,
            now: pages.len() as u64,
            predicted: predicted.get(pid).map_or(0, |p| p.len() as u64),
        })
        .collect();
    let distinct = |m: &BTreeMap<u32, BTreeSet<u64>>| {
        m.values().flatten().collect::<BTreeSet<_>>().len() as u64
    };
    let (cold_passengers, cold_bytes) = model.cold_passengers(&by_symbol, &pages);
    Advice {
        pages_now: processes.iter().map(|p| p.now).sum(),
        pages_predicted: processes.iter().map(|p| p.predicted).sum(),
        distinct_pages_now: distinct(&now),
        distinct_pages_predicted: distinct(&predicted),
        processes,
        hot,
        cold_passengers,
        cold_bytes,
        commit_charge: facts.commit_charge(),
        relocation_pages: model.relocation_pages(&pages),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
