//! Identities of where a fault landed and which code wrote it: small
//! integers, no strings, so resolving and aggregating an event allocates
//! nothing once its rows exist. Text is made from them only at the edge,
//! through [`crate::names::Names`].
pub use cowprof_common::{event::COMM_LEN, FileKey, Kind};

use crate::counts::KindCounts;

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
    /// The write's offset in its page.
    pub offset: u16,
    /// The writing function (the writer view's key).
    pub writer: TextId,
    /// The writing instruction, with `file:line` where known.
    pub instruction: TextId,
    pub stack: StackKey,
}

/// Faults that share every key the state groups by, fed to it at once:
/// one fault of a recording ([`Faults::one`]), or a group of a profile's
/// events. What is not a key is the value of the group's earliest fault.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub pid: u32,
    /// Whether the faults are the process's main thread's (tid == pid),
    /// whose name is the process's.
    pub main_thread: bool,
    pub comm: [u8; COMM_LEN],
    pub counts: KindCounts,
    /// The earliest and latest fault's `ts_ns`.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Sum of the faults' latencies, in ns.
    pub latency_ns: u64,
    pub mapping: MappingKey,
    pub loc: Loc,
    /// The writes' offset in their page.
    pub offset: u16,
    pub writer: TextId,
    /// The earliest fault's writing instruction.
    pub instruction: TextId,
    pub stack: StackKey,
}

impl Faults {
    /// The one fault `event`.
    #[must_use]
    pub fn one(event: &Resolved) -> Self {
        let mut counts = KindCounts::default();
        counts.add(event.kind);
        Self {
            pid: event.pid,
            main_thread: event.tid == event.pid,
            comm: event.comm,
            counts,
            first_ns: event.ts_ns,
            last_ns: event.ts_ns,
            latency_ns: event.latency_ns,
            mapping: event.mapping,
            loc: event.loc,
            offset: event.offset,
            writer: event.writer,
            instruction: event.instruction,
            stack: event.stack,
        }
    }
}

/// A task's `comm` (or any NUL-padded kernel name) up to its NUL.
#[must_use]
pub fn comm_bytes(comm: &[u8]) -> &[u8] {
    let end = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
    &comm[..end]
}

/// A task's `comm` (or any NUL-padded kernel name) as text.
#[must_use]
pub fn comm_str(comm: &[u8]) -> String {
    String::from_utf8_lossy(comm_bytes(comm)).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn comm_stops_at_nul() {
        assert_eq!(super::comm_str(b"sh\0\0junk"), "sh");
        assert_eq!(super::comm_str(b"sixteen-chars-xx"), "sixteen-chars-xx");
    }
}
