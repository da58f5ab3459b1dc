//! Attribution: which mapping, image, section, symbol and page each fault
//! hit, and which code wrote. Runs in the collector thread, on the fly, so
//! memory grows with distinct pages and symbols, not with events.
pub mod elf;
mod paths;
pub mod stacks;
pub mod views;

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use cowprof_common::{
    event::{ANON_HEAP, ANON_NAMED, ANON_STACK},
    FaultEvent, FileKey, FileRecord, VmaInfo,
};

pub use self::{elf::Image, paths::Mounts};

/// Where one fault landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The mapping: a file path, or an anon label.
    pub mapping: String,
    /// The image (an ELF file) when the mapping is one.
    pub image: Option<FileKey>,
    /// The section and data symbol, when known.
    pub section: Option<String>,
    pub symbol: Option<String>,
    /// The page: its virtual address in the image for image pages, else its
    /// address in the process.
    pub page: u64,
}

/// Resolves events to places and writers, parsing each image once.
#[derive(Default)]
pub struct Attributor {
    mounts: Mounts,
    paths: HashMap<FileKey, PathBuf>,
    images: HashMap<FileKey, Option<Arc<Image>>>,
}

thread_local! {
    /// blazesym's symbolizer caches what it parsed of each file; it is not
    /// `Send`, so each thread (in practice the collector) has its own.
    static SYMBOLIZER: blazesym::symbolize::Symbolizer = blazesym::symbolize::Symbolizer::new();
}

fn key_of(vma: &VmaInfo) -> FileKey {
    FileKey {
        ino: vma.ino,
        dev: vma.dev,
        _pad: 0,
    }
}

const PAGE: u64 = 4096;

impl Attributor {
    /// An attributor that resolves mount points from this process's view.
    #[must_use]
    pub fn new() -> Self {
        Self {
            mounts: Mounts::read(),
            ..Self::default()
        }
    }

    /// Learns a file's path from the kernel.
    pub fn add_file(&mut self, record: &FileRecord) {
        let path = self.mounts.path_of(record);
        self.paths.insert(
            FileKey {
                ino: record.ino,
                dev: record.dev,
                _pad: 0,
            },
            path,
        );
    }

    /// The path of a file, or `dev:ino` when its record was lost.
    #[must_use]
    pub fn path(&self, key: &FileKey) -> String {
        self.paths.get(key).map_or_else(
            || {
                format!(
                    "[dev {}:{} ino {}]",
                    key.dev >> 20,
                    key.dev & 0xf_ffff,
                    key.ino
                )
            },
            |p| p.display().to_string(),
        )
    }

    /// The parsed image of a file, if it is an ELF file that can be read.
    pub fn image(&mut self, key: &FileKey) -> Option<Arc<Image>> {
        if let Some(image) = self.images.get(key) {
            return image.clone();
        }
        let image = self
            .paths
            .get(key)
            .and_then(|p| Image::open(p))
            .map(Arc::new);
        self.images.insert(*key, image.clone());
        image
    }

    /// Where `event` wrote.
    pub fn place(&mut self, event: &FaultEvent) -> Place {
        let vma = &event.vma;
        let page = event.addr & !(PAGE - 1);
        if vma.file_backed == 0 && event.bss.found != 0 {
            if let Some(place) = self.bss_place(event) {
                return place;
            }
        }
        if vma.file_backed == 0 {
            return Place {
                mapping: self.anon_label(vma),
                image: None,
                section: None,
                symbol: None,
                page,
            };
        }
        let key = key_of(vma);
        let mapping = self.path(&key);
        let offset = page - vma.vm_start + vma.vm_pgoff * PAGE;
        let Some(image) = self.image(&key) else {
            return Place {
                mapping,
                image: None,
                section: None,
                symbol: None,
                page: offset,
            };
        };
        let Some(vaddr) = image.vaddr_of_offset(offset) else {
            return Place {
                mapping,
                image: Some(key),
                section: None,
                symbol: None,
                page: offset,
            };
        };
        let exact = vaddr + (event.addr & (PAGE - 1));
        let section = image.section_at(exact).map(|s| s.name.clone());
        let symbol = Image::symbol_at(&image.data, exact).map(|(s, _)| s.name.clone());
        Place {
            mapping,
            image: Some(key),
            section,
            symbol,
            page: vaddr & !(PAGE - 1),
        }
    }

    /// `[heap]`, `[stack]`, `[anon:NAME]` or `[anon]`.
    fn anon_label(&self, vma: &VmaInfo) -> String {
        match vma.anon_kind {
            ANON_HEAP => "[heap]".to_owned(),
            ANON_STACK => "[stack]".to_owned(),
            ANON_NAMED => self.path(&key_of(vma)),
            _ => "[anon]".to_owned(),
        }
    }

    /// An anon page of an image's `.bss` mapping.
    fn bss_place(&mut self, event: &FaultEvent) -> Option<Place> {
        let key = FileKey {
            ino: event.bss.ino,
            dev: event.bss.dev,
            _pad: 0,
        };
        let image = self.image(&key)?;
        let vaddr = image.vaddr_of_memory_offset(event.addr.wrapping_sub(event.bss.base))?;
        Some(Place {
            mapping: self.path(&key),
            image: Some(key),
            section: image.section_at(vaddr).map(|s| s.name.clone()),
            symbol: Image::symbol_at(&image.data, vaddr).map(|(s, _)| s.name.clone()),
            page: vaddr & !(PAGE - 1),
        })
    }

    /// The writing code: ``image`function+0xoff``, or the image and offset
    /// when it has no symbols.
    pub fn writer(&mut self, event: &FaultEvent) -> String {
        let code = &event.code;
        if code.vm_start == 0 {
            return format!("[unknown] {:#x}", event.ip);
        }
        if code.file_backed == 0 {
            return format!("[anon code] {:#x}", event.ip);
        }
        let key = key_of(code);
        let path = self.path(&key);
        let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
        let offset = event.ip - code.vm_start + code.vm_pgoff * PAGE;
        match self
            .paths
            .get(&key)
            .and_then(|p| Self::symbolize(p.clone(), offset))
        {
            Some(f) => format!("{name}`{f}"),
            None => format!("{name}+{offset:#x}"),
        }
    }

    /// The function at `offset` in the file `key`, by name only.
    #[must_use]
    pub fn symbolize_file_offset(&self, key: &FileKey, offset: u64) -> Option<String> {
        let text = Self::symbolize(self.paths.get(key)?.clone(), offset)?;
        Some(
            text.split_once('+')
                .map_or(text.as_str(), |(f, _)| f)
                .to_owned(),
        )
    }

    /// `function+0xoff`, and ` (file:line)` where debug info has it, for a
    /// file offset in an ELF file, with blazesym.
    fn symbolize(path: PathBuf, offset: u64) -> Option<String> {
        use blazesym::symbolize::{
            source::{Elf, Source},
            Input, Symbolized,
        };
        let source = Source::Elf(Elf::new(path));
        SYMBOLIZER.with(|symbolizer| {
            let symbolized = symbolizer
                .symbolize_single(&source, Input::FileOffset(offset))
                .ok()?;
            let Symbolized::Sym(sym) = symbolized else {
                return None;
            };
            let mut text = format!("{}+{:#x}", sym.name, sym.offset);
            if let Some(code) = &sym.code_info {
                let file = Path::new(&code.file);
                let _ = write!(text, " ({}", file.display());
                if let Some(line) = code.line {
                    let _ = write!(text, ":{line}");
                }
                text.push(')');
            }
            Some(text)
        })
    }
}
