//! Ordering files that pack an image's written data together, one format
//! per linker (`docs/advisor.md` says how to use each, and their limits).
use std::fmt::Write as _;

use super::plan::Hot;

/// The linker an ordering file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Linker {
    /// lld's `--symbol-ordering-file`: symbol names.
    Lld,
    /// gold's `--section-ordering-file`: input-section names
    /// (`-fdata-sections`).
    Gnu,
    /// GNU ld (bfd) 2.43 and later, `--section-ordering-file`: a linker
    /// script fragment of input-section names.
    Bfd,
}

impl Linker {
    /// Where this linker puts the sections its ordering file lists. GNU
    /// ld's fragment was not checked (bookworm's 2.40 predates it): lld's
    /// placement is assumed.
    #[must_use]
    pub fn placement(self) -> super::plan::Placement {
        match self {
            Self::Lld | Self::Bfd => super::plan::Placement::ListedFirst,
            Self::Gnu => super::plan::Placement::ListedLast,
        }
    }
}

/// The input sections `-fdata-sections` gives a symbol of `section`.
fn input_sections(section: &str, raw: &str) -> Vec<String> {
    if section == ".bss" {
        vec![format!(".bss.{raw}")]
    } else {
        vec![
            format!(".data.{raw}"),
            format!(".data.rel.local.{raw}"),
            format!(".data.rel.{raw}"),
        ]
    }
}

/// The ordering file for `linker`, listing `hot`'s orderable symbols in
/// order.
#[must_use]
pub fn render(linker: Linker, image: &str, hot: &[Hot]) -> String {
    let ordered: Vec<&Hot> = hot.iter().filter(|h| h.unorderable.is_none()).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# cowprof advise: the written data of {image}, hottest first ({} symbols).",
        ordered.len()
    );
    let _ = writeln!(
        out,
        "# Compile with -fdata-sections -fno-common, then link with"
    );
    match linker {
        Linker::Lld => {
            let _ = writeln!(out, "#   -fuse-ld=lld -Wl,--symbol-ordering-file=THIS_FILE");
            for h in &ordered {
                let _ = writeln!(out, "{}", h.raw);
            }
        }
        Linker::Gnu => {
            let _ = writeln!(
                out,
                "#   -fuse-ld=gold -Wl,--section-ordering-file=THIS_FILE"
            );
            for h in &ordered {
                for name in input_sections(&h.section, &h.raw) {
                    let _ = writeln!(out, "{name}");
                }
            }
        }
        Linker::Bfd => {
            let _ = writeln!(
                out,
                "#   -Wl,--section-ordering-file=THIS_FILE (GNU ld 2.43 or later)"
            );
            for section in super::plan::ORDERED_SECTIONS {
                let names: Vec<String> = ordered
                    .iter()
                    .filter(|h| h.section == section)
                    .flat_map(|h| input_sections(&h.section, &h.raw))
                    .collect();
                if names.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "{section} : {{");
                for name in names {
                    let _ = writeln!(out, "    *({name})");
                }
                let _ = writeln!(out, "}}");
            }
        }
    }
    out
}
