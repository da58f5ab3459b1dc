//! Identities of where a fault landed and which code wrote it: small
//! integers, no strings, so resolving and aggregating an event allocates
//! nothing once its rows exist. Names come later, from `report::naming`.
use cowprof_common::{event::COMM_LEN, FileKey, Kind};

/// A mapping, by identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKey {
    File(FileKey),
    Heap,
    Stack,
    /// A `PR_SET_VMA_ANON_NAME` mapping; the key names its name record.
    Named(FileKey),
    Anon,
}

/// A row of the mapping view: file mappings are one row per file, anon
/// mappings are told apart by range and process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappingKey {
    pub map: MapKey,
    pub start: u64,
    pub end: u64,
    pub pid: u32,
}

/// Where in an image (or mapping) a fault wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The image (an ELF file whose identity was verified) when the
    /// mapping is one.
    pub image: Option<FileKey>,
    /// Indices into the image's sections and data symbols, when known.
    pub section: Option<u32>,
    pub symbol: Option<u32>,
    /// The page: its virtual address in the image for image pages, else its
    /// address in the process (or its file offset in a file that is not a
    /// verified ELF image).
    pub page: u64,
}

/// An interned text (a writer or a stack), named by the resolver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextId(pub u32);

/// A fault's user stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackKey {
    /// `--stacks` was not asked for.
    NotRecorded,
    /// Asked for, but the kernel could not take it (counted there).
    Missing,
    Stack(TextId),
}

/// One fault, resolved to identities.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    pub pid: u32,
    pub tid: u32,
    pub comm: [u8; COMM_LEN],
    pub kind: Kind,
    pub ts_ns: u64,
    pub latency_ns: u64,
    pub mapping: MappingKey,
    pub loc: Loc,
    /// The writing function (the writer view's key).
    pub writer: TextId,
    /// The writing instruction, with `file:line` where known.
    pub instruction: TextId,
    pub stack: StackKey,
}
