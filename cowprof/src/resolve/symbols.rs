//! Code symbolized with blazesym, and where separate debug files are
//! looked for (`--debug-dir`). The resolver owns one [`Symbols`]; nothing
//! here is process-wide.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use blazesym::symbolize::{
    source::{Elf, Process, Source},
    Input, Symbolized, Symbolizer,
};

/// Where separate debug files are looked for: `--debug-dir`, else
/// `/usr/lib/debug` and `/lib/debug` (gdb's `debug-file-directory`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugDirs(Option<Vec<PathBuf>>);

impl DebugDirs {
    /// `dirs`, or the defaults when there are none.
    #[must_use]
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self((!dirs.is_empty()).then_some(dirs))
    }

    /// The directories, in order.
    #[must_use]
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.0
            .clone()
            .unwrap_or_else(|| vec![PathBuf::from("/usr/lib/debug"), PathBuf::from("/lib/debug")])
    }
}

/// A symbolizer of the collector's own: blazesym's caches what it parsed
/// of each file (it is not `Send`, so it lives on the thread that made
/// it). It follows a stripped file to its debug file by build id
/// (`DIR/.build-id/xx/yyyy.debug`) and `.gnu_debuglink` (next to the file,
/// in its `.debug` directory, and under DIR), as gdb does, and reads
/// zlib-compressed debug sections (Debian's `*-dbg` packages).
pub struct Symbols {
    symbolizer: Symbolizer,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new(&DebugDirs::default())
    }
}

impl Symbols {
    /// Symbols looked for in `debug_dirs` too.
    #[must_use]
    pub fn new(debug_dirs: &DebugDirs) -> Self {
        Self {
            symbolizer: Symbolizer::builder()
                .set_debug_dirs(debug_dirs.0.as_deref())
                .build(),
        }
    }

    /// `function+0xoff`, and ` (file:line)` where debug info has it, for a
    /// file offset in an ELF file.
    #[must_use]
    pub fn symbolize(&self, path: &Path, offset: u64) -> Option<String> {
        let source = Source::Elf(Elf::new(path));
        let symbolized = self
            .symbolizer
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
    }

    /// The function at `offset` in the file at `path`, by name only.
    #[must_use]
    pub fn function_at(&self, path: &Path, offset: u64) -> Option<String> {
        let text = self.symbolize(path, offset)?;
        Some(
            text.split_once('+')
                .map_or(text.as_str(), |(f, _)| f)
                .to_owned(),
        )
    }

    /// Names of `ips` through the live process's mappings, where it still
    /// lives.
    #[must_use]
    pub fn live_names(&self, pid: u32, ips: &[u64]) -> Vec<Option<String>> {
        let source = Source::Process(Process::new(pid.into()));
        self.symbolizer
            .symbolize(&source, Input::AbsAddr(ips))
            .map_or_else(
                |_| vec![None; ips.len()],
                |syms| {
                    syms.into_iter()
                        .map(|sym| match sym {
                            Symbolized::Sym(sym) => Some(sym.name.into_owned()),
                            Symbolized::Unknown(_) => None,
                        })
                        .collect()
                },
            )
    }
}
