//! What cowprof needs from an ELF image: its writable segments, sections and
//! symbols, parsed once per (dev, inode) with the `object` crate.
//!
//! Any process on the host chooses which files cowprof opens and parses as
//! root, so the work is bounded. The file is never read whole: `object`
//! reads the headers, the symbol tables and the names it is asked for, on
//! demand ([`object::ReadCache`]). Before it does, the headers are checked:
//! more than [`MAX_SEGMENTS`] program headers, [`MAX_SECTIONS`] sections or
//! [`MAX_SYMBOLS`] entries in a symbol table, writable segments over
//! [`MAX_WRITABLE_BYTES`], and ranges that overflow are refused with a
//! reason ([`NotAttributed`]). A file is read through its own descriptor
//! (`pread`), never mapped, so one truncated while it is parsed cannot
//! fault cowprof; one whose size or modification time changed while it
//! was parsed is refused.
use std::{os::unix::fs::MetadataExt as _, path::Path};

use object::{
    elf::{FileHeader32, FileHeader64, SHT_DYNSYM, SHT_SYMTAB},
    read::elf::{FileHeader, SectionHeader as _},
    Endianness, FileKind, Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _,
    ReadRef, SymbolKind,
};

/// The most program headers parsed (`e_phnum` is 16 bits unless extended).
pub const MAX_SEGMENTS: usize = 65_536;
/// The most section headers parsed.
pub const MAX_SECTIONS: usize = 65_536;
/// The most entries of one symbol table parsed (the largest unstripped
/// programs have a few hundred thousand).
pub const MAX_SYMBOLS: u64 = 4_000_000;
/// The most memory all writable segments may span (each page of them is
/// a row of the touch map).
pub const MAX_WRITABLE_BYTES: u64 = 4 << 30;

/// Why a file's pages are not attributed to its sections and symbols.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAttributed {
    /// Not ELF at all (a data file mapped privately): nothing to say.
    #[error("not an ELF file")]
    NotElf,
    #[error("not a regular file")]
    NotRegular,
    #[error("it changed while it was parsed")]
    Changed,
    #[error("it could not be read: {0}")]
    Unreadable(String),
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("more than {MAX_SEGMENTS} program headers")]
    TooManySegments,
    #[error("more than {MAX_SECTIONS} sections")]
    TooManySections,
    #[error("{0} entries in a symbol table, over {MAX_SYMBOLS}")]
    TooManySymbols(u64),
    #[error("writable segments span more than {MAX_WRITABLE_BYTES} bytes")]
    TooMuchWritable,
}

impl NotAttributed {
    /// Whether this is worth telling the user: a file that is not ELF is
    /// an ordinary case, anything else a file that looks like an image
    /// and could not be used.
    #[must_use]
    pub fn is_notable(&self) -> bool {
        !matches!(self, Self::NotElf)
    }
}

fn malformed(err: object::Error) -> NotAttributed {
    NotAttributed::Malformed(err.to_string())
}

