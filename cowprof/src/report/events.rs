//! Every fault with its names, for sinks that keep each event (profiles on
//! disk). Names are made once per identity and shared (`Arc<str>`), so an
//! event costs a few hash lookups here, not string building.
use std::sync::Arc;

use cowprof_common::{event::COMM_LEN, FaultEvent, FileKey};
use hashbrown::HashMap;

use cowprof_model::{
    keys::{comm_str, MapKey, MappingKey, Resolved, StackKey, TextId},
    names::Names,
};

use crate::resolve::writers::file_offset;

/// One fault, named.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub comm: Arc<str>,
    pub kind: &'static str,
    pub address: u64,
    /// The page: its virtual address in the image for image pages, else
    /// its address (or file offset) in the mapping.
    pub page: u64,
    /// The offset in the mapped file, for file mappings.
    pub file_offset: Option<u64>,
    /// The mapping's name: its file's path, `[heap]`, `[stack]`,
    /// `[anon:NAME]` or `[anon]`.
    pub mapping: Arc<str>,
    pub mapping_start: u64,
    pub mapping_end: u64,
    /// Whether the mapping has no file (its rows are per process).
    pub anon: bool,
    pub image: Option<Arc<str>>,
    pub section: Option<Arc<str>>,
    pub symbol: Option<Arc<str>>,
    /// The writing instruction: ``image`function+0xoff (file:line)``.
    pub writer: Arc<str>,
    /// The writing function (the writer view's key).
    pub writer_function: Arc<str>,
    pub writer_ip: u64,
    pub latency_ns: u64,
    /// The user stack, `frame;frame;...` innermost first, when recorded.
    pub stack: Option<Arc<str>>,
}

/// Names shared across events.
#[derive(Default)]
pub struct EventNames {
    comms: HashMap<[u8; COMM_LEN], Arc<str>>,
    mappings: HashMap<MapKey, Arc<str>>,
    images: HashMap<FileKey, Arc<str>>,
    sections: HashMap<(FileKey, Option<u32>), Arc<str>>,
    symbols: HashMap<(FileKey, u32), Arc<str>>,
    texts: HashMap<TextId, Arc<str>>,
}

fn cached<K: std::hash::Hash + Eq + Copy>(
    map: &mut HashMap<K, Arc<str>>,
    key: K,
    name: impl FnOnce() -> String,
) -> Arc<str> {
    map.entry(key).or_insert_with(|| name().into()).clone()
}

impl EventNames {
    /// A comm's name.
    pub fn comm(&mut self, comm: [u8; COMM_LEN]) -> Arc<str> {
        cached(&mut self.comms, comm, || comm_str(&comm))
    }

    /// A mapping's name (see [`EventRow::mapping`]).
    pub fn mapping(&mut self, map: MapKey, names: &dyn Names) -> Arc<str> {
        cached(&mut self.mappings, map, || names.mapping(&map).into_owned())
    }

    /// An image's path.
    pub fn image(&mut self, image: FileKey, names: &dyn Names) -> Arc<str> {
        cached(&mut self.images, image, || names.path(&image).into_owned())
    }

    /// A section's name (`?` when unknown).
    pub fn section(&mut self, image: FileKey, index: Option<u32>, names: &dyn Names) -> Arc<str> {
        cached(&mut self.sections, (image, index), || {
            names.section(&image, index).to_owned()
        })
    }

    /// A data symbol's name.
    pub fn symbol(&mut self, image: FileKey, index: u32, names: &dyn Names) -> Arc<str> {
        cached(&mut self.symbols, (image, index), || {
            names.symbol(&image, Some(index)).to_owned()
        })
    }

    fn text(&mut self, id: TextId, names: &dyn Names) -> Arc<str> {
        cached(&mut self.texts, id, || names.text(id).to_owned())
    }

    /// Names one resolved fault.
    pub fn row(&mut self, event: &FaultEvent, r: &Resolved, names: &dyn Names) -> EventRow {
        let MappingKey { map, .. } = r.mapping;
        let image = r.loc.image;
        EventRow {
            ts_ns: r.ts_ns,
            pid: r.pid,
            tid: r.tid,
            cpu: u32::from(event.cpu),
            comm: self.comm(r.comm),
            kind: r.kind.name(),
            address: event.addr,
            page: r.loc.page,
            file_offset: (event.vma.file_backed != 0)
                .then(|| file_offset(event.addr, event.vma.vm_start, event.vma.vm_pgoff)),
            mapping: self.mapping(map, names),
            mapping_start: event.vma.vm_start,
            mapping_end: event.vma.vm_end,
            anon: event.vma.file_backed == 0,
            image: image.map(|key| self.image(key, names)),
            section: image.map(|key| self.section(key, r.loc.section, names)),
            symbol: image
                .zip(r.loc.symbol)
                .map(|(key, i)| self.symbol(key, i, names)),
            writer: self.text(r.instruction, names),
            writer_function: self.text(r.writer, names),
            writer_ip: event.ip,
            latency_ns: r.latency_ns,
            stack: match r.stack {
                StackKey::Stack(id) => Some(self.text(id, names)),
                StackKey::Missing => Some("[no stack]".into()),
                StackKey::NotRecorded => None,
            },
        }
    }
}
