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

/// A mapping, by identity; named only when a view is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKey {
    File(FileKey),
    Heap,
    Stack,
    /// A `PR_SET_VMA_ANON_NAME` mapping; the key names its name record.
    Named(FileKey),
    Anon,
}

/// Where one fault landed, by identity: no strings, so it costs no
/// allocation per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub mapping: MapKey,
    /// The image (an ELF file) when the mapping is one.
    pub image: Option<FileKey>,
    /// Indices into the image's sections and data symbols, when known.
    pub section: Option<u32>,
    pub symbol: Option<u32>,
    /// The page: its virtual address in the image for image pages, else its
    /// address in the process (or its file offset in a non-ELF file).
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
        self.parsed(key).cloned()
    }

    /// The image of `key`, parsed on first use (one hash lookup after).
    fn parsed(&mut self, key: &FileKey) -> Option<&Arc<Image>> {
        let paths = &self.paths;
        self.images
            .entry(*key)
            .or_insert_with(|| paths.get(key).and_then(|p| Image::open(p)).map(Arc::new))
            .as_ref()
    }

    /// Where `event` wrote.
    pub fn locate(&mut self, event: &FaultEvent) -> Loc {
        let vma = &event.vma;
        let page = event.addr & !(PAGE - 1);
        if vma.file_backed == 0 && event.bss.found != 0 {
            let key = FileKey {
                ino: event.bss.ino,
                dev: event.bss.dev,
                _pad: 0,
            };
            let offset = event.addr.wrapping_sub(event.bss.base);
            let found = self.with_image(&key, |image| {
                let vaddr = image.vaddr_of_memory_offset(offset)?;
                Some(Self::in_image(image, key, vaddr))
            });
            if let Some(Some(loc)) = found {
                return loc;
            }
        }
        if vma.file_backed == 0 {
            let mapping = match vma.anon_kind {
                ANON_HEAP => MapKey::Heap,
                ANON_STACK => MapKey::Stack,
                ANON_NAMED => MapKey::Named(key_of(vma)),
                _ => MapKey::Anon,
            };
            return Loc {
                mapping,
                image: None,
                section: None,
                symbol: None,
                page,
            };
        }
        let key = key_of(vma);
        let offset = page - vma.vm_start + vma.vm_pgoff * PAGE;
        let in_file = Loc {
            mapping: MapKey::File(key),
            image: None,
            section: None,
            symbol: None,
            page: offset,
        };
        let found = self.with_image(&key, |image| match image.vaddr_of_offset(offset) {
            Some(vaddr) => Self::in_image(image, key, vaddr + (event.addr & (PAGE - 1))),
            None => Loc {
                image: Some(key),
                ..in_file
            },
        });
        found.unwrap_or(in_file)
    }

    fn in_image(image: &Image, key: FileKey, vaddr: u64) -> Loc {
        let index = |i: usize| u32::try_from(i).ok();
        Loc {
            mapping: MapKey::File(key),
            image: Some(key),
            section: image.section_index_at(vaddr).and_then(index),
            symbol: image.symbol_index_at(vaddr).and_then(index),
            page: vaddr & !(PAGE - 1),
        }
    }

    /// Runs `f` on the parsed image of `key`, parsing it on first use;
    /// `None` when the file is not a readable ELF file.
    fn with_image<R>(&mut self, key: &FileKey, f: impl FnOnce(&Image) -> R) -> Option<R> {
        self.parsed(key).map(|image| f(image))
    }

    /// A mapping's name: its file's path, or `[heap]`, `[stack]`,
    /// `[anon:NAME]` or `[anon]`.
    #[must_use]
    pub fn mapping_name(&self, mapping: &MapKey) -> String {
        match mapping {
            MapKey::File(key) | MapKey::Named(key) => self.path(key),
            MapKey::Heap => "[heap]".to_owned(),
            MapKey::Stack => "[stack]".to_owned(),
            MapKey::Anon => "[anon]".to_owned(),
        }
    }

    /// The name of section `index` of `image` ("?" when unknown).
    pub fn section_name(&mut self, image: &FileKey, index: Option<u32>) -> String {
        index
            .and_then(|i| {
                self.with_image(image, |img| {
                    img.sections.get(i as usize).map(|s| s.name.clone())
                })
            })
            .flatten()
            .unwrap_or_else(|| "?".to_owned())
    }

    /// The name of data symbol `index` of `image`.
    pub fn symbol_name(&mut self, image: &FileKey, index: u32) -> Option<String> {
        self.with_image(image, |img| {
            img.data.get(index as usize).map(|s| s.name.clone())
        })
        .flatten()
    }

    /// The writing code: ``image`function+0xoff``, or the image and offset
    /// when it has no symbols.
    pub fn writer(&mut self, event: &FaultEvent) -> String {
        let code = &event.code;
        if cowprof_common::event::is_kernel_address(event.ip) {
            // A kernel-mode fault on user memory: the kernel wrote on the
            // process's behalf (read(2) into a buffer, say).
            return "[kernel]".to_owned();
        }
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
