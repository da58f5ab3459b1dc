//! The advisor's model on made-up images.
use std::collections::BTreeSet;

use super::{advise, Write};
use crate::{
    advise::image::{Facts, Sym},
    resolve::elf::{Section, Segment},
};

fn sym(name: &str, addr: u64, size: u64) -> Sym {
    Sym {
        name: name.to_owned(),
        raw: name.to_owned(),
        addr,
        size,
        ambiguous: false,
    }
}

fn section(name: &str, addr: u64, size: u64) -> Section {
    Section {
        name: name.to_owned(),
        addr,
        size,
    }
}

/// `.got` on page 0x1000; `.data` from 0x2000 with a 64-byte hot symbol
/// every 0x1040 bytes behind a 4 KiB cold one; a 0x18-byte `.bss` after.
fn scattered(hot: u64) -> Facts {
    let mut symbols = Vec::new();
    let mut at = 0x2000;
    for i in 0..hot {
        symbols.push(sym(&format!("cold{i}"), at, 0x1000));
        symbols.push(sym(&format!("hot{i}"), at + 0x1000, 0x40));
        at += 0x1040;
    }
    symbols.push(sym("counter", at, 0x18));
    Facts {
        segments: vec![Segment {
            offset: 0x1000,
            vaddr: 0x1000,
            file_size: at - 0x1000,
            mem_size: at + 0x18 - 0x1000,
            writable: true,
        }],
        sections: vec![
            section(".got", 0x1000, 0x40),
            section(".data", 0x2000, at - 0x2000),
            section(".bss", at, 0x18),
        ],
        symbols,
        relro: Some((0x1000, 0x2000)),
        relocations: vec![0x1000, 0x1008, 0x1010, 0x1018, 0x1020],
        copies: BTreeSet::new(),
    }
}

/// A write; the loader's are relocations of an image just loaded (the
/// page came from the file).
fn write(pid: u32, vaddr: u64, loader: bool) -> Write {
    Write {
        pid,
        vaddr,
        loader,
        from_file: loader,
    }
}

#[test]
fn scattered_hot_symbols_pack_into_one_page() {
    let facts = scattered(4);
    let mut writes = vec![write(1, 0x1008, true)];
    writes.extend((0..4).map(|i| write(1, 0x3000 + i * 0x1040 + 8, false)));
    let a = advise(&facts, &writes);
    // Now: .got, and hot0..hot3 on 0x3000, 0x4000, 0x5000, 0x6000.
    assert_eq!(a.pages_now, 5);
    // Packed at .data's start (0x2000): 4 * 64 bytes on one page.
    assert_eq!(a.pages_predicted, 2);
    let names: Vec<&str> = a.hot.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["hot0", "hot1", "hot2", "hot3"]);
    // cold0 fills the unwritten page 0x2000; cold1..cold3 each span the
    // two written pages of their neighbours; counter shares hot3's page.
    let bytes = |name: &str| {
        a.cold_passengers
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.bytes_on_written_pages)
    };
    assert_eq!(bytes("cold0"), None);
    assert_eq!(bytes("cold1"), Some(0x1000));
    assert_eq!(bytes("counter"), Some(0x18));
    assert_eq!(a.cold_bytes, 3 * 0x1000 + 0x18);
    assert_eq!(a.relocation_pages.len(), 1);
    assert_eq!(a.relocation_pages[0].relocations, 5);
    assert!(a.relocation_pages[0].remedy.starts_with("RELRO"));
    // 0x1000..0x7000 after rounding .bss's end up: 6 pages.
    assert_eq!(a.commit_charge, 6 * 4096);
}

#[test]
fn processes_are_counted_apart_and_summed() {
    let facts = scattered(2);
    let writes = vec![
        write(1, 0x3008, false),
        write(1, 0x4048, false),
        write(2, 0x4048, false),
    ];
    let a = advise(&facts, &writes);
    assert_eq!(a.pages_now, 3);
    assert_eq!(a.pages_predicted, 2);
    assert_eq!(a.distinct_pages_now, 2);
    assert_eq!(a.distinct_pages_predicted, 1);
    // Written by both processes first.
    assert_eq!(a.hot[0].name, "hot1");
    assert_eq!(a.hot[0].processes, 2);
}

#[test]
fn the_zero_filled_tail_and_the_loader_stay_put() {
    let facts = scattered(2);
    let bss = facts.sections[2].addr;
    // The kernel clears the tail of the last file page at the segment's
    // file end; a relocation writes cold1's first word.
    let writes = vec![
        write(1, bss, false),
        write(1, 0x3040, true),
        write(1, 0x3008, false),
    ];
    let a = advise(&facts, &writes);
    assert!(a.hot.iter().all(|h| h.name != "counter"), "{:?}", a.hot);
    let cold1 = a.hot.iter().find(|h| h.name == "cold1").expect("cold1");
    assert!(cold1.loader_only);
    // hot0 is ordered before cold1 (program writes first).
    assert_eq!(a.hot[0].name, "hot0");
}

