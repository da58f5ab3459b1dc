//! Hand-made ELF files, well-formed or hostile, for the tests of the
//! bounded parser ([`super::elf`]), the live hostile-file test and the
//! fuzz corpus. Not used by cowprof itself.
//!
//! Layout (ELF-64, little-endian, `ET_DYN`, x86-64): the file header, then
//! the program headers, then the section headers, then the contents at the
//! offsets the headers give. Large contents (a symbol table of millions of
//! entries) are left as holes in a sparse file: zero bytes cost no disk.
use std::{fs::File, io, os::unix::fs::FileExt as _, path::Path};

const EHDR: u16 = 64;
const PHDR: u16 = 56;
const SHDR: u16 = 64;
/// An `Elf64_Sym`.
pub const SYM: u64 = 24;

/// A `PT_LOAD` program header.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

/// A section header (`sh_name` is an offset into `.shstrtab`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sect {
    pub name: u32,
    pub kind: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub entsize: u64,
}

/// An ELF file's headers and where their contents go.
#[derive(Clone, Debug, Default)]
pub struct Elf {
    pub loads: Vec<Load>,
    pub sections: Vec<Sect>,
    /// `e_shstrndx`.
    pub shstrndx: u16,
    /// `e_shoff` when it must lie (past the end of the file, say).
    pub shoff: Option<u64>,
    /// `e_shnum` when it must lie.
    pub shnum: Option<u16>,
    /// Bytes written at given offsets after the headers.
    pub contents: Vec<(u64, Vec<u8>)>,
    /// The file's length (a hole past the last contents).
    pub len: u64,
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(bytes);
}

impl Elf {
    /// Where the section headers start (after the program headers).
    #[must_use]
    pub fn headers_end(&self) -> u64 {
        u64::from(EHDR)
            + u64::from(PHDR) * self.loads.len() as u64
            + u64::from(SHDR) * self.sections.len() as u64
    }

    /// The file header and every table, as bytes.
    #[must_use]
    pub fn headers(&self) -> Vec<u8> {
        let phoff = u64::from(EHDR);
        let shoff = phoff + u64::from(PHDR) * self.loads.len() as u64;
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        let mut b = Vec::new();
        put(&mut b, b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        put(&mut b, &3u16.to_le_bytes()); // ET_DYN
        put(&mut b, &62u16.to_le_bytes()); // EM_X86_64
        put(&mut b, &1u32.to_le_bytes());
        put(&mut b, &0u64.to_le_bytes()); // e_entry
        put(&mut b, &phoff.to_le_bytes());
        put(&mut b, &self.shoff.unwrap_or(shoff).to_le_bytes());
        put(&mut b, &0u32.to_le_bytes()); // e_flags
        put(&mut b, &EHDR.to_le_bytes());
        put(&mut b, &PHDR.to_le_bytes());
        put(&mut b, &count(self.loads.len()).to_le_bytes());
        put(&mut b, &SHDR.to_le_bytes());
        put(
            &mut b,
            &self
                .shnum
                .unwrap_or(count(self.sections.len()))
                .to_le_bytes(),
        );
        put(&mut b, &self.shstrndx.to_le_bytes());
        for l in &self.loads {
            put(&mut b, &1u32.to_le_bytes()); // PT_LOAD
            put(&mut b, &l.flags.to_le_bytes());
            for v in [l.offset, l.vaddr, l.vaddr, l.file_size, l.mem_size, 4096] {
                put(&mut b, &v.to_le_bytes());
            }
        }
        for s in &self.sections {
            put(&mut b, &s.name.to_le_bytes());
            put(&mut b, &s.kind.to_le_bytes());
            for v in [s.flags, s.addr, s.offset, s.size] {
                put(&mut b, &v.to_le_bytes());
            }
            put(&mut b, &s.link.to_le_bytes());
            put(&mut b, &0u32.to_le_bytes()); // sh_info
            put(&mut b, &8u64.to_le_bytes()); // sh_addralign
            put(&mut b, &s.entsize.to_le_bytes());
        }
        b
    }

    /// The whole file in memory.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let mut data = self.headers();
        for (offset, bytes) in &self.contents {
            let Ok(start) = usize::try_from(*offset) else {
                continue;
            };
            let end = start + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
        }
        if let Ok(len) = usize::try_from(self.len) {
            if data.len() < len {
                data.resize(len, 0);
            }
        }
        data
    }

