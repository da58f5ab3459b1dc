//! The fault-latency histogram: the collector's fixed buckets per kind,
//! encoded for prometheus-client as `cowprof_cow_fault_latency_seconds`.
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use cowprof_common::Kind;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};

use crate::report::tallies::{LatencyTally, LATENCY_BOUNDS_NS};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Fault latencies per kind, in the collector's fixed buckets (shared with
/// the registry, which reads them at each scrape on the same thread).
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<Buckets>);

#[derive(Debug, Default)]
pub struct Buckets {
    buckets: [[AtomicU64; LATENCY_BOUNDS_NS.len() + 1]; Kind::ALL.len()],
    sum_ns: [AtomicU64; Kind::ALL.len()],
}

impl std::ops::Deref for Latency {
    type Target = Buckets;

    fn deref(&self) -> &Buckets {
        &self.0
    }
}

impl Latency {
    pub fn add(&self, tally: &LatencyTally) {
        for (mine, theirs) in self.buckets.iter().zip(&tally.buckets) {
            for (a, b) in mine.iter().zip(theirs) {
                a.fetch_add(*b, Ordering::Relaxed);
            }
        }
        for (a, b) in self.sum_ns.iter().zip(tally.sum_ns) {
            a.fetch_add(b, Ordering::Relaxed);
        }
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    #[expect(
        clippy::cast_precision_loss,
        reason = "seconds as f64, as Prometheus keeps them"
    )]
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (slot, kind) in Kind::ALL.iter().enumerate() {
            let counts: Vec<u64> = self.buckets[slot]
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect();
            let count: u64 = counts.iter().sum();
            if count == 0 {
                continue;
            }
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_NS
                .iter()
                .map(|ns| *ns as f64 / 1e9)
                .chain([f64::INFINITY])
                .zip(counts)
                .collect();
            let sum = self.sum_ns[slot].load(Ordering::Relaxed) as f64 / 1e9;
            encoder
                .encode_family(&KindLabels { kind: kind.name() })?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }

    fn is_empty(&self) -> bool {
        self.buckets
            .iter()
            .flatten()
            .all(|n| n.load(Ordering::Relaxed) == 0)
    }
}
