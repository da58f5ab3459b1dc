//! The gate's metrics, measured from a profile's events: faults per kind,
//! copied bytes, and pages copied per process name, image, section and
//! (optionally) data symbol, each with its top contributors. No key holds
//! a pid, an address or a time; image paths go through `--path-map`.
use std::collections::BTreeMap;

use cowprof_common::Kind;
use polars::prelude::{col, lit, Expr};

use super::baseline::Contributor;
use crate::profile::{
    merge::{each_part, number, text},
    offline::{polars_error, Filters},
    read::Profile,
    ProfileError,
};

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

/// A family of metrics: its name, the event columns that key it, and
/// whether it counts copies only (else every fault, per kind).
struct Family {
    name: &'static str,
    keys: &'static [&'static str],
    copies_only: bool,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "kind",
        keys: &["kind"],
        copies_only: false,
    },
    Family {
        name: "process",
        keys: &["comm"],
        copies_only: true,
    },
    Family {
        name: "image",
        keys: &["image"],
        copies_only: true,
    },
    Family {
        name: "section",
        keys: &["image", "section"],
        copies_only: true,
    },
    Family {
        name: "symbol",
        keys: &["image", "section", "symbol"],
        copies_only: true,
    },
];

/// Attribution dimensions: a name and the columns that make its key.
const DIMENSIONS: &[(&str, &[&str])] = &[
    ("writer", &["writer_function"]),
    ("section", &["image", "section"]),
    ("symbol", &["image", "symbol"]),
    ("stack", &["stack"]),
];

/// Events that allocated a page.
fn copies() -> Expr {
    Kind::ALL
        .iter()
        .filter(|k| k.is_copy())
        .map(|k| col("kind").eq(lit(k.name())))
        .reduce(Expr::or)
        .expect("some kinds copy")
}

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

    /// The key of a row of `family`'s columns `values` (empty when the row
    /// has no such key: an event outside any image).
    fn key(&self, family: &str, values: &[String]) -> Option<String> {
        if values.iter().any(String::is_empty) && family != "kind" && family != "process" {
            return None;
        }
        let mut parts = values.to_vec();
        if family != "kind" && family != "process" {
            parts[0] = self.map_path(&parts[0]);
        }
        Some(format!("{family}/{}", parts.join(" ")))
    }
}

/// The events of `profile` that pass `only`, grouped by `columns`, with
/// their counts, merged part by part.
fn grouped(
    profile: &Profile,
    only: Option<&Expr>,
    columns: &[&str],
) -> polars::prelude::PolarsResult<Vec<(Vec<String>, u64)>> {
    let keys: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
    let mut groups: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    each_part(
        profile,
        &Filters::default(),
        |lf| {
            let lf = match only {
                Some(only) => lf.filter(only.clone()),
                None => lf,
            };
            lf.group_by(keys.clone())
                .agg([col("ts_ns").count().alias("n")])
        },
        |df| {
            for i in 0..df.height() {
                let values = columns.iter().map(|c| text(df, c, i)).collect();
                *groups.entry(values).or_default() += number(df, "n", i);
            }
            Ok(())
        },
    )?;
    Ok(groups.into_iter().collect())
}

/// Measures `profile`.
///
/// # Errors
/// When its files cannot be scanned.
pub fn measure(profile: &Profile, options: &MeasureOptions) -> Result<Measurement, ProfileError> {
    let err = |e: polars::prelude::PolarsError| polars_error(profile, &e);
    let mut out = Measurement::default();
    for kind in Kind::ALL {
        out.metrics.insert(format!("kind/{}", kind.name()), 0);
    }
    if profile.parts.is_empty() {
        out.metrics.insert("copied_bytes".to_owned(), 0);
        return Ok(out);
    }
    let others = options
        .exclude_comm
        .as_ref()
        .map(|comm| col("comm").neq(lit(comm.clone())));
    let mut contributions: BTreeMap<String, BTreeMap<(&str, String), u64>> = BTreeMap::new();
    for family in FAMILIES {
        if family.name == "symbol" && !options.symbols {
            continue;
        }
        let only = match (&others, family.copies_only) {
            (Some(others), true) => Some(others.clone().and(copies())),
            (Some(others), false) => Some(others.clone()),
            (None, true) => Some(copies()),
            (None, false) => None,
        };
        for (values, n) in grouped(profile, only.as_ref(), family.keys).map_err(err)? {
            if let Some(key) = options.key(family.name, &values) {
                *out.metrics.entry(key).or_default() += n;
            }
        }
        for (dimension, columns) in DIMENSIONS {
            if *dimension == family.name {
                continue;
            }
            let mut all: Vec<&str> = family.keys.to_vec();
            all.extend(columns.iter().filter(|c| !family.keys.contains(c)));
            for (values, n) in grouped(profile, only.as_ref(), &all).map_err(err)? {
                let Some(key) = options.key(family.name, &values[..family.keys.len()]) else {
                    continue;
                };
                let by_name: BTreeMap<&str, &String> = all.iter().copied().zip(&values).collect();
                let parts: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        let v = by_name.get(c).map_or_else(String::new, |v| (*v).clone());
                        if *c == "image" {
                            options.map_path(&v)
                        } else {
                            v
                        }
                    })
                    .collect();
                if parts.iter().all(String::is_empty) {
                    continue;
                }
                *contributions
                    .entry(key)
                    .or_default()
                    .entry((dimension, parts.join(" ")))
                    .or_default() += n;
            }
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
    // Copied bytes: the copying kinds' contributors, in bytes.
    let mut bytes: BTreeMap<(&str, String), u64> = BTreeMap::new();
    for kind in Kind::ALL.iter().filter(|k| k.is_copy()) {
        for ((dimension, key), n) in contributions
            .get(&format!("kind/{}", kind.name()))
            .into_iter()
            .flatten()
        {
            *bytes.entry((dimension, key.clone())).or_default() += n * crate::resolve::PAGE;
        }
    }
    contributions.insert("copied_bytes".to_owned(), bytes);
    for (metric, by) in contributions {
        out.contributors.insert(metric, top_contributors(&by));
    }
    Ok(out)
}

/// The top contributors of each dimension, largest first.
fn top_contributors(by: &BTreeMap<(&str, String), u64>) -> Vec<Contributor> {
    let mut list: Vec<Contributor> = Vec::new();
    for (dimension, _) in DIMENSIONS {
        let mut of: Vec<Contributor> = by
            .iter()
            .filter(|((d, _), _)| d == dimension)
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
        assert_eq!(
            options.key(
                "section",
                &["/usr/lib/x86_64-linux-gnu/libc.so.6".into(), ".data".into()]
            ),
            Some("section/LIB/libc.so.6 .data".into())
        );
        assert_eq!(options.key("image", &[String::new()]), None, "not an image");
        assert_eq!(
            options.key("process", &["redis-server".into()]),
            Some("process/redis-server".into())
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
