//! A profile's names, read back: every text the recording stored (paths,
//! anonymous mapping names, sections, symbols, writers, stacks) interned
//! once into the model's typed keys, so the model aggregates a profile as
//! it aggregates a recording, and names its rows with the same texts.
//!
//! Files are keyed by their stored path (a profile keeps no device or
//! inode); sections and symbols by their name's id. Profiles read into one
//! dictionary share their keys, so they are compared by key.
use std::{borrow::Cow, sync::Arc};

use cowprof_common::{event::COMM_LEN, FileKey};
use cowprof_model::{
    keys::{MapKey, StackKey, TextId},
    names::Names,
    waste::Layout,
};
use hashbrown::HashMap;

/// The device number of files named by a profile: no real device's.
const PROFILE_DEV: u32 = u32::MAX;

/// What a stack column holds when the kernel could not take the stack.
const NO_STACK: &str = "[no stack]";

/// The texts of one or more profiles, interned; id 0 is the empty text
/// (what an absent writer names).
#[derive(Debug)]
pub struct Dictionary {
    texts: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
    layouts: HashMap<FileKey, Layout>,
}

impl Default for Dictionary {
    fn default() -> Self {
        let mut dict = Self {
            texts: Vec::new(),
            index: HashMap::new(),
            layouts: HashMap::new(),
        };
        dict.intern("");
        dict
    }
}

impl Dictionary {
    /// The id of `text`, interned on first sight.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(id) = self.index.get(text) {
            return *id;
        }
        let id = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        let text: Arc<str> = text.into();
        self.texts.push(Arc::clone(&text));
        self.index.insert(text, id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", |t| t)
    }

    /// The key of the file stored as `path`.
    pub fn file(&mut self, path: &str) -> FileKey {
        FileKey::new(u64::from(self.intern(path)), PROFILE_DEV)
    }

    /// An interned writer or stack.
    pub fn text_id(&mut self, text: &str) -> TextId {
        TextId(self.intern(text))
    }

    /// The mapping stored as `name`, anonymous or not.
    pub fn map(&mut self, name: &str, anon: bool) -> MapKey {
        match (anon, name) {
            (false, _) => MapKey::File(self.file(name)),
            (true, "[heap]") => MapKey::Heap,
            (true, "[stack]") => MapKey::Stack,
            (true, "[anon]") => MapKey::Anon,
            (true, _) => MapKey::Named(self.file(name)),
        }
    }

    /// A section as stored: `?` (no section covers the page) is none.
    pub fn section_id(&mut self, name: Option<&str>) -> Option<u32> {
        name.filter(|n| *n != "?").map(|n| self.intern(n))
    }

    /// A data symbol as stored (none when null).
    pub fn symbol_id(&mut self, name: Option<&str>) -> Option<u32> {
        name.map(|n| self.intern(n))
    }

    /// A stack as stored: null when stacks were not recorded.
    pub fn stack_key(&mut self, stack: Option<&str>) -> StackKey {
        match stack {
            None => StackKey::NotRecorded,
            Some(NO_STACK) => StackKey::Missing,
            Some(text) => StackKey::Stack(self.text_id(text)),
        }
    }

    /// Sets the writable pages of `image` (from `pages.parquet`).
    pub fn set_layout(&mut self, image: FileKey, layout: Layout) {
        self.layouts.insert(image, layout);
    }

    /// Adds writable page `page`, in `section`, to the layout of `image`.
    pub fn add_page(&mut self, image: FileKey, page: u64, section: Option<u32>) {
        self.layouts
            .entry(image)
            .or_default()
            .pages
            .push((page, section));
    }
}

/// A comm as stored, back in the kernel's form.
#[must_use]
pub fn comm(text: &str) -> [u8; COMM_LEN] {
    let mut comm = [0; COMM_LEN];
    let bytes = text.as_bytes();
    let n = bytes.len().min(COMM_LEN);
    comm[..n].copy_from_slice(&bytes[..n]);
    comm
}

impl Names for Dictionary {
    fn path(&self, key: &FileKey) -> Cow<'_, str> {
        Cow::Borrowed(self.get(u32::try_from(key.ino).unwrap_or(u32::MAX)))
    }

    fn anon_name(&self, key: &FileKey) -> Cow<'_, str> {
        self.path(key)
    }

    fn section_name(&self, _image: &FileKey, index: u32) -> Option<&str> {
        Some(self.get(index))
    }

    fn symbol_name(&self, _image: &FileKey, index: u32) -> Option<&str> {
        Some(self.get(index))
    }

    fn text(&self, id: TextId) -> &str {
        self.get(id.0)
    }

    fn layout(&self, image: &FileKey) -> Option<Cow<'_, Layout>> {
        self.layouts.get(image).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_texts_come_back_as_keys_and_names() {
        let mut d = Dictionary::default();
        let libc = d.map("/usr/lib/libc.so.6", false);
        assert_eq!(libc, d.map("/usr/lib/libc.so.6", false), "one key a path");
        assert_eq!(d.mapping(&libc), "/usr/lib/libc.so.6");
        assert_eq!(d.map("[heap]", true), MapKey::Heap);
        let named = d.map("[anon:jit]", true);
        assert_eq!(d.mapping(&named), "[anon:jit]");
        assert_eq!(d.section_id(Some("?")), None);
        let data = d.section_id(Some(".data"));
        let MapKey::File(image) = libc else {
            panic!("a file")
        };
        assert_eq!(d.section(&image, data), ".data");
        assert_eq!(d.section(&image, None), "?");
        assert_eq!(d.stack_key(None), StackKey::NotRecorded);
        assert_eq!(d.stack_key(Some("[no stack]")), StackKey::Missing);
        assert_eq!(comm("sh"), *b"sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    }
}
