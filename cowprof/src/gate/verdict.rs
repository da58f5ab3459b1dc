//! Judging a measurement against a baseline: each metric passes, regresses
//! (over its tolerance or its bounds), or shows a stale baseline (better
//! than its tolerance); new and missing metrics are told apart. A
//! regression is explained by the contributors that grew most.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    baseline::{Baseline, Metric, Tolerance},
    measure::{Contributor, Measurement},
};

/// How a metric fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Over its tolerance, or out of its bounds.
    Regression,
    /// Better than its tolerance: the baseline should be refreshed.
    Stale,
}

/// A contributor's growth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub dimension: String,
    pub key: String,
    pub baseline: u64,
    pub current: u64,
}

/// One metric's line of the verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    pub metric: String,
    /// `None` for a metric the baseline lacks.
    pub expected: Option<u64>,
    /// `None` for a metric this run lacks.
    pub current: Option<u64>,
    /// The fewest and most over repeated runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<(u64, u64)>,
    /// The change allowed either way.
    pub allowed: u64,
    pub status: Status,
    /// Why, when not plain: over tolerance, over max, under min, new,
    /// missing, stale baseline.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For a regression: the contributors that grew most.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grew: Vec<Growth>,
}

impl Line {
    /// Current minus expected (missing values count 0).
    #[must_use]
    pub fn delta(&self) -> i128 {
        i128::from(self.current.unwrap_or(0)) - i128::from(self.expected.unwrap_or(0))
    }
}

/// The verdict of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub lines: Vec<Line>,
    /// One line each: environment differences and the like.
    pub notes: Vec<String>,
    pub regressions: usize,
    pub stale: usize,
    /// Stale baselines fail too (`--strict`).
    pub strict: bool,
}

impl Verdict {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.regressions == 0 && !(self.strict && self.stale > 0)
    }
}

/// Contributors that grew, largest growth first.
fn growth(before: &[Contributor], after: &[Contributor]) -> Vec<Growth> {
    let mut by: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for c in before {
        by.entry((&c.dimension, &c.key)).or_default().0 = c.value;
    }
    for c in after {
        by.entry((&c.dimension, &c.key)).or_default().1 = c.value;
    }
    let mut out: Vec<Growth> = by
        .into_iter()
        .filter(|(_, (b, a))| a > b)
        .map(|((dimension, key), (baseline, current))| Growth {
            dimension: dimension.to_owned(),
            key: key.to_owned(),
            baseline,
            current,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.current - b.baseline)
            .cmp(&(a.current - a.baseline))
            .then_with(|| a.dimension.cmp(&b.dimension))
            .then_with(|| a.key.cmp(&b.key))
    });
    out.truncate(8);
    out
}

fn judge_one(
    name: &str,
    metric: &Metric,
    current: Option<u64>,
    defaults: Tolerance,
) -> (Status, String, u64) {
    let mut tolerance = metric.tolerance(defaults);
    if name.ends_with("_bytes") {
        // A bytes metric moves a page at a time: its `abs` counts pages.
        tolerance.abs = tolerance.abs.saturating_mul(crate::resolve::PAGE);
    }
    let allowed = tolerance.allowed(metric.expected);
    let value = current.unwrap_or(0);
    if let Some(max) = metric.max.filter(|m| value > *m) {
        return (Status::Regression, format!("over its max {max}"), allowed);
    }
    if let Some(min) = metric.min.filter(|m| value < *m) {
        return (Status::Regression, format!("under its min {min}"), allowed);
    }
    let missing = if current.is_none() { "missing; " } else { "" };
    if value > metric.expected.saturating_add(allowed) {
        (
            Status::Regression,
            format!("{missing}over tolerance"),
            allowed,
        )
    } else if value < metric.expected.saturating_sub(allowed) {
        (
            Status::Stale,
            format!("{missing}stale baseline: run --update"),
            allowed,
        )
    } else if current.is_none() {
        (Status::Pass, "missing".to_owned(), allowed)
    } else {
        (Status::Pass, String::new(), allowed)
    }
}

