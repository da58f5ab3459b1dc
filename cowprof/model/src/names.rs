//! What turns the model's keys into text. Whoever learned the names
//! implements [`Names`]: the live resolver (paths from the kernel, images
//! it parsed, code it symbolized), or a profile's dictionary (the names
//! the recording stored). Text is made only at the edge, when a row is
//! printed, written or shown; every view is computed on keys.
use std::borrow::Cow;

use cowprof_common::FileKey;

use crate::{
    keys::{MapKey, MappingKey, StackKey, TextId},
    state::retire::FOLDED_PID,
    views::RowKey,
    waste::Layout,
};

/// The names of one recording's identities.
pub trait Names {
    /// A file's path as shown (with whatever marks the namer adds: a file
    /// found changed, or refused as an image).
    fn path(&self, key: &FileKey) -> Cow<'_, str>;

    /// The name of an anonymous mapping named by `PR_SET_VMA_ANON_NAME`.
    fn anon_name(&self, key: &FileKey) -> Cow<'_, str>;

    /// Section `index` of `image`, when known.
    fn section_name(&self, image: &FileKey, index: u32) -> Option<&str>;

    /// Data symbol `index` of `image`, when known.
    fn symbol_name(&self, image: &FileKey, index: u32) -> Option<&str>;

    /// An interned writer or stack (empty when unknown).
    fn text(&self, id: TextId) -> &str;

    /// The writable pages and data symbols of `image`, when known.
    fn layout(&self, image: &FileKey) -> Option<Cow<'_, Layout>>;

    /// A mapping's name: its file's path, or `[heap]`, `[stack]`,
    /// `[anon:NAME]` or `[anon]`.
    fn mapping(&self, map: &MapKey) -> Cow<'_, str> {
        match map {
            MapKey::File(key) => self.path(key),
            MapKey::Named(key) => self.anon_name(key),
            MapKey::Heap => Cow::Borrowed("[heap]"),
            MapKey::Stack => Cow::Borrowed("[stack]"),
            MapKey::Anon => Cow::Borrowed("[anon]"),
        }
    }

    /// A section's name, `?` when unknown.
    fn section(&self, image: &FileKey, index: Option<u32>) -> &str {
        index
            .and_then(|i| self.section_name(image, i))
            .unwrap_or("?")
    }

    /// A data symbol's name, `?` when unknown.
    fn symbol(&self, image: &FileKey, index: Option<u32>) -> &str {
        index
            .and_then(|i| self.symbol_name(image, i))
            .unwrap_or("?")
    }

    /// A stack's text, `[no stack]` when the kernel could not take it.
    fn stack(&self, stack: &StackKey) -> &str {
        match stack {
            StackKey::Stack(id) => self.text(*id),
            StackKey::Missing | StackKey::NotRecorded => "[no stack]",
        }
    }

    /// A row's key as text.
    fn row(&self, key: &RowKey) -> String {
        match key {
            RowKey::Mapping(MappingKey {
                map: map @ MapKey::File(_),
                start: 0,
                end: 0,
                pid: 0,
            }) => self.mapping(map).into_owned(),
            RowKey::Mapping(MappingKey {
                map,
                start: 0,
                end: 0,
                pid: FOLDED_PID,
            }) => format!("{} (exited processes)", self.mapping(map)),
            RowKey::Mapping(MappingKey {
                map,
                start,
                end,
                pid,
            }) => format!("{} {start:#x}-{end:#x} pid {pid}", self.mapping(map)),
            RowKey::Writer(id) => self.text(*id).to_owned(),
            RowKey::Stack(stack) => self.stack(stack).to_owned(),
            RowKey::Image(image) => self.path(image).into_owned(),
            RowKey::Section(image, section) => {
                format!("{} {}", self.path(image), self.section(image, *section))
            }
            RowKey::Symbol(image, section, symbol) => format!(
                "{} {} {}",
                self.path(image),
                self.section(image, *section),
                self.symbol(image, *symbol)
            ),
            RowKey::ImagePage(image, section, page) => format!(
                "{} {} {page:#x}",
                self.path(image),
                self.section(image, *section)
            ),
            RowKey::Page(map, page) => format!("{} {page:#x}", self.mapping(map)),
        }
    }

    /// One process's mapping as text: a file's path, an anonymous
    /// mapping's name and range, or the anonymous mappings of the exited
    /// processes folded together.
    fn process_mapping(&self, key: &MappingKey) -> String {
        match key {
            MappingKey {
                map: map @ MapKey::File(_),
                start: 0,
                end: 0,
                ..
            } => self.mapping(map).into_owned(),
            MappingKey {
                map,
                start: 0,
                end: 0,
                ..
            } => format!("{} (exited processes)", self.mapping(map)),
            MappingKey {
                map, start, end, ..
            } => format!("{} {start:#x}-{end:#x}", self.mapping(map)),
        }
    }
}