/// Checks the counts `object` would trust before it reads the tables they
/// size: program and section headers, and symbol table entries.
fn check_headers<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>>(
    data: R,
) -> Result<(), NotAttributed> {
    let header = Elf::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    if header.phnum(endian, data).map_err(malformed)? > MAX_SEGMENTS {
        return Err(NotAttributed::TooManySegments);
    }
    if header.shnum(endian, data).map_err(malformed)? > MAX_SECTIONS {
        return Err(NotAttributed::TooManySections);
    }
    let entry = std::mem::size_of::<Elf::Sym>() as u64;
    for section in header.section_headers(endian, data).map_err(malformed)? {
        if matches!(section.sh_type(endian), SHT_SYMTAB | SHT_DYNSYM) {
            let size: u64 = section.sh_size(endian).into();
            if size / entry > MAX_SYMBOLS {
                return Err(NotAttributed::TooManySymbols(size / entry));
            }
        }
    }
    Ok(())
}

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
    /// Parses the file at `path`.
    ///
    /// # Errors
    /// Why it is not attributed.
    pub fn open(path: &Path) -> Result<Self, NotAttributed> {
        let file =
            std::fs::File::open(path).map_err(|e| NotAttributed::Unreadable(e.to_string()))?;
        Self::read(&file)
    }

    /// Parses an opened file, reading only what it needs of it.
    ///
    /// # Errors
    /// Why it is not attributed: also when the file is not a regular one,
    /// or its size or modification time changed while it was parsed.
    pub fn read(file: &std::fs::File) -> Result<Self, NotAttributed> {
        let unreadable = |e: std::io::Error| NotAttributed::Unreadable(e.to_string());
        let stamp = |m: &std::fs::Metadata| (m.len(), m.mtime(), m.mtime_nsec());
        let before = file.metadata().map_err(unreadable)?;
        if !before.is_file() {
            return Err(NotAttributed::NotRegular);
        }
        let image = Self::parse(&object::ReadCache::new(file));
        let after = file.metadata().map_err(unreadable)?;
        if stamp(&before) != stamp(&after) {
            return Err(NotAttributed::Changed);
        }
        image
    }

    /// Parses ELF data (bytes, or a file through [`object::ReadCache`])
    /// with bounded work.
    ///
    /// # Errors
    /// Why it is not attributed.
    pub fn parse<'data, R: ReadRef<'data>>(data: R) -> Result<Self, NotAttributed> {
        match FileKind::parse(data) {
            Ok(FileKind::Elf64) => check_headers::<FileHeader64<Endianness>, R>(data)?,
            Ok(FileKind::Elf32) => check_headers::<FileHeader32<Endianness>, R>(data)?,
            _ => return Err(NotAttributed::NotElf),
        }
        let file = object::File::parse(data).map_err(malformed)?;
        let overflow =
            || NotAttributed::Malformed("a range past the end of the address space".into());
        let mut segments = Vec::new();
        let mut writable_bytes = 0u64;
        for seg in file.segments() {
            let (offset, file_size) = seg.file_range();
            let writable = match seg.flags() {
                object::SegmentFlags::Elf { p_flags } => p_flags & object::elf::PF_W != 0,
                _ => false,
            };
            let segment = Segment {
                offset,
                vaddr: seg.address(),
                file_size,
                mem_size: seg.size(),
                writable,
            };
            // Every range used later is checked here once.
            let spans = [
                segment
                    .offset
                    .checked_add(segment.file_size.max(segment.mem_size)),
                segment
                    .vaddr
                    .checked_add(segment.mem_size.max(segment.file_size)),
                segment
                    .vaddr
                    .checked_add(segment.mem_size)
                    .and_then(|end| end.checked_add(0xfff)),
            ];
            if spans.iter().any(Option::is_none) {
                return Err(overflow());
            }
            if writable {
                writable_bytes = writable_bytes.saturating_add(segment.mem_size);
                if writable_bytes > MAX_WRITABLE_BYTES {
                    return Err(NotAttributed::TooMuchWritable);
                }
            }
            segments.push(segment);
        }
        let sections = file
            .sections()
            .filter(|s| s.address() != 0 && s.size() != 0)
            .filter(|s| s.address().checked_add(s.size()).is_some())
            .filter_map(|s| {
                Some(Section {
                    name: s.name().ok()?.to_owned(),
                    addr: s.address(),
                    size: s.size(),
                })
            })
            .collect();
        let collect = |kind: SymbolKind, dynamic: bool| -> Vec<Symbol> {
            let symbols: Box<dyn Iterator<Item = object::Symbol<'data, '_, R>>> = if dynamic {
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
        Ok(Self {
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
            .find(|s| (s.offset..s.offset.saturating_add(s.file_size.max(1))).contains(&offset))
            .and_then(|s| s.vaddr.checked_add(offset - s.offset))
    }

    /// The index of the section holding `vaddr`.
    #[must_use]
    pub fn section_index_at(&self, vaddr: u64) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| (s.addr..s.addr.saturating_add(s.size)).contains(&vaddr))
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
            .find(|s| (s.offset..s.offset.saturating_add(s.mem_size)).contains(&offset))
            .and_then(|s| s.vaddr.checked_add(offset - s.offset))
    }

    /// Every page (by virtual address) of the writable segments in memory,
    /// `.bss` included.
    pub fn writable_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().filter(|s| s.writable).flat_map(|s| {
            let first = s.vaddr & !0xfff;
            let end = s.vaddr.saturating_add(s.mem_size).saturating_add(0xfff) & !0xfff;
            (first..end).step_by(4096)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{super::craft, *};

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
        assert_eq!(
            Image::parse(&b"not an ELF file"[..]).err(),
            Some(NotAttributed::NotElf)
        );
        assert!(matches!(
            Image::parse(&b"\x7fELF\x02\x01\x01 truncated"[..]),
            Err(NotAttributed::Malformed(_))
        ));
    }

    #[test]
    fn a_crafted_image_is_attributed() {
        let image = Image::parse(&*craft::image(8).bytes()).expect("well-formed");
        assert_eq!(image.vaddr_of_offset(0x1040), Some(0x3040));
        let section = image.section_index_at(0x3040).expect("in .data");
        assert_eq!(image.sections[section].name, ".data");
        let symbol = image.symbol_index_at(0x3041).expect("in s1");
        assert_eq!(image.data[symbol].name, "s1");
        assert_eq!(image.writable_pages().count(), 2);
    }

    /// Hostile files are refused with a reason, after bounded work.
    #[test]
    fn hostile_images_are_refused_with_a_reason() {
        let refused = |elf: &craft::Elf| Image::parse(&*elf.bytes()).err();
        assert_eq!(
            refused(&craft::many_symbols(MAX_SYMBOLS + 1)),
            Some(NotAttributed::TooManySymbols(MAX_SYMBOLS + 1))
        );
        assert!(matches!(
            refused(&craft::headers_past_the_end()),
            Some(NotAttributed::Malformed(_))
        ));
        assert!(matches!(
            refused(&craft::lying_section_count()),
            Some(NotAttributed::Malformed(_))
        ));
        assert!(matches!(
            refused(&craft::overflowing_segment()),
            Some(NotAttributed::Malformed(_))
        ));
        assert_eq!(
            refused(&craft::huge_bss()),
            Some(NotAttributed::TooMuchWritable)
        );
        // A symbol table linked to itself reads its names from itself:
        // garbage names, never a loop.
        if let Ok(image) = Image::parse(&*craft::looping_links().bytes()) {
            assert!(image.data.len() <= 4);
        }
    }

    #[test]
    fn files_are_read_in_part_and_special_ones_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 1 GiB with well-formed headers: only the headers and tables
        // are read, and it is attributed.
        let path = dir.path().join("large.so");
        craft::large(1 << 30).write(&path).expect("sparse file");
        let image = Image::open(&path).expect("attributed");
        assert_eq!(image.data.len(), 4);
        // 1 GiB of symbol table (44 million entries): refused before any
        // of it is read.
        craft::many_symbols((1 << 30) / craft::SYM)
            .write(&path)
            .expect("sparse file");
        assert!(matches!(
            Image::open(&path),
            Err(NotAttributed::TooManySymbols(_))
        ));
        assert_eq!(
            Image::open(Path::new("/dev/null")).err(),
            Some(NotAttributed::NotRegular)
        );
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
