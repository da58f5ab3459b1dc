//! User stacks (`--stacks`): read from the programs' stack map by id and
//! symbolized with blazesym. A frame is named through the code mappings the
//! kernel reported for that process (each fault carries its writer's
//! mapping), so stacks of processes that are already gone still resolve
//! where those mappings cover them; otherwise through the live process.
use aya::maps::{MapData, StackTraceMap};
use cowprof_common::{FileKey, VmaInfo};
use hashbrown::HashMap;

use super::{
    files::{Files, Hint},
    symbols::Symbols,
    writers::file_offset,
};

/// Resolves stack ids to `frame;frame;...` strings, innermost first.
pub struct StackResolver {
    map: StackTraceMap<MapData>,
    /// Code mappings seen per process.
    code: HashMap<u32, Vec<VmaInfo>>,
}

impl StackResolver {
    #[must_use]
    pub fn new(map: StackTraceMap<MapData>) -> Self {
        Self {
            map,
            code: HashMap::new(),
        }
    }

    /// Remembers a code mapping of `pid` (a fault's writer mapping).
    pub fn note_code(&mut self, pid: u32, code: &VmaInfo) {
        if code.vm_start == 0 || code.file_backed == 0 {
            return;
        }
        let maps = self.code.entry(pid).or_default();
        if !maps.iter().any(|m| m.vm_start == code.vm_start) {
            maps.push(*code);
        }
    }

    /// Forgets the code mappings of an exited process.
    pub fn forget_process(&mut self, pid: u32) {
        self.code.remove(&pid);
    }

    /// The stack `id` of a fault in `pid`, and whether every frame was
    /// named.
    pub fn resolve(
        &mut self,
        id: u32,
        pid: u32,
        files: &mut Files,
        symbols: &Symbols,
    ) -> (String, bool) {
        let Ok(trace) = self.map.get(&id, 0) else {
            return ("[stack lost]".to_owned(), false);
        };
        let ips: Vec<u64> = trace.frames().iter().map(|f| f.ip).collect();
        let maps = self.code.get(&pid).map_or(&[][..], Vec::as_slice);
        let live = symbols.live_names(pid, &ips);
        let mut complete = true;
        let frames: Vec<String> = ips
            .iter()
            .zip(live)
            .map(|(ip, live)| {
                let known = maps
                    .iter()
                    .find(|m| (m.vm_start..m.vm_end).contains(ip))
                    .and_then(|m| {
                        let key = FileKey::new(m.ino, m.dev);
                        let hint = Hint {
                            pid,
                            start: m.vm_start,
                            end: m.vm_end,
                        };
                        let source = files.source(&key, Some(hint))?;
                        symbols.function_at(&source, file_offset(*ip, m.vm_start, m.vm_pgoff))
                    });
                known.or(live).unwrap_or_else(|| {
                    complete = false;
                    format!("{ip:#x}")
                })
            })
            .collect();
        (frames.join(";"), complete)
    }
}
