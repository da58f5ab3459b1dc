//! What the advisor needs from an image beyond what attribution keeps: raw
//! (mangled) symbol names for the ordering file, the RELRO range and the
//! addresses dynamic relocations write.
//!
//! The file is first opened through [`Image::open`], whose bounded checks
//! refuse hostile headers; only then is it read whole (`advise` runs
//! offline, on a file the user names through a profile).
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
};

use object::{
    elf::{PT_GNU_RELRO, SHT_RELR},
    read::elf::{ElfFile64, ProgramHeader as _, SectionHeader as _},
    Object as _, ObjectSymbol as _, SymbolKind,
};

use crate::resolve::{
    elf::{demangle, Image, NotAttributed, Section, Segment},
    symbols::DebugDirs,
};

/// The page size the advisor lays pages out in (x86-64).
pub const PAGE: u64 = 4096;

/// A data symbol of a writable section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sym {
    /// As people read it (demangled).
    pub name: String,
    /// As the linker knows it.
    pub raw: String,
    pub addr: u64,
    pub size: u64,
    /// Whether another data symbol of the image has the same raw name
    /// (two `static` variables of one name): a linker cannot tell them
    /// apart by name, so neither can be ordered.
    pub ambiguous: bool,
}

/// The contents of `file`'s separate debug file, by build id, after the
/// same bounded checks as the file itself.
fn debug_file(file: &ElfFile64<'_, object::Endianness>, debug_dirs: &DebugDirs) -> Option<Vec<u8>> {
    let id = file.build_id().ok()??;
    let hex = id.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    if hex.len() < 3 {
        return None;
    }
    debug_dirs.dirs().iter().find_map(|dir| {
        let path = dir
            .join(".build-id")
            .join(&hex[..2])
            .join(format!("{}.debug", &hex[2..]));
        Image::open(&path).ok()?;
        std::fs::read(&path).ok()
    })
}

/// Marks the symbols whose raw name another object also has. Aliases
/// (names at the same address) are one object.
fn mark_ambiguous(symbols: &mut [Sym]) {
    let mut places: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in symbols.iter() {
        places.entry(s.raw.clone()).or_default().push(s.addr);
    }
    for s in symbols.iter_mut() {
        s.ambiguous = places[s.raw.as_str()].iter().any(|a| *a != s.addr);
    }
}

/// The addresses dynamic relocations (`REL`/`RELA` and `RELR`) write,
/// sorted, and those of copy relocations.
fn relocations(file: &ElfFile64<'_, object::Endianness>, data: &[u8]) -> (Vec<u64>, BTreeSet<u64>) {
    let endian = file.endian();
    let mut relocations = Vec::new();
    let mut copies = BTreeSet::new();
    if let Some(dynamic) = file.dynamic_relocations() {
        for (offset, relocation) in dynamic {
            relocations.push(offset);
            let copy = object::RelocationFlags::Elf {
                r_type: object::elf::R_X86_64_COPY,
            };
            if relocation.flags() == copy {
                copies.insert(offset);
            }
        }
    }
    for section in file.elf_section_table().iter() {
        if section.sh_type(endian) != SHT_RELR {
            continue;
        }
        if let Ok(Some(relr)) = section.relr(endian, data) {
            relocations.extend(relr);
        }
    }
    relocations.sort_unstable();
    (relocations, copies)
}

/// The facts of one image.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub segments: Vec<Segment>,
    pub sections: Vec<Section>,
    /// Data symbols with a size, in writable segments, sorted by address.
    pub symbols: Vec<Sym>,
    /// `PT_GNU_RELRO`: made read-only once relocated.
    pub relro: Option<(u64, u64)>,
    /// The addresses the dynamic relocations (`REL`/`RELA` and `RELR`)
    /// write, sorted: the loader writes each in every process that loads
    /// the image.
    pub relocations: Vec<u64>,
    /// Addresses of copy relocations: a library's data copied into the
    /// program by the loader, which no ordering file can move.
    pub copies: BTreeSet<u64>,
}

