//! The baseline file: human-editable JSON with a schema version, one entry
//! per metric (expected value, tolerances, hard bounds, and the top
//! contributors that explain a regression), and the environment it was
//! measured in.
use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use super::{
    measure::{Contributor, Measurement},
    GateError,
};

/// The baseline format this cowprof reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The kernel's page size.
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0)
}

/// Where a measurement was taken: what makes counts comparable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub kernel: String,
    pub arch: String,
    pub page_size: u64,
    /// Transparent huge pages: `always`, `madvise` or `never`.
    pub thp: String,
    pub strategy: String,
}

impl Environment {
    /// This machine's, with the probe strategy used.
    #[must_use]
    pub fn here(strategy: &str) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let thp = read("/sys/kernel/mm/transparent_hugepage/enabled");
        // "always [madvise] never": the bracketed one is in force.
        let thp = thp
            .split_whitespace()
            .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
            .unwrap_or("unknown")
            .to_owned();
        Self {
            kernel: crate::kernel::release(),
            arch: std::env::consts::ARCH.to_owned(),
            page_size: page_size(),
            thp,
            strategy: strategy.to_owned(),
        }
    }

    /// What differs from `other`, as `name a → b` parts.
    #[must_use]
    pub fn differences(&self, other: &Environment) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, a: &str, b: &str| {
            if a != b {
                out.push(format!("{name} {a} → {b}"));
            }
        };
        check("kernel", &self.kernel, &other.kernel);
        check("arch", &self.arch, &other.arch);
        check(
            "page size",
            &self.page_size.to_string(),
            &other.page_size.to_string(),
        );
        check("THP", &self.thp, &other.thp);
        check("strategy", &self.strategy, &other.strategy);
        out
    }
}

/// The tolerances a metric has when the baseline does not set its own.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Allowed growth, in the metric's unit.
    pub abs: u64,
    /// Allowed growth, in percent of the expected value (rounded up).
    pub pct: f64,
}

impl Tolerance {
    /// The growth allowed over `expected`: `max(abs, ceil(expected × pct / 100))`.
    #[must_use]
    pub fn allowed(&self, expected: u64) -> u64 {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a count's percentage, rounded up"
        )]
        let pct = (expected as f64 * self.pct.max(0.0) / 100.0).ceil() as u64;
        self.abs.max(pct)
    }
}

/// One gated metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub expected: u64,
    /// This metric's own tolerance (hand-set; kept by `--update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pct: Option<f64>,
    /// Hard bounds (hand-set; kept by `--update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// What made up the value, top first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributors: Vec<Contributor>,
}

impl Metric {
    /// This metric's tolerance, `defaults` filling what it does not set.
    #[must_use]
    pub fn tolerance(&self, defaults: Tolerance) -> Tolerance {
        Tolerance {
            abs: self.abs.unwrap_or(defaults.abs),
            pct: self.pct.unwrap_or(defaults.pct),
        }
    }
}

/// A baseline file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema_version: u32,
    pub cowprof_version: String,
    /// The command measured, for people reading the file.
    #[serde(default)]
    pub command: Vec<String>,
    pub environment: Environment,
    pub metrics: BTreeMap<String, Metric>,
}

impl Baseline {
    /// Reads `path`.
    ///
    /// # Errors
    /// When it is missing, not JSON of this shape, or of another schema
    /// version.
    pub fn load(path: &Path) -> Result<Self, GateError> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                GateError::NoBaseline(path.to_owned())
            } else {
                GateError::Baseline {
                    path: path.to_owned(),
                    problem: err.to_string(),
                }
            }
        })?;
        Self::from_json(&text, path)
    }

    /// Parses baseline text read from `path`.
    ///
    /// # Errors
    /// When it is not JSON of this shape, or of another schema version.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, GateError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| GateError::Baseline {
                path: path.to_owned(),
                problem: err.to_string(),
            })?;
        match value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(GateError::BaselineVersion {
                    path: path.to_owned(),
                    found: v,
                })
            }
            None => {
                return Err(GateError::Baseline {
                    path: path.to_owned(),
                    problem: "no schema_version".to_owned(),
                })
            }
        }
        serde_json::from_value(value).map_err(|err| GateError::Baseline {
            path: path.to_owned(),
            problem: err.to_string(),
        })
    }

    /// A baseline of `measured`, keeping the hand-set tolerances and bounds
    /// of `previous` for the metrics it still has.
    #[must_use]
    pub fn from_measurement(
        measured: &Measurement,
        environment: Environment,
        command: Vec<String>,
        previous: Option<&Baseline>,
    ) -> Self {
        let metrics = measured
            .metrics
            .iter()
            .map(|(name, value)| {
                let kept = previous.and_then(|p| p.metrics.get(name));
                (
                    name.clone(),
                    Metric {
                        expected: *value,
                        abs: kept.and_then(|m| m.abs),
                        pct: kept.and_then(|m| m.pct),
                        min: kept.and_then(|m| m.min),
                        max: kept.and_then(|m| m.max),
                        contributors: measured.contributors.get(name).cloned().unwrap_or_default(),
                    },
                )
            })
            .collect();
        Self {
            schema_version: SCHEMA_VERSION,
            cowprof_version: env!("CARGO_PKG_VERSION").to_owned(),
            command,
            environment,
            metrics,
        }
    }

    /// Writes the baseline to `path` (pretty, with a final newline) through
    /// a temporary file and a rename: never half-written.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GateError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        crate::output::write_atomically(path, text.as_bytes()).map_err(|source| GateError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_growth_is_the_larger_tolerance() {
        let t = Tolerance { abs: 4, pct: 1.0 };
        assert_eq!(t.allowed(100), 4, "1% of 100 is 1; abs wins");
        assert_eq!(t.allowed(1000), 10);
        assert_eq!(t.allowed(1001), 11, "rounded up");
        assert_eq!(t.allowed(0), 4);
    }

    #[test]
    fn an_update_keeps_hand_set_tolerances_and_bounds() {
        let measured = |n: u64| Measurement {
            metrics: [
                ("kind/cow_copy_anon".to_owned(), n),
                ("copied_bytes".to_owned(), n * 4096),
            ]
            .into(),
            contributors: BTreeMap::new(),
        };
        let env = Environment::default();
        let mut first = Baseline::from_measurement(&measured(100), env.clone(), Vec::new(), None);
        let hand = first.metrics.get_mut("kind/cow_copy_anon").unwrap();
        hand.abs = Some(20);
        hand.pct = Some(5.0);
        hand.max = Some(150);
        let text = serde_json::to_string(&first).unwrap();
        let edited: Baseline = serde_json::from_str(&text).unwrap();
        let second = Baseline::from_measurement(&measured(120), env, Vec::new(), Some(&edited));
        let kept = &second.metrics["kind/cow_copy_anon"];
        assert_eq!(kept.expected, 120, "the value is refreshed");
        assert_eq!(
            (kept.abs, kept.pct, kept.min, kept.max),
            (Some(20), Some(5.0), None, Some(150))
        );
        assert_eq!(
            second.metrics["copied_bytes"].abs, None,
            "nothing set by hand there"
        );
        assert_eq!(second.schema_version, SCHEMA_VERSION);
    }

    #[test]
    fn environments_name_their_differences() {
        let a = Environment::here("tracepoint");
        let mut b = a.clone();
        assert!(a.differences(&b).is_empty());
        b.kernel = "5.10.0".into();
        b.strategy = "fentry".into();
        let d = a.differences(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("kernel "));
        assert_eq!(a.page_size, 4096);
    }
}
