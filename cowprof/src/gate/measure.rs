//! The gate's metrics, measured from a profile's events by the model:
//! faults per kind, copied bytes, and pages copied per process name,
//! image, section and (optionally) data symbol, each with its top
//! contributors. No key holds a pid, an address or a time; image paths go
//! through `--path-map`.
use std::collections::BTreeMap;

use cowprof_common::{FileKey, Kind};
use cowprof_model::{
    keys::comm_str,
    names::Names,
    state::{Keep, KindCounts, SnapshotOptions, State},
    views::Facet,
};

use crate::profile::{
    dictionary::Dictionary,
    feed::{Cursor, Feed},
    read::Profile,
    scan::Filters,
    ProfileError,
};

/// One attribution of a metric's value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contributor {
    /// `writer`, `symbol`, `section` or `stack`.
    pub dimension: String,
    pub key: String,
    pub value: u64,
}

/// Contributors kept per metric and dimension.
pub const CONTRIBUTORS: usize = 5;

/// What to measure.
#[derive(Clone, Debug, Default)]
pub struct MeasureOptions {
    /// Image path prefixes rewritten, in order (`--path-map FROM=TO`).
    pub path_map: Vec<(String, String)>,
    /// Also gate per data symbol.
    pub symbols: bool,
    /// Leave out the events of processes with this name: cowprof's own,
    /// whose forked child runs cowprof's code until it execs the command
    /// (a few faults, in some runs and not others).
    pub exclude_comm: Option<String>,
}

/// cowprof's own process name.
#[must_use]
pub fn own_comm() -> Option<String> {
    std::fs::read_to_string("/proc/self/comm")
        .ok()
        .map(|c| c.trim_end().to_owned())
        .filter(|c| !c.is_empty())
}

/// One run's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    pub metrics: BTreeMap<String, u64>,
    /// Per metric, the top contributors of each dimension.
    pub contributors: BTreeMap<String, Vec<Contributor>>,
}

/// Attribution dimensions, in the order contributors are listed.
const DIMENSIONS: [&str; 4] = ["writer", "section", "symbol", "stack"];

impl MeasureOptions {
    /// `image` with the first matching path prefix rewritten.
    #[must_use]
    pub fn map_path(&self, image: &str) -> String {
        for (from, to) in &self.path_map {
            if let Some(rest) = image.strip_prefix(from.as_str()) {
                return format!("{to}{rest}");
            }
        }
        image.to_owned()
    }

    /// The metrics of `family` with their values among `counts`: the
    /// faults of each kind for every fault, copies for the others (the
    /// symbol family only when gated per symbol).
    fn metrics(&self, family: Facet, counts: &KindCounts, names: &dyn Names) -> Vec<(String, u64)> {
        let path = |image: &FileKey| self.map_path(&names.path(image));
        let copies = counts.copies();
        match family {
            Facet::All => Kind::ALL
                .iter()
                .map(|k| (format!("kind/{}", k.name()), counts.get(*k)))
                .collect(),
            Facet::Comm(comm) => vec![(format!("process/{}", comm_str(&comm)), copies)],
            Facet::Image(image) => vec![(format!("image/{}", path(&image)), copies)],
            Facet::Section(image, section) => vec![(
                format!(
                    "section/{} {}",
                    path(&image),
                    names.section(&image, section)
                ),
                copies,
            )],
            Facet::Symbol(image, section, symbol) if self.symbols => vec![(
                format!(
                    "symbol/{} {} {}",
                    path(&image),
                    names.section(&image, section),
                    names.symbol(&image, Some(symbol))
                ),
                copies,
            )],
            _ => Vec::new(),
        }
    }

    /// A dimension's name and key, none for a writer without a name.
    fn contributor(&self, dimension: Facet, names: &dyn Names) -> Option<(&'static str, String)> {
        let path = |image: &FileKey| self.map_path(&names.path(image));
        Some(match dimension {
            Facet::Writer(id) => match names.text(id) {
                "" => return None,
                text => ("writer", text.to_owned()),
            },
            Facet::Section(image, section) => (
                "section",
                format!("{} {}", path(&image), names.section(&image, section)),
            ),
            Facet::ImageSymbol(image, symbol) => (
                "symbol",
                format!("{} {}", path(&image), names.symbol(&image, Some(symbol))),
            ),
            Facet::Stack(stack) => ("stack", names.stack(&stack).to_owned()),
            _ => return None,
        })
    }
}