impl Facts {
    /// Reads the facts of the ELF file at `path` (a stripped one's symbols
    /// from its debug file under `debug_dirs`).
    ///
    /// # Errors
    /// Why the file cannot be used.
    pub fn open(path: &Path, debug_dirs: &DebugDirs) -> Result<Self, NotAttributed> {
        let image = Image::open(path)?;
        let data = std::fs::read(path).map_err(|e| NotAttributed::Unreadable(e.to_string()))?;
        let malformed = |e: object::Error| NotAttributed::Malformed(e.to_string());
        let file = ElfFile64::<object::Endianness>::parse(&*data).map_err(malformed)?;
        let writable = |addr: u64| {
            image.segments.iter().any(|s| {
                s.writable && (s.vaddr..s.vaddr.saturating_add(s.mem_size)).contains(&addr)
            })
        };
        let data_symbols = |symbols: &mut dyn Iterator<Item = (SymbolKind, u64, u64, String)>| {
            symbols
                .filter(|(kind, addr, size, _)| {
                    *kind == SymbolKind::Data && *size > 0 && writable(*addr)
                })
                .map(|(_, addr, size, raw)| Sym {
                    name: demangle(&raw),
                    raw,
                    addr,
                    size,
                    ambiguous: false,
                })
                .collect::<Vec<Sym>>()
        };
        let fields = |s: object::read::elf::ElfSymbol64<'_, '_, object::Endianness>| {
            Some((s.kind(), s.address(), s.size(), s.name().ok()?.to_owned()))
        };
        let mut symbols = data_symbols(&mut file.symbols().filter_map(fields));
        // A stripped file: the `.symtab` of its separate debug file, found
        // by build id (`DIR/.build-id/xx/yyyy.debug`), else the exported
        // data of its `.dynsym`.
        if symbols.is_empty() {
            if let Some(debug) = debug_file(&file, debug_dirs) {
                if let Ok(debug) = ElfFile64::<object::Endianness>::parse(&*debug) {
                    symbols = data_symbols(&mut debug.symbols().filter_map(fields));
                }
            }
        }
        if symbols.is_empty() {
            symbols = data_symbols(&mut file.dynamic_symbols().filter_map(fields));
        }
        symbols.sort_by(|a, b| (a.addr, &a.raw).cmp(&(b.addr, &b.raw)));
        symbols.dedup_by(|a, b| a.addr == b.addr && a.raw == b.raw);
        mark_ambiguous(&mut symbols);
        let endian = file.endian();
        let relro = file
            .elf_program_headers()
            .iter()
            .find(|p| p.p_type(endian) == PT_GNU_RELRO)
            .map(|p| {
                let start = p.p_vaddr(endian);
                (start, start.saturating_add(p.p_memsz(endian)))
            });
        let (relocations, copies) = relocations(&file, &data);
        let sections = image
            .sections
            .iter()
            .filter(|s| writable(s.addr))
            .cloned()
            .collect();
        Ok(Self {
            segments: image.segments,
            sections,
            symbols,
            relro,
            relocations,
            copies,
        })
    }

    /// The dynamic relocations that write the page at `page`.
    #[must_use]
    pub fn relocations_in(&self, page: u64) -> u64 {
        let from = self.relocations.partition_point(|r| *r < page);
        let to = self.relocations.partition_point(|r| *r < page + PAGE);
        (to - from) as u64
    }

    /// The section holding `vaddr`.
    #[must_use]
    pub fn section_at(&self, vaddr: u64) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| (s.addr..s.addr.saturating_add(s.size)).contains(&vaddr))
    }

    /// Where each writable segment's file contents end inside a page whose
    /// rest is zero-filled (`.bss`): the loader (the kernel for a program,
    /// `ld.so` for a library) clears that tail, whatever data lies there.
    pub fn zero_fill_starts(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments
            .iter()
            .filter(|s| s.writable && s.mem_size > s.file_size)
            .map(|s| s.vaddr.saturating_add(s.file_size))
            .filter(|end| end % PAGE != 0)
    }

    /// Bytes of commit charge the image's private writable mappings cause in
    /// each process that maps it: every page a writable `PT_LOAD` spans, its
    /// zero-filled tail (`.bss`) included. The kernel charges a private
    /// writable mapping whole when it is made, written or not, and RELRO
    /// stays charged after `mprotect` makes it read-only
    /// (`docs/advisor.md`).
    #[must_use]
    pub fn commit_charge(&self) -> u64 {
        let mut pages = std::collections::BTreeSet::new();
        for s in self.segments.iter().filter(|s| s.writable) {
            let first = s.vaddr & !(PAGE - 1);
            let end = s.vaddr.saturating_add(s.mem_size).saturating_add(PAGE - 1) & !(PAGE - 1);
            pages.extend((first..end).step_by(4096));
        }
        pages.len() as u64 * PAGE
    }
}