#[test]
fn symbols_outside_data_and_bss_or_ambiguous_are_not_ordered() {
    let mut facts = scattered(1);
    facts.symbols.push(sym("table", 0x1010, 0x10));
    facts.symbols.sort_by_key(|s| s.addr);
    if let Some(s) = facts.symbols.iter_mut().find(|s| s.name == "hot0") {
        s.ambiguous = true;
    }
    let a = advise(&facts, &[write(1, 0x1010, false), write(1, 0x3000, false)]);
    assert!(a.hot.iter().all(|h| h.unorderable.is_some()), "{:?}", a.hot);
    assert_eq!(a.pages_predicted, a.pages_now);
}

#[test]
fn the_ordering_files_list_what_can_be_ordered() {
    use crate::advise::ordering::{render, Linker};
    let facts = scattered(2);
    let a = advise(&facts, &[write(1, 0x3000, false), write(1, 0x4040, false)]);
    let lld = render(Linker::Lld, "/x", &a.hot);
    let lines: Vec<&str> = lld.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["hot0", "hot1"]);
    let gold = render(Linker::Gnu, "/x", &a.hot);
    assert!(gold.lines().any(|l| l == ".data.hot0"));
    assert!(gold.lines().any(|l| l == ".data.rel.local.hot1"));
    let bfd = render(Linker::Bfd, "/x", &a.hot);
    assert!(bfd.contains(".data : {\n    *(.data.hot0)\n"), "{bfd}");
}

#[test]
fn aliases_are_one_symbol() {
    let mut facts = scattered(1);
    // `hot0` and `hot0_alias` name one object; `cold0` and `cold0_alias` too.
    facts.symbols.push(sym("hot0_alias", 0x3000, 0x40));
    facts.symbols.push(sym("cold0_alias", 0x2000, 0x1000));
    facts
        .symbols
        .sort_by(|a, b| (a.addr, &a.raw).cmp(&(b.addr, &b.raw)));
    let a = advise(&facts, &[write(1, 0x2ff8, false), write(1, 0x3008, false)]);
    let hot: Vec<&str> = a.hot.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(hot, ["cold0", "hot0"]);
    assert!(
        a.cold_passengers.iter().all(|c| !c.name.contains("alias")),
        "{:?}",
        a.cold_passengers
    );
}

#[test]
fn every_relocation_moves_with_its_symbol_in_a_relocating_process() {
    let mut facts = scattered(2);
    // Relocations at cold1's first word and inside hot1; a fault shows
    // only the first (cold1's) on its page.
    facts.relocations = vec![0x3040, 0x4048];
    let a = advise(&facts, &[write(1, 0x3008, false), write(1, 0x3040, true)]);
    let hot: Vec<(&str, bool)> = a
        .hot
        .iter()
        .map(|h| (h.name.as_str(), h.loader_only))
        .collect();
    assert_eq!(hot, [("hot0", false), ("cold1", true), ("hot1", true)]);
    // hot0 at 0x2000, cold1 at 0x2040, hot1 at 0x3040: the relocation in
    // hot1 writes page 0x3000.
    assert_eq!(a.pages_now, 1);
    assert_eq!(a.pages_predicted, 2);
}

#[test]
fn gold_puts_the_listed_sections_after_the_rest() {
    use super::{advise_for, Placement};
    let facts = scattered(4);
    let writes: Vec<Write> = (0..4)
        .map(|i| write(1, 0x3000 + i * 0x1040 + 8, false))
        .collect();
    let a = advise_for(&facts, &writes, Placement::ListedLast);
    // The four colds first (0x2000..0x6000), then hot0..hot3 at
    // 0x6000..0x6100: one page.
    assert_eq!(a.pages_now, 4);
    assert_eq!(a.pages_predicted, 1);
}

#[test]
fn a_forked_childs_lazy_binding_is_no_relocation() {
    let mut facts = scattered(2);
    facts.relocations = vec![0x3040, 0x4048];
    // The parent loaded the image (a relocation write from the file); the
    // child's loader write lands on a page already private (lazy binding
    // after fork): only the parent is charged every relocation's page.
    let child_binding = Write {
        pid: 2,
        vaddr: 0x1010,
        loader: true,
        from_file: false,
    };
    let a = advise(
        &facts,
        &[
            write(1, 0x3040, true),
            write(2, 0x3008, false),
            child_binding,
        ],
    );
    let child = a.processes.iter().find(|p| p.pid == 2).expect("the child");
    assert_eq!((child.now, child.predicted), (2, 2));
}
