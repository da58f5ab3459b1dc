//! Sections of the README that tasks generate (the kernel support table,
//! the benchmark results), between marker comments.
use std::path::Path;

use anyhow::Result;

use crate::cache;

/// Replaces the README's text between `begin` and `end` with `content`.
/// A README without the markers is left alone, with a note.
pub fn replace_section(begin: &str, end: &str, content: &str) -> Result<()> {
    replace_in(&cache::workspace().join("README.md"), begin, end, content)
}

fn replace_in(readme: &Path, begin: &str, end: &str, content: &str) -> Result<()> {
    let text = std::fs::read_to_string(readme)?;
    let Some(stop) = text
        .find(begin)
        .and_then(|start| text[start..].find(end).map(|at| start + at))
    else {
        eprintln!("xtask: README has no {begin} marker; not updated");
        return Ok(());
    };
    let start = text.find(begin).unwrap_or(0);
    let updated = format!("{}{begin}\n{content}{}", &text[..start], &text[stop..]);
    if updated != text {
        std::fs::write(readme, updated)?;
    }
    Ok(())
}
