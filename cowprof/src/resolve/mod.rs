//! Resolution: which mapping, image, section, symbol and page each fault
//! hit, and which code wrote, as identities ([`keys`]). Each file is opened
//! and parsed once, each code location and stack symbolized once; an event
//! whose places were seen before costs a few hash lookups.
//!
//! Nothing here knows of the state or the collector; names are given later
//! by `report::naming` from what the resolver learned.
#[doc(hidden)]
pub mod craft;
pub mod debuginfo;
pub mod elf;
pub mod files;
pub mod intern;
mod names;
mod paths;
pub mod stacks;
pub mod symbols;
pub mod writers;

use aya::maps::{MapData, StackTraceMap};
use cowprof_common::{
    event::{ANON_HEAP, ANON_NAMED, ANON_STACK},
    FaultEvent, FileKey, FileRecord, Kind, VmaInfo,
};
use cowprof_model::keys::{Loc, MapKey, MappingKey, Resolved, StackKey, TextId};

pub use self::paths::Mounts;
use self::{
    elf::Image,
    files::{Files, Hint},
    intern::Interner,
    stacks::StackResolver,
    symbols::{DebugDirs, Symbols},
    writers::{file_offset, Writers},
};

/// The page size cowprof assumes (x86-64).
pub const PAGE: u64 = 4096;

fn key_of(vma: &VmaInfo) -> FileKey {
    FileKey::new(vma.ino, vma.dev)
}

/// Resolves events to identities, and keeps what names them.
#[derive(Default)]
pub struct Resolver {
    files: Files,
    writers: Writers,
    texts: Interner,
    /// Present with `--stacks`.
    stacks: Option<StackResolver>,
    /// Interned stacks by kernel stack id.
    stack_ids: hashbrown::HashMap<u32, TextId>,
    symbols: Symbols,
}

impl Resolver {
    /// A resolver against this machine's mounts; `stacks` is the kernel's
    /// stack map when stacks are recorded; separate debug files are looked
    /// for in `debug_dirs`.
    #[must_use]
    pub fn new(stacks: Option<StackTraceMap<MapData>>, debug_dirs: &DebugDirs) -> Self {
        Self {
            files: Files::new(),
            stacks: stacks.map(StackResolver::new),
            symbols: Symbols::new(debug_dirs),
            ..Self::default()
        }
    }

    /// Learns a file's path from the kernel.
    pub fn add_file(&mut self, record: &FileRecord) {
        self.files.add(record);
    }

    /// The files seen, for naming.
    #[must_use]
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// The files whose writers show as offsets, for lack of symbols.
    pub fn unnamed_writers(&self) -> impl Iterator<Item = &str> {
        self.writers.unnamed()
    }

    /// Forgets what was kept of an exited process.
    pub fn forget_process(&mut self, pid: u32) {
        if let Some(stacks) = self.stacks.as_mut() {
            stacks.forget_process(pid);
        }
    }

    /// Resolves one fault event; `None` when its kind is not one.
    pub fn resolve(&mut self, event: &FaultEvent) -> Option<Resolved> {
        let kind = Kind::from_u8(event.kind)?;
        let (mapping, loc) = self.locate(event);
        let (instruction, writer) =
            self.writers
                .resolve(event, &mut self.files, &mut self.texts, &self.symbols);
        let stack = self.stack(event);
        Some(Resolved {
            pid: event.pid,
            tid: event.tid,
            comm: event.comm,
            kind,
            ts_ns: event.ts_ns,
            latency_ns: event.latency_ns,
            mapping,
            loc,
            offset: u16::try_from(event.addr & (PAGE - 1)).unwrap_or(0),
            writer,
            instruction,
            stack,
        })
    }

    fn stack(&mut self, event: &FaultEvent) -> StackKey {
        let Some(stacks) = self.stacks.as_mut() else {
            return StackKey::NotRecorded;
        };
        stacks.note_code(event.pid, &event.code);
        let Ok(id) = u32::try_from(event.stack_id) else {
            return StackKey::Missing;
        };
        if let Some(&text) = self.stack_ids.get(&id) {
            return StackKey::Stack(text);
        }
        let (text, complete) = stacks.resolve(id, event.pid, &mut self.files, &self.symbols);
        let text = self.texts.intern(&text);
        // A stack not fully named yet is named again next time.
        if complete {
            self.stack_ids.insert(id, text);
        }
        StackKey::Stack(text)
    }

