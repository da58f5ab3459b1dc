//! Fault counts per kind and latency histograms per kind.
use cowprof_common::Kind;
use serde::Serialize;

/// Fault counts per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts([u64; 6]);

impl KindCounts {
    fn slot(kind: Kind) -> usize {
        usize::from(kind as u8 - 1)
    }

    /// Adds one fault of `kind`.
    pub fn add(&mut self, kind: Kind) {
        self.0[Self::slot(kind)] += 1;
    }

    /// Faults of `kind`.
    #[must_use]
    pub fn get(&self, kind: Kind) -> u64 {
        self.0[Self::slot(kind)]
    }

    /// Every fault, COW or write-notify.
    #[must_use]
    pub fn all(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every COW fault, copies and reuses (write-notify is not COW).
    #[must_use]
    pub fn cow_total(&self) -> u64 {
        self.all() - self.get(Kind::WriteNotify)
    }

    /// Faults that allocated a page.
    #[must_use]
    pub fn copies(&self) -> u64 {
        Kind::ALL
            .iter()
            .filter(|k| k.is_copy())
            .map(|k| self.get(*k))
            .sum()
    }

    /// Builds counts from per-kind values in `Kind::ALL` order.
    #[must_use]
    pub fn from_array(values: [u64; 6]) -> Self {
        Self(values)
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &KindCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl Serialize for KindCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(Kind::ALL.len()))?;
        for kind in Kind::ALL {
            map.serialize_entry(kind.name(), &self.get(kind))?;
        }
        map.end()
    }
}

/// Per-fault latency percentiles of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

/// Latency histograms per kind (3 significant digits, up to 10 s).
#[derive(Clone, Debug)]
pub struct Latencies(Vec<hdrhistogram::Histogram<u64>>);

impl Default for Latencies {
    fn default() -> Self {
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, 10_000_000_000, 3)
            .expect("static histogram bounds are valid");
        Self(vec![histogram; Kind::ALL.len()])
    }
}

impl Latencies {
    /// Records one fault's latency; 0 means not measured, and is skipped.
    pub fn record(&mut self, kind: Kind, ns: u64) {
        self.record_n(kind, ns, 1);
    }

    /// Records `n` faults of the same latency.
    pub fn record_n(&mut self, kind: Kind, ns: u64, n: u64) {
        if ns == 0 {
            return;
        }
        let histogram = &mut self.0[KindCounts::slot(kind)];
        histogram.saturating_record_n(ns, n);
    }

    /// Percentiles of every kind seen, in `Kind::ALL` order.
    #[must_use]
    pub fn summary(&self) -> Vec<(Kind, LatencySummary)> {
        Kind::ALL
            .iter()
            .zip(&self.0)
            .filter(|(_, h)| !h.is_empty())
            .map(|(kind, h)| {
                (
                    *kind,
                    LatencySummary {
                        count: h.len(),
                        p50_ns: h.value_at_quantile(0.50),
                        p90_ns: h.value_at_quantile(0.90),
                        p99_ns: h.value_at_quantile(0.99),
                        p999_ns: h.value_at_quantile(0.999),
                        max_ns: h.max(),
                    },
                )
            })
            .collect()
    }

    /// Histograms of every kind seen, in `Kind::ALL` order: power-of-two
    /// buckets from 1 µs (everything faster in the first), each as (upper
    /// bound in ns, faults), up to the slowest fault's bucket.
    #[must_use]
    pub fn buckets(&self) -> Vec<(Kind, Vec<(u64, u64)>)> {
        Kind::ALL
            .iter()
            .zip(&self.0)
            .filter(|(_, h)| !h.is_empty())
            .map(|(kind, h)| {
                let mut out = Vec::new();
                let mut low = 0;
                let mut high = 1024;
                loop {
                    out.push((high, h.count_between(low, high - 1)));
                    if high > h.max() {
                        break;
                    }
                    low = high;
                    high *= 2;
                }
                (*kind, out)
            })
            .collect()
    }
}
