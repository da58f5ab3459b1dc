//! Which writable image pages were never written: each image's touch map
//! against its layout, summed per image, section and data symbol, and per
//! process, and the touch map page by page.
use std::collections::BTreeMap;

use cowprof_common::FileKey;
use serde::Serialize;

use crate::{keys::TextId, state::TouchedPage, PAGE};

/// What an image's waste is measured against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Every page of the writable segments in memory, by virtual address
    /// (`.bss` included), with the section holding it.
    pub pages: Vec<(u64, Option<u32>)>,
    /// The data symbols of the writable segments: (index, address, size),
    /// sizes above 0. Empty when not known (a profile keeps no sizes).
    pub symbols: Vec<(u32, u64, u64)>,
}

/// Writable pages of an image, or of one of its sections or symbols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pages {
    pub writable_pages: u64,
    pub touched_pages: u64,
    pub untouched_pages: u64,
    pub untouched_bytes: u64,
}

impl Pages {
    /// Counts one writable page, written or not.
    pub fn count(&mut self, written: bool) {
        self.writable_pages += 1;
        if written {
            self.touched_pages += 1;
        } else {
            self.untouched_pages += 1;
            self.untouched_bytes += PAGE;
        }
    }
}

/// The waste of one image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageWaste {
    pub image: FileKey,
    pub total: Pages,
    /// Per section, in the order of their first page.
    pub sections: Vec<(Option<u32>, Pages)>,
    /// Per data symbol of the layout, in its order.
    pub symbols: Vec<(u32, Pages)>,
    /// Per process: (pid, pages it touched, writable pages it left
    /// untouched), by pid.
    pub per_process: Vec<(u32, u64, u64)>,
}

/// One writable page of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRow {
    pub image: FileKey,
    /// The page's virtual address in the image.
    pub page: u64,
    pub section: Option<u32>,
    pub written: bool,
    /// Processes that wrote it.
    pub processes: u32,
    /// Faults on it.
    pub faults: u64,
    /// The data symbol first written there.
    pub symbol: Option<u32>,
    /// The code that wrote it first (meaningless when unwritten).
    pub first_writer: TextId,
}

/// The waste of `image`, whose written pages are `touched`, against its
/// `layout`; and its writable pages one by one.
#[must_use]
pub fn of_image(
    image: FileKey,
    touched: &BTreeMap<u64, TouchedPage>,
    layout: &Layout,
) -> (ImageWaste, Vec<PageRow>) {
    let mut total = Pages::default();
    let mut sections: Vec<(Option<u32>, Pages)> = Vec::new();
    let mut pids: BTreeMap<u32, u64> = BTreeMap::new();
    let mut rows = Vec::with_capacity(layout.pages.len());
    for &(page, section) in &layout.pages {
        let hit = touched.get(&page);
        let written = hit.is_some();
        total.count(written);
        if let Some((_, pages)) = sections.iter_mut().find(|(s, _)| *s == section) {
            pages.count(written);
        } else {
            let mut pages = Pages::default();
            pages.count(written);
            sections.push((section, pages));
        }
        rows.push(PageRow {
            image,
            page,
            section,
            written,
            processes: hit.map_or(0, |t| u32::try_from(t.processes()).unwrap_or(u32::MAX)),
            faults: hit.map_or(0, |t| t.faults),
            symbol: hit.and_then(|t| t.symbol),
            first_writer: hit.map(|t| t.first_writer).unwrap_or_default(),
        });
        for pid in hit.into_iter().flat_map(|t| &t.pids) {
            *pids.entry(*pid).or_default() += 1;
        }
    }
    let per_process = pids
        .into_iter()
        .map(|(pid, n)| (pid, n, total.writable_pages.saturating_sub(n)))
        .collect();
    let symbols = layout
        .symbols
        .iter()
        .map(|&(index, addr, size)| {
            let first = addr & !(PAGE - 1);
            let last = addr.saturating_add(size.saturating_sub(1)) & !(PAGE - 1);
            let mut pages = Pages::default();
            for page in (first..=last).step_by(4096) {
                pages.count(touched.contains_key(&page));
            }
            (index, pages)
        })
        .collect();
    let waste = ImageWaste {
        image,
        total,
        sections,
        symbols,
        per_process,
    };
    (waste, rows)
}
