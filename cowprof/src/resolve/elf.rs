//! What cowprof needs from an ELF image: its writable segments, sections and
//! symbols, parsed once per (dev, inode) with the `object` crate.
use std::path::Path;

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _, SymbolKind};

/// A `PT_LOAD` segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub vaddr: u64,
    pub file_size: u64,
    pub mem_size: u64,
    pub writable: bool,
}

/// A section with an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

/// A symbol with an address and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

/// The parts of an ELF image attribution uses.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub segments: Vec<Segment>,
    pub sections: Vec<Section>,
    /// Data objects, sorted by address (`.symtab`, else `.dynsym`).
    pub data: Vec<Symbol>,
}

/// A symbol's name as people read it: Rust (legacy and v0) and C++
/// manglings are decoded, Rust's hash suffix dropped; others are kept.
#[must_use]
pub fn demangle(name: &str) -> String {
    if let Ok(rust) = rustc_demangle::try_demangle(name) {
        // The legacy decoder accepts any `_Z` name and then prints it
        // unchanged when it is not Rust's; C++ gets its turn below.
        let text = format!("{rust:#}");
        if text != name {
            return text;
        }
    }
    if name.starts_with("_Z") {
        if let Some(text) = cpp_demangle::Symbol::new(name)
            .ok()
            .and_then(|s| s.demangle().ok())
        {
            return text;
        }
    }
    name.to_owned()
}

fn sorted(mut symbols: Vec<Symbol>) -> Vec<Symbol> {
    symbols.sort_by_key(|s| s.addr);
    symbols.dedup_by_key(|s| s.addr);
    symbols
}

impl Image {
    /// Parses `path`; `None` when it is not an ELF file or cannot be read.
    #[must_use]
    pub fn open(path: &Path) -> Option<Self> {
        let data = std::fs::read(path).ok()?;
        Self::parse(&data)
    }

    /// Parses ELF bytes.
    #[must_use]
    pub fn parse(data: &[u8]) -> Option<Self> {
        let file = object::File::parse(data).ok()?;
        let segments = file
            .segments()
            .map(|seg| {
                let (offset, file_size) = seg.file_range();
                let writable = match seg.flags() {
                    object::SegmentFlags::Elf { p_flags } => p_flags & object::elf::PF_W != 0,
                    _ => false,
                };
                Segment {
                    offset,
                    vaddr: seg.address(),
                    file_size,
                    mem_size: seg.size(),
                    writable,
                }
            })
            .collect();
        let sections = file
            .sections()
            .filter(|s| s.address() != 0 && s.size() != 0)
            .filter_map(|s| {
                Some(Section {
                    name: s.name().ok()?.to_owned(),
                    addr: s.address(),
                    size: s.size(),
                })
            })
            .collect();
        let collect = |kind: SymbolKind, dynamic: bool| -> Vec<Symbol> {
            let symbols: Box<dyn Iterator<Item = object::Symbol<'_, '_>>> = if dynamic {
                Box::new(file.dynamic_symbols())
            } else {
                Box::new(file.symbols())
            };
            symbols
                .filter(|s| s.kind() == kind && s.address() != 0)
                .filter_map(|s| {
                    Some(Symbol {
                        name: demangle(s.name().ok()?),
                        addr: s.address(),
                        size: s.size(),
                    })
                })
                .collect()
        };
        let pick = |kind| {
            let full = collect(kind, false);
            sorted(if full.is_empty() {
                collect(kind, true)
            } else {
                full
            })
        };
        Some(Self {
            segments,
            sections,
            data: pick(SymbolKind::Data),
        })
    }

    /// The virtual address of file offset `offset` in a writable segment.
    #[must_use]
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .filter(|s| s.writable)
            .find(|s| (s.offset..s.offset + s.file_size.max(1)).contains(&offset))
            .map(|s| s.vaddr + (offset - s.offset))
    }

    /// The index of the section holding `vaddr`.
    #[must_use]
    pub fn section_index_at(&self, vaddr: u64) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| (s.addr..s.addr + s.size).contains(&vaddr))
    }

    /// The index of the data symbol covering `vaddr`.
    #[must_use]
    pub fn symbol_index_at(&self, vaddr: u64) -> Option<usize> {
        Self::symbol_index(&self.data, vaddr)
    }

    fn symbol_index(symbols: &[Symbol], vaddr: u64) -> Option<usize> {
        let i = symbols
            .partition_point(|s| s.addr <= vaddr)
            .checked_sub(1)?;
        let s = &symbols[i];
        (vaddr - s.addr < s.size.max(1)).then_some(i)
    }

    /// The symbol covering `vaddr` in `symbols`, and the offset into it.
    #[must_use]
    pub fn symbol_at(symbols: &[Symbol], vaddr: u64) -> Option<(&Symbol, u64)> {
        let s = &symbols[Self::symbol_index(symbols, vaddr)?];
        Some((s, vaddr - s.addr))
    }

    /// The virtual address of `offset` in the memory image of a writable
    /// segment, past its file contents too (`.bss`).
    #[must_use]
    pub fn vaddr_of_memory_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .filter(|s| s.writable)
            .find(|s| (s.offset..s.offset + s.mem_size).contains(&offset))
            .map(|s| s.vaddr + (offset - s.offset))
    }

    /// Every page (by virtual address) of the writable segments in memory,
    /// `.bss` included.
    pub fn writable_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().filter(|s| s.writable).flat_map(|s| {
            let first = s.vaddr & !0xfff;
            let end = (s.vaddr + s.mem_size + 0xfff) & !0xfff;
            (first..end).step_by(4096)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_this_test_binary() {
        let exe = std::env::current_exe().expect("test binary");
        let image = Image::open(&exe).expect("an ELF image");
        assert!(
            image.segments.iter().any(|s| s.writable),
            "a writable segment"
        );
        assert!(image.sections.iter().any(|s| s.name == ".data"));
        assert!(!image.data.is_empty());
        assert!(image.writable_pages().count() > 0);
    }

    #[test]
    fn names_are_demangled() {
        assert_eq!(
            demangle("_RNvNtCsaz6eC2DG7lh_3std5alloc4HOOK"),
            "std::alloc::HOOK"
        );
        assert_eq!(
            demangle("_ZN3std9panicking11EMPTY_PANIC17h1234567890abcdefE"),
            "std::panicking::EMPTY_PANIC"
        );
        assert_eq!(demangle("_ZN9libunwind5cacheE"), "libunwind::cache");
        assert_eq!(demangle("_ZTV7Derived"), "{vtable(Derived)}");
        assert_eq!(demangle("hot"), "hot");
    }

    #[test]
    fn non_elf_degrades_to_none() {
        assert!(Image::parse(b"not an ELF file").is_none());
    }

    #[test]
    fn symbol_lookup_respects_sizes() {
        let symbols = vec![
            Symbol {
                name: "a".into(),
                addr: 0x1000,
                size: 0x10,
            },
            Symbol {
                name: "b".into(),
                addr: 0x2000,
                size: 0x1000,
            },
        ];
        assert_eq!(
            Image::symbol_at(&symbols, 0x1008).map(|(s, o)| (s.name.as_str(), o)),
            Some(("a", 8))
        );
        assert!(
            Image::symbol_at(&symbols, 0x1010).is_none(),
            "past the end of a"
        );
        assert_eq!(
            Image::symbol_at(&symbols, 0x2fff).map(|(s, _)| s.name.as_str()),
            Some("b")
        );
        assert!(Image::symbol_at(&symbols, 0x0fff).is_none());
    }
}
