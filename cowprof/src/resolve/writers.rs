//! The writing code of a fault: ``image`function+0xoff (file:line)``,
//! symbolized with blazesym once per code location and interned, so an
//! event costs one hash lookup here.
use std::collections::BTreeSet;

use cowprof_common::{event::is_kernel_address, FaultEvent, FileKey};
use cowprof_model::keys::TextId;
use hashbrown::HashMap;

use super::{
    files::{Files, Hint},
    intern::Interner,
    symbols::Symbols,
    PAGE,
};

/// A code location: the file (dev, inode) and offset of the instruction, or
/// its address outside any file.
type CodeKey = (u32, u64, u64);

/// Writers by code location: the instruction's text and its function's.
#[derive(Default)]
pub struct Writers {
    by_code: HashMap<CodeKey, (TextId, TextId)>,
    /// Files whose writers no symbol names: they show as offsets.
    unnamed: BTreeSet<String>,
}

impl Writers {
    /// The interned writing instruction and its function.
    pub fn resolve(
        &mut self,
        event: &FaultEvent,
        files: &mut Files,
        texts: &mut Interner,
        symbols: &Symbols,
    ) -> (TextId, TextId) {
        let code = &event.code;
        let key = (
            code.dev,
            code.ino,
            if code.file_backed == 0 {
                event.ip
            } else {
                file_offset(event.ip, code.vm_start, code.vm_pgoff)
            },
        );
        if let Some(&ids) = self.by_code.get(&key) {
            return ids;
        }
        let (text, unnamed) = writer_text(event, files, symbols);
        if let Some(path) = unnamed {
            self.unnamed.insert(path);
        }
        // The writer view groups by function; rows keep the first
        // instruction (with file:line) as their first writer.
        let function = text.split_once('+').map_or(text.as_str(), |(f, _)| f);
        let ids = (texts.intern(&text), texts.intern(function));
        self.by_code.insert(key, ids);
        ids
    }

    /// The files whose writers show as offsets, for lack of symbols.
    pub fn unnamed(&self) -> impl Iterator<Item = &str> {
        self.unnamed.iter().map(String::as_str)
    }
}

/// The file offset of `addr` in a mapping at `vm_start` of file page
/// `vm_pgoff` (wrapping: bad input gives a bad offset, never a panic).
#[must_use]
pub fn file_offset(addr: u64, vm_start: u64, vm_pgoff: u64) -> u64 {
    addr.wrapping_sub(vm_start)
        .wrapping_add(vm_pgoff.wrapping_mul(PAGE))
}

/// The writing code: ``image`function+0xoff``, or the image and offset
/// when it has no symbols, with the file's path then.
fn writer_text(
    event: &FaultEvent,
    files: &mut Files,
    symbols: &Symbols,
) -> (String, Option<String>) {
    let code = &event.code;
    if is_kernel_address(event.ip) {
        // A kernel-mode fault on user memory: the kernel wrote on the
        // process's behalf (read(2) into a buffer, say).
        return ("[kernel]".to_owned(), None);
    }
    if code.vm_start == 0 {
        return (format!("[unknown] {:#x}", event.ip), None);
    }
    if code.file_backed == 0 {
        return (format!("[anon code] {:#x}", event.ip), None);
    }
    let key = FileKey::new(code.ino, code.dev);
    let path = files.path(&key);
    let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
    let offset = file_offset(event.ip, code.vm_start, code.vm_pgoff);
    let hint = Hint {
        pid: event.pid,
        start: code.vm_start,
        end: code.vm_end,
    };
    let offsets = format!("{name}+{offset:#x}");
    // Only a file that was read and had no symbol there lacks debug
    // information; one that could not be verified keeps its offsets for
    // that reason, named elsewhere.
    match files.source(&key, Some(hint)) {
        Some(source) => match symbols.symbolize(&source, offset) {
            Some(f) => (format!("{name}`{f}"), None),
            None => (offsets, Some(path)),
        },
        None => (offsets, None),
    }
}
