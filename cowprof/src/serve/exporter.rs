//! The exporter's state: the metrics (prometheus-client families in a
//! registry that only the exporter's thread touches), the bounded label
//! dimensions and the live processes behind them. Tallies from the
//! collector go in; the text of a scrape comes out.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cowprof_common::Kind;
use hashbrown::HashSet;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::{Registry, Unit},
};

use super::{
    labels::{Dimension, OTHER},
    latency::Latency,
    processes::{Dim, Probe, Processes},
    usage::SelfUsage,
};
use crate::{
    probe::ProbeStats,
    report::tallies::{TallyBatch, TallyRow},
    resolve::PAGE,
};

/// How the exporter bounds its series.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Label values per dimension with series of their own.
    pub top: usize,
    /// How long a value outlives the last process that used it.
    pub grace: Duration,
    pub sections: bool,
    pub symbols: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    kind: &'static str,
    comm: Arc<str>,
    image: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CopiedLabels {
    comm: Arc<str>,
    image: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SectionLabels {
    kind: &'static str,
    image: Arc<str>,
    section: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SymbolLabels {
    kind: &'static str,
    image: Arc<str>,
    symbol: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    label: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DimLabels {
    label: &'static str,
}

impl Limits {
    /// Whether the exporter labels by `dim` (sections and symbols are
    /// opt-in).
    #[must_use]
    pub fn has(&self, dim: Dim) -> bool {
        match dim {
            Dim::Comm | Dim::Image => true,
            Dim::Section => self.sections,
            Dim::Symbol => self.symbols,
        }
    }
}

/// What the probes are, for `cowprof_probe_info` and the programs gauge.
#[derive(Clone, Debug)]
pub struct ProbeInfo {
    pub strategy: &'static str,
    pub kernel: String,
    pub programs: usize,
}

/// The exporter.
pub struct Exporter {
    registry: Registry,
    faults: Family<FaultLabels, Counter>,
    copied: Family<CopiedLabels, Counter>,
    sections: Family<SectionLabels, Counter>,
    symbols: Family<SymbolLabels, Counter>,
    latency: Latency,
    lost: Counter,
    kernel: Family<KindLabels, Counter>,
    received: Counter,
    errors: Family<ErrorLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    values: Family<DimLabels, Gauge>,
    tracked: Gauge,
    /// The series alive in each labelled family, to end them by value.
    fault_series: HashSet<FaultLabels>,
    copied_series: HashSet<CopiedLabels>,
    section_series: HashSet<SectionLabels>,
    symbol_series: HashSet<SymbolLabels>,
    dims: [Dimension; 4],
    processes: Processes,
    limits: Limits,
    stats: ProbeStats,
}

impl Exporter {
    /// An exporter with no data yet.
    #[must_use]
    #[expect(
        clippy::too_many_lines,
        reason = "one registration per metric, in one place"
    )]
    pub fn new(limits: Limits, probe: &ProbeInfo, alive: Probe) -> Self {
        let mut registry = Registry::default();
        let faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "cowprof_cow_faults",
            "Write faults on private and shared mappings, by kind, command (comm) and image (the mapped file, or [heap], [stack], [anon:NAME], [anon]); values outside the top K are summed in \"other\"",
            faults.clone(),
        );
        let copied = Family::<CopiedLabels, Counter>::default();
        registry.register_with_unit(
            "cowprof_cow_copied",
            "Bytes of the pages COW faults allocated (copied, filled or zeroed), by comm and image",
            Unit::Bytes,
            copied.clone(),
        );
        let sections = Family::<SectionLabels, Counter>::default();
        let symbols = Family::<SymbolLabels, Counter>::default();
        if limits.sections {
            registry.register(
                "cowprof_cow_section_faults",
                "Write faults on image pages, by kind, image and ELF section (with --sections)",
                sections.clone(),
            );
        }
        if limits.symbols {
            registry.register(
                "cowprof_cow_symbol_faults",
                "Write faults on image pages, by kind, image and data symbol (with --symbols)",
                symbols.clone(),
            );
        }
        let latency = Latency::default();
        registry.register_with_unit(
            "cowprof_cow_fault_latency",
            "Time in the kernel's fault handler per write fault, by kind",
            Unit::Seconds,
            latency.clone(),
        );
        let lost = Counter::default();
        registry.register(
            "cowprof_events_lost",
            "Fault events the ring buffer had no room for: missing from every other metric",
            lost.clone(),
        );
        let kernel = Family::<KindLabels, Counter>::default();
        registry.register(
            "cowprof_kernel_faults",
            "Write faults the probes counted in the kernel, by kind, whether or not their events arrived",
            kernel.clone(),
        );
        for kind in Kind::ALL {
            let _ = kernel.get_or_create(&KindLabels { kind: kind.name() });
        }
        let received = Counter::default();
        registry.register(
            "cowprof_events",
            "Fault events received and counted into the fault metrics, whichever series they went to; kernel faults minus these minus lost events is what no metric counts (0 once the target is quiet)",
            received.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "cowprof_probe_errors",
            "Problems the probes counted in the kernel, by error",
            errors.clone(),
        );
        for error in ERRORS {
            let _ = errors.get_or_create(&ErrorLabels { error });
        }
        registry.register(
            "cowprof_probe",
            "The probe strategy in use and the running kernel",
            Info::new(vec![
                ("strategy", probe.strategy.to_owned()),
                ("kernel", probe.kernel.clone()),
            ]),
        );
        let programs = Gauge::<i64>::default();
        programs.set(i64::try_from(probe.programs).unwrap_or(i64::MAX));
        registry.register("cowprof_probe_programs", "BPF programs attached", programs);
        registry.register(
            "cowprof_build",
            "The cowprof build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "cowprof_series_dropped",
            "Label values whose series ended: expired (no live process for the grace period) or displaced (out of the top K)",
            dropped.clone(),
        );
        for dim in Dim::ALL.into_iter().filter(|d| limits.has(*d)) {
            for reason in ["expired", "displaced"] {
                let _ = dropped.get_or_create(&DropLabels {
                    label: dim.name(),
                    reason,
                });
            }
        }
        let values = Family::<DimLabels, Gauge>::default();
        registry.register(
            "cowprof_label_values",
            "Label values with series of their own, per label (at most K each)",
            values.clone(),
        );
        let tracked = Gauge::default();
        registry.register(
            "cowprof_tracked_processes",
            "Live processes the exporter follows for the grace period",
            tracked.clone(),
        );
        registry.register_collector(Box::new(SelfUsage));
        Self {
            registry,
            faults,
            copied,
            sections,
            symbols,
            latency,
            lost,
            kernel,
            received,
            errors,
            dropped,
            values,
            tracked,
            fault_series: HashSet::new(),
            copied_series: HashSet::new(),
            section_series: HashSet::new(),
            symbol_series: HashSet::new(),
            dims: [(); 4].map(|()| Dimension::new(limits.top)),
            processes: Processes::new(alive),
            limits,
            stats: ProbeStats::default(),
        }
    }

    /// Counts one batch of tallies.
    pub fn apply(&mut self, batch: &TallyBatch, now: Instant) {
        for row in &batch.rows {
            self.apply_row(row, now);
        }
        self.latency.add(&batch.latency);
        if let Some(stats) = batch.stats {
            self.lost
                .inc_by(stats.lost_events.saturating_sub(self.stats.lost_events));
            for (i, kind) in Kind::ALL.iter().enumerate() {
                self.kernel
                    .get_or_create(&KindLabels { kind: kind.name() })
                    .inc_by(stats.kernel_counts[i].saturating_sub(self.stats.kernel_counts[i]));
            }
            for (error, now, then) in errors(&stats, &self.stats) {
                self.errors
                    .get_or_create(&ErrorLabels { error })
                    .inc_by(now.saturating_sub(then));
            }
            self.stats = stats;
        }
        self.gauges();
    }

    fn apply_row(&mut self, row: &TallyRow, now: Instant) {
        let copies = row.counts.copies();
        self.received
            .inc_by(Kind::ALL.iter().map(|k| row.counts.get(*k)).sum());
        let [comms, images, sections, symbols] = &mut self.dims;
        let comm = comms.add(&row.comm, copies, now);
        let image = images.add(&row.image, copies, now);
        for kind in Kind::ALL {
            let n = row.counts.get(kind);
            if n == 0 {
                continue;
            }
            let labels = FaultLabels {
                kind: kind.name(),
                comm: Arc::clone(&comm),
                image: Arc::clone(&image),
            };
            self.faults.get_or_create(&labels).inc_by(n);
            self.fault_series.insert(labels);
        }
        if copies > 0 {
            let labels = CopiedLabels { comm, image };
            self.copied.get_or_create(&labels).inc_by(copies * PAGE);
            self.copied_series.insert(labels);
        }
        let mut held: Vec<(Dim, &Arc<str>)> =
            vec![(Dim::Comm, &row.comm), (Dim::Image, &row.image)];
        let section_key = row.section.as_ref().map(|s| pair(&row.image, s));
        if let (Some(key), Some(name)) = (&section_key, &row.section) {
            let place = Place {
                key,
                image: &row.image,
                name,
            };
            place.count(
                sections,
                &self.sections,
                &mut self.section_series,
                row,
                now,
                |kind, image, section| SectionLabels {
                    kind,
                    image,
                    section,
                },
            );
            held.push((Dim::Section, key));
        }
        let symbol_key = row.symbol.as_ref().map(|s| pair(&row.image, s));
        if let (Some(key), Some(name)) = (&symbol_key, &row.symbol) {
            let place = Place {
                key,
                image: &row.image,
                name,
            };
            place.count(
                symbols,
                &self.symbols,
                &mut self.symbol_series,
                row,
                now,
                |kind, image, symbol| SymbolLabels {
                    kind,
                    image,
                    symbol,
                },
            );
            held.push((Dim::Symbol, key));
        }
        self.processes
            .saw(row.pid, &row.comm, &held, &mut self.dims, now);
    }

    /// Checks which processes ended, ends the series of values expired or
    /// displaced, and gives free slots out.
    pub fn maintain(&mut self, now: Instant) {
        self.processes.refresh(&mut self.dims, now);
        for dim in Dim::ALL {
            let changes = self.dims[dim as usize].expire(now, self.limits.grace);
            for (reason, values) in [
                ("expired", &changes.expired),
                ("displaced", &changes.displaced),
            ] {
                if values.is_empty() {
                    continue;
                }
                self.dropped
                    .get_or_create(&DropLabels {
                        label: dim.name(),
                        reason,
                    })
                    .inc_by(values.len() as u64);
                let gone: HashSet<&str> = values.iter().map(|v| &**v).collect();
                self.end_series(dim, &gone);
            }
        }
        self.gauges();
    }

    fn end_series(&mut self, dim: Dim, gone: &HashSet<&str>) {
        fn end<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug>(
            series: &mut HashSet<L>,
            family: &Family<L, Counter>,
            matches: impl Fn(&L) -> bool,
        ) {
            series.retain(|labels| {
                let keep = !matches(labels);
                if !keep {
                    family.remove(labels);
                }
                keep
            });
        }
        match dim {
            Dim::Comm => {
                end(&mut self.fault_series, &self.faults, |l| {
                    gone.contains(&*l.comm)
                });
                end(&mut self.copied_series, &self.copied, |l| {
                    gone.contains(&*l.comm)
                });
            }
            Dim::Image => {
                end(&mut self.fault_series, &self.faults, |l| {
                    gone.contains(&*l.image)
                });
                end(&mut self.copied_series, &self.copied, |l| {
                    gone.contains(&*l.image)
                });
            }
            Dim::Section => end(&mut self.section_series, &self.sections, |l| {
                gone.contains(&*pair(&l.image, &l.section))
            }),
            Dim::Symbol => end(&mut self.symbol_series, &self.symbols, |l| {
                gone.contains(&*pair(&l.image, &l.symbol))
            }),
        }
    }

    fn gauges(&self) {
        for dim in Dim::ALL.into_iter().filter(|d| self.limits.has(*d)) {
            self.values
                .get_or_create(&DimLabels { label: dim.name() })
                .set(i64::try_from(self.dims[dim as usize].slotted()).unwrap_or(i64::MAX));
        }
        self.tracked
            .set(i64::try_from(self.processes.len()).unwrap_or(i64::MAX));
    }

    /// The exposition in the OpenMetrics text format.
    #[must_use]
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The errors the probes count, as `cowprof_probe_errors_total{error}`.
const ERRORS: [&str; 6] = [
    "vma_lookup_failed",
    "pending_alloc_failed",
    "completion_unmatched",
    "target_insert_failed",
    "file_records_lost",
    "recursion_misses",
];

fn errors(now: &ProbeStats, then: &ProbeStats) -> [(&'static str, u64, u64); 6] {
    [
        (ERRORS[0], now.vma_lookup_failed, then.vma_lookup_failed),
        (
            ERRORS[1],
            now.pending_alloc_failed,
            then.pending_alloc_failed,
        ),
        (
            ERRORS[2],
            now.completion_unmatched,
            then.completion_unmatched,
        ),
        (
            ERRORS[3],
            now.target_insert_failed,
            then.target_insert_failed,
        ),
        (ERRORS[4], now.file_records_lost, then.file_records_lost),
        (ERRORS[5], now.recursion_misses, then.recursion_misses),
    ]
}

/// A section or symbol of an image, and its key in its dimension.
struct Place<'a> {
    key: &'a Arc<str>,
    image: &'a Arc<str>,
    name: &'a Arc<str>,
}

impl Place<'_> {
    /// Counts a row's faults under this place's labels (`other` for both
    /// outside the top K).
    fn count<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug>(
        &self,
        dim: &mut Dimension,
        family: &Family<L, Counter>,
        series: &mut HashSet<L>,
        row: &TallyRow,
        now: Instant,
        labels: fn(&'static str, Arc<str>, Arc<str>) -> L,
    ) {
        let label = dim.add(self.key, row.counts.copies(), now);
        let (image, name) = split(&label, self.image, self.name);
        for kind in Kind::ALL.into_iter().filter(|k| row.counts.get(*k) > 0) {
            let labels = labels(kind.name(), Arc::clone(&image), Arc::clone(&name));
            family.get_or_create(&labels).inc_by(row.counts.get(kind));
            series.insert(labels);
        }
    }
}

/// The key of a section or symbol value: its image and its name.
fn pair(image: &str, name: &str) -> Arc<str> {
    format!("{image}\u{0}{name}").into()
}

/// The labels of a section or symbol: both `other` outside the top K.
fn split(label: &str, image: &Arc<str>, name: &Arc<str>) -> (Arc<str>, Arc<str>) {
    if label == OTHER {
        (OTHER.into(), OTHER.into())
    } else {
        (Arc::clone(image), Arc::clone(name))
    }
}
