//! Faults summed per label set between two flushes, for the exporter.
//!
//! The collector adds each resolved fault to a [`Tallies`] (identities as
//! keys, no strings) and, at most every [`Tallies::FLUSH`], names what it
//! summed into a [`TallyBatch`] for the exporter. A batch the exporter has no
//! room for is not lost: the sums keep growing until it has, so a slow
//! exporter costs freshness, never counts.
use std::{sync::Arc, time::Duration};

use cowprof_common::{event::COMM_LEN, FileKey, Kind};
use hashbrown::HashMap;

use super::events::EventNames;
use crate::{probe::ProbeStats, resolve::Resolver};
use cowprof_model::keys::{MapKey, Resolved};
use cowprof_model::state::KindCounts;

/// Upper bounds of the latency buckets, in ns: 0.5 µs doubling to 16.4 ms
/// (the last bucket, unbounded, is implicit).
pub const LATENCY_BOUNDS_NS: [u64; 16] = {
    let mut bounds = [0; 16];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 500 << i;
        i += 1;
    }
    bounds
};

/// Faults per latency bucket, per kind, and the sum of their latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyTally {
    /// `[kind][bucket]`: the last bucket holds what exceeds every bound.
    pub buckets: [[u64; LATENCY_BOUNDS_NS.len() + 1]; Kind::ALL.len()],
    pub sum_ns: [u64; Kind::ALL.len()],
}

impl LatencyTally {
    /// Adds one fault's latency; 0 means not measured, and is skipped.
    pub fn record(&mut self, kind: Kind, ns: u64) {
        if ns == 0 {
            return;
        }
        let slot = usize::from(kind as u8 - 1);
        let bucket = LATENCY_BOUNDS_NS.partition_point(|bound| *bound < ns);
        self.buckets[slot][bucket] += 1;
        self.sum_ns[slot] = self.sum_ns[slot].saturating_add(ns);
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &LatencyTally) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for (a, b) in self.sum_ns.iter_mut().zip(other.sum_ns) {
            *a = a.saturating_add(b);
        }
    }

    fn is_empty(&self) -> bool {
        self.buckets.iter().flatten().all(|n| *n == 0)
    }
}

/// Which optional labels the exporter asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TallyLabels {
    pub sections: bool,
    pub symbols: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    pid: u32,
    comm: [u8; COMM_LEN],
    map: MapKey,
    image: Option<FileKey>,
    section: Option<u32>,
    symbol: Option<u32>,
}

/// One label set's faults since the last batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TallyRow {
    pub pid: u32,
    pub comm: Arc<str>,
    /// The mapping's name: the image's path, or `[heap]`, `[stack]`,
    /// `[anon:NAME]` or `[anon]`.
    pub image: Arc<str>,
    /// `(image, section)` and `(image, symbol)`, when asked for and known.
    pub section: Option<Arc<str>>,
    pub symbol: Option<Arc<str>>,
    pub counts: KindCounts,
}

/// What the exporter gets: faults since the last batch, named.
#[derive(Clone, Debug, Default)]
pub struct TallyBatch {
    pub rows: Vec<TallyRow>,
    pub latency: LatencyTally,
    /// The kernel's counters, when read since the last batch.
    pub stats: Option<ProbeStats>,
}

/// Sums kept in the collector between batches.
#[derive(Debug, Default)]
pub struct Tallies {
    labels: TallyLabels,
    counts: HashMap<Key, KindCounts>,
    latency: LatencyTally,
}

impl Tallies {
    /// How often the collector names and sends a batch, at most.
    pub const FLUSH: Duration = Duration::from_millis(100);

    #[must_use]
    pub fn new(labels: TallyLabels) -> Self {
        Self {
            labels,
            ..Self::default()
        }
    }

    /// Adds one resolved fault.
    pub fn add(&mut self, r: &Resolved) {
        let image = r.loc.image;
        let key = Key {
            pid: r.pid,
            comm: r.comm,
            map: r.mapping.map,
            image,
            section: r.loc.section.filter(|_| self.labels.sections),
            symbol: r.loc.symbol.filter(|_| self.labels.symbols),
        };
        self.counts.entry(key).or_default().add(r.kind);
        self.latency.record(r.kind, r.latency_ns);
    }

    /// Whether nothing was added since the last batch.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.latency.is_empty()
    }

    /// Names what was summed and starts over.
    pub fn take(&mut self, names: &mut EventNames, resolver: &Resolver) -> TallyBatch {
        let rows = self
            .counts
            .drain()
            .map(|(key, counts)| {
                let image = key.image;
                TallyRow {
                    pid: key.pid,
                    comm: names.comm(key.comm),
                    image: names.mapping(key.map, resolver),
                    section: image
                        .zip(key.section)
                        .map(|(i, s)| names.section(i, Some(s), resolver)),
                    symbol: image
                        .zip(key.symbol)
                        .map(|(i, s)| names.symbol(i, s, resolver)),
                    counts,
                }
            })
            .collect();
        TallyBatch {
            rows,
            latency: std::mem::take(&mut self.latency),
            stats: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let mut t = LatencyTally::default();
        t.record(Kind::CowCopyAnon, 0);
        assert!(t.is_empty(), "0 ns means not measured");
        t.record(Kind::CowCopyAnon, 1);
        t.record(Kind::CowCopyAnon, 500);
        t.record(Kind::CowCopyAnon, 501);
        t.record(Kind::CowCopyAnon, u64::MAX);
        let slot = &t.buckets[0];
        assert_eq!(slot[0], 2, "1 and 500 ns are in le=0.5us");
        assert_eq!(slot[1], 1, "501 ns is in le=1us");
        assert_eq!(slot[LATENCY_BOUNDS_NS.len()], 1, "past the last bound");
        assert_eq!(t.sum_ns[0], u64::MAX, "the sum saturates");
        assert_eq!(LATENCY_BOUNDS_NS[15], 16_384_000);
        let mut u = LatencyTally::default();
        u.merge(&t);
        u.merge(&t);
        assert_eq!(u.buckets[0][0], 4);
    }
}