/// Judges `measured` (with `spread` over repeated runs) against `baseline`.
#[must_use]
pub fn judge(
    baseline: &Baseline,
    measured: &Measurement,
    spread: &BTreeMap<String, (u64, u64)>,
    defaults: Tolerance,
    strict: bool,
) -> Verdict {
    let mut verdict = Verdict {
        strict,
        ..Verdict::default()
    };
    let names: std::collections::BTreeSet<&String> = baseline
        .metrics
        .keys()
        .chain(measured.metrics.keys())
        .collect();
    for name in names {
        let current = measured.metrics.get(name).copied();
        let (expected, metric) = match baseline.metrics.get(name) {
            Some(m) => (Some(m.expected), m.clone()),
            // A metric the baseline lacks is judged against 0.
            None => (None, Metric::default()),
        };
        let (status, mut reason, allowed) = judge_one(name, &metric, current, defaults);
        if expected.is_none() {
            reason = if reason.is_empty() {
                "new".to_owned()
            } else {
                format!("new; {reason}")
            };
        }
        let grew = if status == Status::Regression {
            growth(
                &metric.contributors,
                measured.contributors.get(name).map_or(&[], Vec::as_slice),
            )
        } else {
            Vec::new()
        };
        match status {
            Status::Regression => verdict.regressions += 1,
            Status::Stale => verdict.stale += 1,
            Status::Pass => {}
        }
        verdict.lines.push(Line {
            metric: name.clone(),
            expected,
            current,
            spread: spread.get(name).copied().filter(|(lo, hi)| lo != hi),
            allowed,
            status,
            reason,
            grew,
        });
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(metrics: &[(&str, u64)]) -> Baseline {
        Baseline {
            metrics: metrics
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        Metric {
                            expected: *v,
                            contributors: vec![Contributor {
                                dimension: "writer".into(),
                                key: "old_writer".into(),
                                value: *v,
                            }],
                            ..Metric::default()
                        },
                    )
                })
                .collect(),
            ..Baseline::default()
        }
    }

    fn measured(metrics: &[(&str, u64)], writer: &str) -> Measurement {
        Measurement {
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            contributors: metrics
                .iter()
                .map(|(k, _)| {
                    (
                        (*k).to_owned(),
                        vec![
                            Contributor {
                                dimension: "writer".into(),
                                key: "old_writer".into(),
                                value: 1000,
                            },
                            Contributor {
                                dimension: "writer".into(),
                                key: writer.into(),
                                value: 100,
                            },
                        ],
                    )
                })
                .collect(),
        }
    }

    const DEFAULTS: Tolerance = Tolerance { abs: 4, pct: 1.0 };

    #[test]
    fn growth_over_tolerance_regresses_and_names_who_grew() {
        let b = baseline(&[("kind/cow_copy_anon", 1000)]);
        let v = judge(
            &b,
            &measured(&[("kind/cow_copy_anon", 1100)], "new_writer"),
            &BTreeMap::new(),
            DEFAULTS,
            false,
        );
        assert!(!v.passed());
        assert_eq!(v.regressions, 1);
        let line = &v.lines[0];
        assert_eq!(line.allowed, 10);
        assert_eq!(line.delta(), 100);
        assert_eq!(line.grew[0].key, "new_writer");
    }

    #[test]
    fn within_tolerance_passes_and_improvement_is_stale() {
        let b = baseline(&[("kind/cow_copy_anon", 1000)]);
        let same = measured(&[("kind/cow_copy_anon", 1008)], "w");
        assert!(judge(&b, &same, &BTreeMap::new(), DEFAULTS, false).passed());
        let better = measured(&[("kind/cow_copy_anon", 900)], "w");
        let v = judge(&b, &better, &BTreeMap::new(), DEFAULTS, false);
        assert!(v.passed());
        assert_eq!(v.stale, 1);
        assert!(v.lines[0].reason.contains("--update"));
        assert!(!judge(&b, &better, &BTreeMap::new(), DEFAULTS, true).passed());
    }

    #[test]
    fn new_and_missing_metrics_are_told_apart() {
        let b = baseline(&[("image/LIB/libold.so", 50)]);
        let m = measured(&[("image/LIB/libnew.so", 60)], "w");
        let v = judge(&b, &m, &BTreeMap::new(), DEFAULTS, false);
        let old = v
            .lines
            .iter()
            .find(|l| l.metric.contains("libold"))
            .unwrap();
        assert_eq!(old.status, Status::Stale);
        assert!(old.reason.starts_with("missing"));
        let new = v
            .lines
            .iter()
            .find(|l| l.metric.contains("libnew"))
            .unwrap();
        assert_eq!(new.status, Status::Regression);
        assert!(new.reason.starts_with("new"));
    }

    #[test]
    fn a_bytes_metric_allows_abs_pages() {
        let b = baseline(&[("copied_bytes", 34 * 4096)]);
        let v = judge(
            &b,
            &measured(&[("copied_bytes", 35 * 4096)], "w"),
            &BTreeMap::new(),
            DEFAULTS,
            false,
        );
        assert!(v.passed(), "one page more is within abs 4 pages");
        assert_eq!(v.lines[0].allowed, 4 * 4096);
    }

    #[test]
    fn hard_bounds_fail_inside_the_tolerance_too() {
        let mut b = baseline(&[("copied_bytes", 1000)]);
        b.metrics.get_mut("copied_bytes").unwrap().max = Some(1002);
        let v = judge(
            &b,
            &measured(&[("copied_bytes", 1003)], "w"),
            &BTreeMap::new(),
            DEFAULTS,
            false,
        );
        assert_eq!(v.lines[0].status, Status::Regression);
        assert!(v.lines[0].reason.contains("max"));
    }
}
