//! The live recording's names: what the resolver learned of each file
//! (its path from the kernel, whether the file found there is the mapped
//! one, the image it parsed) and the code it symbolized. Naming never
//! opens a file: images were parsed when their first fault was resolved.
use std::borrow::Cow;

use cowprof_common::FileKey;
use cowprof_model::{keys::TextId, names::Names, waste::Layout};

use super::{elf::Image, Resolver, PAGE};

impl Names for Resolver {
    /// A file's path, marked when the file found there is not the mapped
    /// one, or when it was refused as an image (and why).
    fn path(&self, key: &FileKey) -> Cow<'_, str> {
        let files = self.files();
        let path = files.path(key);
        Cow::Owned(if files.unverified(key) {
            format!("{path} [unverified]")
        } else if let Some(why) = files.not_attributed(key) {
            format!("{path} [not attributed: {why}]")
        } else {
            path
        })
    }

    fn anon_name(&self, key: &FileKey) -> Cow<'_, str> {
        Cow::Owned(self.files().path(key))
    }

    fn section_name(&self, image: &FileKey, index: u32) -> Option<&str> {
        let image = self.files().opened_image(image)?;
        Some(image.sections.get(index as usize)?.name.as_str())
    }

    fn symbol_name(&self, image: &FileKey, index: u32) -> Option<&str> {
        let image = self.files().opened_image(image)?;
        Some(image.data.get(index as usize)?.name.as_str())
    }

    fn text(&self, id: TextId) -> &str {
        self.texts.get(id)
    }

    fn layout(&self, image: &FileKey) -> Option<Cow<'_, Layout>> {
        self.files()
            .opened_image(image)
            .map(|i| Cow::Owned(layout(i)))
    }
}

/// The writable pages of `image` with the section each overlaps first,
/// and its data symbols in writable segments.
fn layout(image: &Image) -> Layout {
    let index = |i: usize| u32::try_from(i).ok();
    let pages = image
        .writable_pages()
        .map(|page| {
            let section = image
                .sections
                .iter()
                .position(|s| {
                    s.addr < page.saturating_add(PAGE) && page < s.addr.saturating_add(s.size)
                })
                .and_then(index);
            (page, section)
        })
        .collect();
    let writable = |addr: u64| {
        image
            .segments
            .iter()
            .any(|s| s.writable && (s.vaddr..s.vaddr.saturating_add(s.mem_size)).contains(&addr))
    };
    let symbols = image
        .data
        .iter()
        .enumerate()
        .filter(|(_, s)| s.size > 0 && writable(s.addr))
        .filter_map(|(i, s)| Some((index(i)?, s.addr, s.size)))
        .collect();
    Layout { pages, symbols }
}