/// Measures `profile`: its events (but cowprof's own) fed to the model,
/// which keeps every fault per family and dimension.
///
/// # Errors
/// When its files cannot be scanned.
pub fn measure(profile: &Profile, options: &MeasureOptions) -> Result<Measurement, ProfileError> {
    let mut out = Measurement::default();
    for kind in Kind::ALL {
        out.metrics.insert(format!("kind/{}", kind.name()), 0);
    }
    let filters = Filters {
        not_comm: options.exclude_comm.clone(),
        ..Filters::default()
    };
    let keep = Keep::only(&[]).with_crosses();
    let mut dict = Dictionary::default();
    // Every process keeps its name: the gate counts per name, and folds
    // no exited ones.
    let feed = Feed::open(profile, &filters, keep, &mut dict)?.without_exits();
    let mut state = State::new(keep);
    feed.feed(&mut state, &mut dict, &mut Cursor::default(), feed.events())?;
    let snapshot = state.snapshot(SnapshotOptions::default());
    let mut contributions: BTreeMap<String, BTreeMap<(&str, String), u64>> = BTreeMap::new();
    for ((family, dimension), counts) in &snapshot.crosses {
        let metrics = options.metrics(*family, counts, &dict);
        if *dimension == Facet::All {
            for (name, n) in metrics {
                if n > 0 {
                    *out.metrics.entry(name).or_default() += n;
                }
            }
            continue;
        }
        let Some(contributor) = options.contributor(*dimension, &dict) else {
            continue;
        };
        let mut add = |metric: String, n: u64| {
            if n > 0 {
                *contributions
                    .entry(metric)
                    .or_default()
                    .entry((contributor.0, contributor.1.clone()))
                    .or_default() += n;
            }
        };
        if *family == Facet::All {
            add(
                "copied_bytes".to_owned(),
                counts.copies() * crate::resolve::PAGE,
            );
        }
        for (metric, n) in metrics {
            add(metric, n);
        }
    }
    let copies: u64 = Kind::ALL
        .iter()
        .filter(|k| k.is_copy())
        .map(|k| {
            out.metrics
                .get(&format!("kind/{}", k.name()))
                .copied()
                .unwrap_or(0)
        })
        .sum();
    out.metrics
        .insert("copied_bytes".to_owned(), copies * crate::resolve::PAGE);
    for (metric, by) in contributions {
        out.contributors.insert(metric, top_contributors(&by));
    }
    Ok(out)
}

/// The top contributors of each dimension, largest first.
fn top_contributors(by: &BTreeMap<(&str, String), u64>) -> Vec<Contributor> {
    let mut list: Vec<Contributor> = Vec::new();
    for dimension in DIMENSIONS {
        let mut of: Vec<Contributor> = by
            .iter()
            .filter(|((d, _), _)| *d == dimension)
            .map(|((d, key), value)| Contributor {
                dimension: (*d).to_owned(),
                key: key.clone(),
                value: *value,
            })
            .collect();
        of.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.key.cmp(&b.key)));
        of.truncate(CONTRIBUTORS);
        list.extend(of);
    }
    list
}

/// The median of each metric over `runs` (a metric missing from a run
/// counts 0 there), with its min and max, and the contributors of the
/// run closest to the median of copied bytes.
#[must_use]
pub fn median(runs: &[Measurement]) -> (Measurement, BTreeMap<String, (u64, u64)>) {
    let names: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let mut out = Measurement::default();
    let mut spread = BTreeMap::new();
    for name in names {
        let mut values: Vec<u64> = runs
            .iter()
            .map(|r| r.metrics.get(name).copied().unwrap_or(0))
            .collect();
        values.sort_unstable();
        out.metrics.insert(name.clone(), values[values.len() / 2]);
        spread.insert(name.clone(), (values[0], values[values.len() - 1]));
    }
    let bytes = out.metrics.get("copied_bytes").copied().unwrap_or(0);
    if let Some(closest) = runs.iter().min_by_key(|r| {
        r.metrics
            .get("copied_bytes")
            .copied()
            .unwrap_or(0)
            .abs_diff(bytes)
    }) {
        out.contributors.clone_from(&closest.contributors);
    }
    (out, spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_mapped_by_the_first_matching_prefix() {
        let options = MeasureOptions {
            path_map: vec![
                ("/build/1234/".into(), "BUILD/".into()),
                ("/usr/lib/x86_64-linux-gnu/".into(), "LIB/".into()),
            ],
            symbols: false,
            exclude_comm: None,
        };
        assert_eq!(options.map_path("/build/1234/bin/app"), "BUILD/bin/app");
        let mut names = Dictionary::default();
        let libc = names.file("/usr/lib/x86_64-linux-gnu/libc.so.6");
        let data = names.section_id(Some(".data"));
        let counts = KindCounts::from_array([2, 1, 0, 0, 5, 0]);
        assert_eq!(
            options.metrics(Facet::Section(libc, data), &counts, &names),
            [("section/LIB/libc.so.6 .data".to_owned(), 3)],
            "copies, by the mapped path"
        );
        let symbol = names.intern("environ");
        assert!(
            options
                .metrics(Facet::Symbol(libc, data, symbol), &counts, &names)
                .is_empty(),
            "symbols only when asked for"
        );
        let comm = crate::profile::dictionary::comm("redis-server");
        assert_eq!(
            options.metrics(Facet::Comm(comm), &counts, &names),
            [("process/redis-server".to_owned(), 3)]
        );
        let empty = names.text_id("");
        assert_eq!(options.contributor(Facet::Writer(empty), &names), None);
        assert_eq!(
            options.contributor(Facet::ImageSymbol(libc, symbol), &names),
            Some(("symbol", "LIB/libc.so.6 environ".to_owned()))
        );
    }

    #[test]
    fn the_median_run_wins_and_the_spread_is_kept() {
        let run = |n: u64| Measurement {
            metrics: [("copied_bytes".to_owned(), n)].into(),
            contributors: [(
                "copied_bytes".to_owned(),
                vec![Contributor {
                    dimension: "writer".into(),
                    key: format!("w{n}"),
                    value: n,
                }],
            )]
            .into(),
        };
        let (m, spread) = median(&[run(10), run(30), run(20)]);
        assert_eq!(m.metrics["copied_bytes"], 20);
        assert_eq!(spread["copied_bytes"], (10, 30));
        assert_eq!(m.contributors["copied_bytes"][0].key, "w20");
    }
}
