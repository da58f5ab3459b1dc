//! The writes to each image a profile saw, from the model: the profile's
//! events fed to a state that keeps each distinct (process, address,
//! writing instruction, whether the page came from the file) once, with
//! the section and symbol the recording named there, so the image on disk
//! can be checked against the recording.
use std::collections::{BTreeMap, BTreeSet};

use cowprof_model::{
    names::Names,
    state::{Keep, SnapshotOptions, State},
};

use super::plan::{written_by_loader, Write};
use crate::profile::{
    dictionary::Dictionary,
    feed::{Cursor, Feed},
    read::Profile,
    scan::Filters,
    ProfileError,
};

/// The writes to one image.
#[derive(Clone, Debug, Default)]
pub struct ImageWrites {
    pub writes: BTreeSet<Write>,
    /// The section and symbol the recording named at each written address.
    pub named: BTreeMap<u64, (String, String)>,
}

/// The writes to each image of `profile` whose path `select` accepts.
/// Shared mappings' write notifications are not copies and are left out.
///
/// # Errors
/// When a part cannot be scanned.
pub fn read(
    profile: &Profile,
    select: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, ImageWrites>, ProfileError> {
    let keep = Keep::only(&[]).with_writes();
    let mut dict = Dictionary::default();
    let feed = Feed::open(profile, &Filters::default(), keep, &mut dict)?.without_exits();
    let mut state = State::new(keep);
    feed.feed(&mut state, &mut dict, &mut Cursor::default(), feed.events())?;
    let mut images: BTreeMap<String, ImageWrites> = BTreeMap::new();
    for image in state.snapshot(SnapshotOptions::default()).writes {
        let path = dict.path(&image.image).into_owned();
        if !select(&path) {
            continue;
        }
        let entry = images.entry(path).or_default();
        entry.writes.extend(image.writes.iter().map(|w| Write {
            pid: w.pid,
            vaddr: w.vaddr,
            loader: written_by_loader(dict.text(w.instruction)),
            from_file: w.from_file,
        }));
        for (vaddr, (section, symbol)) in &image.named {
            let symbol = symbol.map_or(String::new(), |s| {
                dict.symbol(&image.image, Some(s)).to_owned()
            });
            entry.named.insert(
                *vaddr,
                (dict.section(&image.image, *section).to_owned(), symbol),
            );
        }
    }
    Ok(images)
}