    /// The mapping written to and where in it.
    fn locate(&mut self, event: &FaultEvent) -> (MappingKey, Loc) {
        let vma = &event.vma;
        let page = event.addr & !(PAGE - 1);
        let hint = Hint {
            pid: event.pid,
            start: vma.vm_start,
            end: vma.vm_end,
        };
        if vma.file_backed == 0 {
            let map = match vma.anon_kind {
                ANON_HEAP => MapKey::Heap,
                ANON_STACK => MapKey::Stack,
                ANON_NAMED => MapKey::Named(key_of(vma)),
                _ => MapKey::Anon,
            };
            let mapping = MappingKey {
                map,
                start: vma.vm_start,
                end: vma.vm_end,
                pid: event.pid,
            };
            if event.bss.found != 0 {
                // The image's own mapping is the one before this one; its
                // map_files entry is not known here, so only its path can
                // verify it.
                let key = FileKey::new(event.bss.ino, event.bss.dev);
                let offset = event.addr.wrapping_sub(event.bss.base);
                if let Some(loc) = self.files.image(&key, None).and_then(|image| {
                    let vaddr = image.vaddr_of_memory_offset(offset)?;
                    Some(in_image(image, key, vaddr))
                }) {
                    return (mapping, loc);
                }
            }
            let loc = Loc {
                image: None,
                section: None,
                symbol: None,
                page,
            };
            return (mapping, loc);
        }
        let key = key_of(vma);
        let mapping = MappingKey {
            map: MapKey::File(key),
            start: 0,
            end: 0,
            pid: 0,
        };
        let offset = file_offset(page, vma.vm_start, vma.vm_pgoff);
        let in_file = Loc {
            image: None,
            section: None,
            symbol: None,
            page: offset,
        };
        let loc = match self.files.image(&key, Some(hint)) {
            Some(image) => match vaddr_of_write(image, offset, event.addr & (PAGE - 1)) {
                Some(vaddr) => in_image(image, key, vaddr),
                None => Loc {
                    image: Some(key),
                    ..in_file
                },
            },
            None => in_file,
        };
        (mapping, loc)
    }
}

/// The image address a write at `in_page` into the page at file offset
/// `page_offset` lands on. The exact offset decides, not the page's: a
/// writable segment rarely starts at a page boundary of the file (its
/// first page holds the end of the segment before it), and its zero-filled
/// tail (`.bss`) lies past its file contents in the same page.
fn vaddr_of_write(image: &Image, page_offset: u64, in_page: u64) -> Option<u64> {
    let exact = page_offset.wrapping_add(in_page);
    image
        .vaddr_of_offset(exact)
        .or_else(|| image.vaddr_of_memory_offset(exact))
        .or_else(|| {
            image
                .vaddr_of_offset(page_offset)
                .map(|v| v.wrapping_add(in_page))
        })
}

fn in_image(image: &Image, key: FileKey, vaddr: u64) -> Loc {
    let index = |i: usize| u32::try_from(i).ok();
    Loc {
        image: Some(key),
        section: image.section_index_at(vaddr).and_then(index),
        symbol: image.symbol_index_at(vaddr).and_then(index),
        page: vaddr & !(PAGE - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_a_segments_shared_and_zero_filled_pages_are_placed() {
        // lld's layout of the advisor's fixture: two writable segments,
        // neither starting at a page boundary of the file.
        let segment = |offset, vaddr, file_size, mem_size| crate::resolve::elf::Segment {
            offset,
            vaddr,
            file_size,
            mem_size,
            writable: true,
        };
        let image = Image {
            segments: vec![
                segment(0x980, 0x2980, 0x1d8, 0x1d8),
                segment(0xb80, 0x3b80, 0x8280, 0x8298),
            ],
            ..Image::default()
        };
        // `.dynamic` and `.data`, in the file page both segments map.
        assert_eq!(vaddr_of_write(&image, 0, 0xa28), Some(0x2a28));
        assert_eq!(vaddr_of_write(&image, 0, 0xb88), Some(0x3b88));
        // The middle of `.data`, and the zero-filled tail of its last page.
        assert_eq!(vaddr_of_write(&image, 0x4000, 0x40), Some(0x7040));
        assert_eq!(vaddr_of_write(&image, 0x8000, 0xe00), Some(0xbe00));
    }

    #[test]
    fn addresses_below_their_mapping_do_not_panic() {
        // Bad input (an address below its mapping, a huge pgoff) resolves
        // to some offset; it never underflows.
        let mut resolver = Resolver::default();
        let event = FaultEvent {
            kind: Kind::CowCopyFile as u8,
            addr: 0x1000,
            ip: 0x10,
            vma: VmaInfo {
                vm_start: 0x8000,
                vm_end: 0x9000,
                vm_pgoff: u64::MAX,
                file_backed: 1,
                ..VmaInfo::default()
            },
            code: VmaInfo {
                vm_start: 0x9000,
                vm_end: 0xa000,
                file_backed: 1,
                ..VmaInfo::default()
            },
            ..FaultEvent::default()
        };
        let loc = resolver.resolve(&event).expect("a fault").loc;
        assert_eq!(loc.image, None);
        assert!(resolver.resolve(&FaultEvent::default()).is_none(), "kind 0");
    }
}