    /// Writes the file at `path`, sparse past what has contents.
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let file = File::create(path)?;
        file.write_all_at(&self.headers(), 0)?;
        for (offset, bytes) in &self.contents {
            file.write_all_at(bytes, *offset)?;
        }
        let len = file.metadata()?.len().max(self.len);
        file.set_len(len)
    }
}

/// `.shstrtab` of the files below: the names at these offsets.
const NAMES: &[u8] = b"\0.data\0.symtab\0.strtab\0.shstrtab\0";
const NAME_DATA: u32 = 1;
const NAME_SYMTAB: u32 = 7;
const NAME_STRTAB: u32 = 15;
const NAME_SHSTRTAB: u32 = 23;

/// A small well-formed image: a writable segment of two pages at file
/// offset 0x1000 (vaddr 0x3000), `.data` over it, and `symbols` data
/// objects named `s0`, `s1` … 64 bytes apart (at most 64).
#[must_use]
pub fn image(symbols: usize) -> Elf {
    let symbols = symbols.min(64) as u64;
    let data = Load {
        flags: 6,
        offset: 0x1000,
        vaddr: 0x3000,
        file_size: 0x2000,
        mem_size: 0x2000,
    };
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for i in 0..symbols {
        let name = u32::try_from(strtab.len()).unwrap_or(0);
        strtab.extend_from_slice(format!("s{i}\0").as_bytes());
        symtab.extend_from_slice(&name.to_le_bytes());
        symtab.push(1); // STB_LOCAL, STT_OBJECT
        symtab.push(0);
        symtab.extend_from_slice(&1u16.to_le_bytes()); // .data
        symtab.extend_from_slice(&(0x3000 + i * 64).to_le_bytes());
        symtab.extend_from_slice(&64u64.to_le_bytes());
    }
    let (sym_at, str_at, names_at) = (0x3000, 0x3000 + symtab.len() as u64, 0x2f00);
    let sect = |name, kind, offset, size: usize, link, entsize| Sect {
        name,
        kind,
        offset,
        size: size as u64,
        link,
        entsize,
        ..Sect::default()
    };
    let mut elf = Elf {
        loads: vec![data],
        sections: vec![
            Sect::default(),
            Sect {
                addr: 0x3000,
                flags: 3, // SHF_WRITE | SHF_ALLOC
                ..sect(NAME_DATA, 1, 0x1000, 0x2000, 0, 0)
            },
            sect(NAME_SYMTAB, 2, sym_at, symtab.len(), 3, SYM),
            sect(NAME_STRTAB, 3, str_at, strtab.len(), 0, 0),
            sect(NAME_SHSTRTAB, 3, names_at, NAMES.len(), 0, 0),
        ],
        shstrndx: 4,
        ..Elf::default()
    };
    elf.contents = vec![
        (names_at, NAMES.to_vec()),
        (sym_at, symtab),
        (str_at, strtab),
    ];
    elf
}

/// An image whose `.symtab` has `count` entries, all zero (a hole).
#[must_use]
pub fn many_symbols(count: u64) -> Elf {
    let mut elf = image(1);
    let at = 0x10_0000;
    elf.sections[2].offset = at;
    elf.sections[2].size = count * SYM;
    elf.len = at + count * SYM;
    elf
}

/// Section headers past the end of the file.
#[must_use]
pub fn headers_past_the_end() -> Elf {
    let mut elf = image(4);
    elf.shoff = Some(1 << 40);
    elf
}

/// A symbol table that names itself as its string table, and a section
/// names table index past the last section.
#[must_use]
pub fn looping_links() -> Elf {
    let mut elf = image(4);
    elf.sections[2].link = 2;
    elf.shstrndx = 200;
    elf
}

/// A section count that claims 65,535 headers in a file that holds five.
#[must_use]
pub fn lying_section_count() -> Elf {
    let mut elf = image(4);
    elf.shnum = Some(u16::MAX - 1);
    elf
}

/// A writable segment whose end overflows the address space.
#[must_use]
pub fn overflowing_segment() -> Elf {
    let mut elf = image(4);
    elf.loads[0].vaddr = u64::MAX - 0x1000;
    elf
}

/// A writable segment of 1 TiB in memory (a `.bss` no process has).
#[must_use]
pub fn huge_bss() -> Elf {
    let mut elf = image(4);
    elf.loads[0].mem_size = 1 << 40;
    elf
}

/// A well-formed header on a sparse file of `len` bytes.
#[must_use]
pub fn large(len: u64) -> Elf {
    let mut elf = image(4);
    elf.len = len;
    elf
}
