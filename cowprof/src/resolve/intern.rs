//! Strings stored once, referred to by [`TextId`].
use hashbrown::HashMap;

use cowprof_model::keys::TextId;

/// Interned strings; id 0 is the empty string.
pub struct Interner {
    strings: Vec<String>,
    index: HashMap<String, TextId>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Self {
            strings: Vec::new(),
            index: HashMap::new(),
        };
        interner.intern("");
        interner
    }
}

impl Interner {
    /// The id of `text`, interning it on first sight.
    pub fn intern(&mut self, text: &str) -> TextId {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let id = TextId(u32::try_from(self.strings.len()).unwrap_or(u32::MAX));
        self.strings.push(text.to_owned());
        self.index.insert(text.to_owned(), id);
        id
    }

    /// The text of `id` (empty when unknown).
    #[must_use]
    pub fn get(&self, id: TextId) -> &str {
        self.strings.get(id.0 as usize).map_or("", String::as_str)
    }
}
