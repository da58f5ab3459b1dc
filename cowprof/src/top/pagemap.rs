//! The page map of one image: every writable page, untouched, written or
//! hot, grouped by section. Pure data: the renderer lays it out.
use crate::report::{PageRow, Report};

/// What a page's cell shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Never written: wasted while the image stays mapped.
    Untouched,
    Written,
    /// Among the most faulted pages of the image (see [`PageMap::hot`]).
    Hot,
}

/// A run of pages of one section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Index of its first page in [`PageMap::pages`].
    pub first: usize,
    pub len: usize,
    pub written: usize,
    pub hot: usize,
}

/// An image's writable pages in address order.
#[derive(Clone, Debug, Default)]
pub struct PageMap<'a> {
    pub image: String,
    pub pages: Vec<&'a PageRow>,
    pub sections: Vec<Section>,
    /// Pages with at least this many faults are hot: the top tenth of the
    /// written pages by faults, and never fewer than two faults.
    pub hot: u64,
}

impl<'a> PageMap<'a> {
    /// The page map of `image` in `report` (empty when it has no touch map).
    #[must_use]
    pub fn build(report: &'a Report, image: &str) -> Self {
        let mut pages: Vec<&PageRow> = report.pages.iter().filter(|p| p.image == image).collect();
        pages.sort_by_key(|p| p.page);
        let mut faults: Vec<u64> = pages
            .iter()
            .filter(|p| p.written)
            .map(|p| p.faults)
            .collect();
        let hot = if faults.is_empty() {
            u64::MAX
        } else {
            let at = (faults.len() * 9).div_ceil(10).min(faults.len() - 1);
            let (_, nth, _) = faults.select_nth_unstable(at);
            (*nth).max(2)
        };
        let mut map = Self {
            image: image.to_owned(),
            pages,
            sections: Vec::new(),
            hot,
        };
        for i in 0..map.pages.len() {
            let page = map.pages[i];
            let state = map.state(i);
            let written = usize::from(state != CellState::Untouched);
            let hot = usize::from(state == CellState::Hot);
            match map.sections.last_mut() {
                Some(section) if section.name == page.section => {
                    section.len += 1;
                    section.written += written;
                    section.hot += hot;
                }
                _ => map.sections.push(Section {
                    name: page.section.clone(),
                    first: i,
                    len: 1,
                    written,
                    hot,
                }),
            }
        }
        map
    }

    /// The state of page `i`.
    #[must_use]
    pub fn state(&self, i: usize) -> CellState {
        match self.pages.get(i) {
            Some(p) if p.written && p.faults >= self.hot => CellState::Hot,
            Some(p) if p.written => CellState::Written,
            _ => CellState::Untouched,
        }
    }

    /// Where the page at address `page` is.
    #[must_use]
    pub fn position(&self, page: u64) -> Option<usize> {
        self.pages.binary_search_by_key(&page, |p| p.page).ok()
    }

    /// The line (0-based) that page `i` is drawn on, with `cols` cells a
    /// line and one heading line per section.
    #[must_use]
    pub fn line_of(&self, i: usize, cols: usize) -> usize {
        let cols = cols.max(1);
        let mut line = 0;
        for s in &self.sections {
            if i < s.first + s.len {
                return line + 1 + (i - s.first) / cols;
            }
            line += 1 + s.len.div_ceil(cols);
        }
        line
    }

    /// Lines the map takes with `cols` cells a line.
    #[must_use]
    pub fn lines(&self, cols: usize) -> usize {
        let cols = cols.max(1);
        self.sections.iter().map(|s| 1 + s.len.div_ceil(cols)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(page: u64, section: &str, faults: u64) -> PageRow {
        PageRow {
            image: "/bin/x".into(),
            page,
            section: section.into(),
            written: faults > 0,
            processes: u32::from(faults > 0),
            faults,
            symbol: String::new(),
            first_writer: String::new(),
        }
    }

    #[test]
    fn pages_group_by_section_and_the_top_tenth_is_hot() {
        let mut pages = vec![page(0x1000, ".got", 1)];
        pages.extend((0..10).map(|i| page(0x2000 + i * 0x1000, ".data", i)));
        pages.push(page(0xc000, ".data", 40));
        let report = Report {
            pages,
            ..Report::default()
        };
        let map = PageMap::build(&report, "/bin/x");
        assert_eq!(map.pages.len(), 12);
        assert_eq!(map.sections.len(), 2);
        assert_eq!(map.sections[1].name, ".data");
        assert_eq!(map.sections[1].len, 11);
        assert_eq!(map.sections[1].written, 10, "one page has no fault");
        assert_eq!(map.hot, 40);
        assert_eq!(map.state(11), CellState::Hot);
        assert_eq!(map.state(1), CellState::Untouched);
        assert_eq!(map.position(0xc000), Some(11));
        // .got: heading + 1 line; .data: heading + 3 lines of 4.
        assert_eq!(map.lines(4), 6);
        assert_eq!(map.line_of(0, 4), 1);
        assert_eq!(map.line_of(1, 4), 3);
        assert_eq!(map.line_of(11, 4), 5);
    }

    #[test]
    fn an_image_without_pages_is_empty() {
        let report = Report::default();
        let map = PageMap::build(&report, "/bin/none");
        assert!(map.pages.is_empty());
        assert_eq!(map.lines(10), 0);
        assert_eq!(map.state(0), CellState::Untouched);
    }
}
