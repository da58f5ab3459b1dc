//! The collector thread: drains the ring buffer, aggregates, and optionally
//! writes every event as a JSON line.
use std::{
    collections::BTreeMap,
    io::{self, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use cowprof_common::{FaultEvent, Kind};
use serde::Serialize;

use crate::{
    attrib::{
        stacks::StackResolver,
        views::{View, Views},
        Attributor,
    },
    probe::{CountedProcess, ProbeError, ProbeStats, Probes, ProgramStat, Record},
};

/// How often the collector drains the ring buffer when the programs have not
/// woken it (they wake it only when the buffer is a quarter full).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

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

    /// Every COW fault, copies and reuses (write-notify is not COW).
    #[must_use]
    pub fn cow_total(&self) -> u64 {
        Kind::ALL
            .iter()
            .filter(|k| **k != Kind::WriteNotify)
            .map(|k| self.get(*k))
            .sum()
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

/// What one process paid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessSummary {
    pub pid: u32,
    pub comm: String,
    pub counts: KindCounts,
    /// Sum of per-fault latencies, in ns.
    pub latency_ns: u64,
}

/// Per-fault latency percentiles of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
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
    fn record(&mut self, kind: Kind, ns: u64) {
        let histogram = &mut self.0[KindCounts::slot(kind)];
        histogram.saturating_record(ns.max(1));
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
                        max_ns: h.max(),
                    },
                )
            })
            .collect()
    }
}

/// Aggregation of every event seen.
#[derive(Default)]
pub struct Aggregate {
    pub processes: BTreeMap<u32, ProcessSummary>,
    pub events: u64,
    pub latencies: Latencies,
    pub attributor: Attributor,
    pub views: Views,
    /// Present with `--stacks`.
    pub stacks: Option<StackResolver>,
}

impl std::fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregate")
            .field("processes", &self.processes)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// A task's `comm` up to its NUL.
fn comm_bytes(comm: &[u8]) -> &[u8] {
    let end = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
    &comm[..end]
}

/// A task's `comm` as text.
#[must_use]
pub fn comm_str(comm: &[u8]) -> String {
    String::from_utf8_lossy(comm_bytes(comm)).into_owned()
}

impl Aggregate {
    /// An aggregate by process and by `by`, that resolves paths against
    /// this machine's mounts.
    #[must_use]
    pub fn new(by: View) -> Self {
        Self {
            attributor: Attributor::new(),
            views: Views::new(by),
            ..Self::default()
        }
    }

    /// Accounts one ring buffer record.
    pub fn add_record(&mut self, record: Record<'_>) {
        match record {
            Record::Fault(event) => self.add(event),
            Record::File(file) => self.attributor.add_file(file),
        }
    }

    /// Accounts one event.
    pub fn add(&mut self, event: &FaultEvent) {
        let Some(kind) = Kind::from_u8(event.kind) else {
            return;
        };
        self.events += 1;
        let process = self
            .processes
            .entry(event.pid)
            .or_insert_with(|| ProcessSummary {
                pid: event.pid,
                ..ProcessSummary::default()
            });
        // The last comm wins: after an exec it names the new program.
        if (process.comm.is_empty() || event.tid == event.pid)
            && process.comm.as_bytes() != comm_bytes(&event.comm)
        {
            process.comm = comm_str(&event.comm);
        }
        process.counts.add(kind);
        process.latency_ns += event.latency_ns;
        self.latencies.record(kind, event.latency_ns);
        self.views.add(&mut self.attributor, event, kind);
        if let Some(stacks) = self.stacks.as_mut() {
            stacks.note_code(event.pid, &event.code);
            if let Ok(id) = u32::try_from(event.stack_id) {
                let stack = stacks.resolve(id, event.pid, &self.attributor);
                self.views.add_stack(&stack, kind, event.pid);
            }
        }
    }

    /// Accounts one process's faults counted in the kernel (count-only
    /// mode: no events, so no latency or attribution).
    pub fn add_counted(&mut self, counted: &CountedProcess) {
        let counts = KindCounts::from_array(counted.counts);
        self.events += counts.0.iter().sum::<u64>();
        let process = self
            .processes
            .entry(counted.pid)
            .or_insert_with(|| ProcessSummary {
                pid: counted.pid,
                comm: comm_str(&counted.comm),
                ..ProcessSummary::default()
            });
        process.counts.merge(&counts);
    }

    /// Counts summed over processes.
    #[must_use]
    pub fn totals(&self) -> KindCounts {
        let mut total = KindCounts::default();
        for process in self.processes.values() {
            total.merge(&process.counts);
        }
        total
    }
}

/// One event as a JSON line (`--events`).
#[derive(Serialize)]
struct EventLine<'a> {
    ts_ns: u64,
    pid: u32,
    tid: u32,
    comm: &'a str,
    kind: &'static str,
    addr: u64,
    ip: u64,
    latency_ns: u64,
    error_code: u32,
    vm_start: u64,
    vm_end: u64,
    vm_pgoff: u64,
    vm_flags: u64,
    dev: u32,
    ino: u64,
    code_vm_start: u64,
    code_vm_pgoff: u64,
    code_dev: u32,
    code_ino: u64,
}

fn write_event(out: &mut dyn Write, event: &FaultEvent) -> io::Result<()> {
    let comm = comm_str(&event.comm);
    let line = EventLine {
        ts_ns: event.ts_ns,
        pid: event.pid,
        tid: event.tid,
        comm: &comm,
        kind: Kind::from_u8(event.kind).map_or("unknown", Kind::name),
        addr: event.addr,
        ip: event.ip,
        latency_ns: event.latency_ns,
        error_code: event.error_code,
        vm_start: event.vma.vm_start,
        vm_end: event.vma.vm_end,
        vm_pgoff: event.vma.vm_pgoff,
        vm_flags: event.vma.vm_flags,
        dev: event.vma.dev,
        ino: event.vma.ino,
        code_vm_start: event.code.vm_start,
        code_vm_pgoff: event.code.vm_pgoff,
        code_dev: event.code.dev,
        code_ino: event.code.ino,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// What the collector hands back when it stops.
#[derive(Debug)]
pub struct Collected {
    pub aggregate: Aggregate,
    pub stats: ProbeStats,
    /// Per-program costs (`--program-stats`).
    pub programs: Vec<ProgramStat>,
    /// Set when writing the events file failed; the file is then partial.
    pub events_error: Option<String>,
}

/// The running collector thread.
pub struct Collector {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Collected, ProbeError>>,
}

impl Collector {
    /// Starts collecting from `probes` on a thread of its own.
    ///
    /// # Panics
    /// When the OS cannot create a thread.
    #[must_use]
    pub fn spawn(
        mut probes: Probes,
        by: View,
        mut events_out: Option<Box<dyn Write + Send>>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cowprof-collector".into())
            .spawn(move || {
                let mut aggregate = Aggregate::new(by);
                aggregate.stacks = probes.take_stacks().map(StackResolver::new);
                let mut events_error = None;
                loop {
                    // Read the flag before draining, so the last drain runs
                    // after the stop was asked for and misses nothing.
                    let stopping = stop_flag.load(Ordering::Acquire);
                    if !stopping {
                        let _ = probes.wait(POLL_INTERVAL);
                    }
                    probes.drain(|record| {
                        aggregate.add_record(record);
                        if let (Record::Fault(event), Some(out)) = (record, events_out.as_mut()) {
                            if let Err(err) = write_event(out.as_mut(), event) {
                                events_error = Some(err.to_string());
                                events_out = None;
                            }
                        }
                    });
                    if stopping {
                        break;
                    }
                }
                if let Some(mut out) = events_out {
                    if let Err(err) = out.flush() {
                        events_error = Some(err.to_string());
                    }
                }
                for counted in probes.process_counts()? {
                    aggregate.add_counted(&counted);
                }
                Ok(Collected {
                    aggregate,
                    stats: probes.stats()?,
                    programs: probes.program_stats(),
                    events_error,
                })
            })
            .expect("spawning the collector thread");
        Self { stop, thread }
    }

    /// Stops after a final drain and returns what was collected.
    ///
    /// # Errors
    /// When the final statistics cannot be read.
    ///
    /// # Panics
    /// When the collector thread panicked.
    pub fn finish(self) -> Result<Collected, ProbeError> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("collector thread panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pid: u32, kind: Kind) -> FaultEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"work");
        FaultEvent {
            pid,
            tid: pid,
            kind: kind as u8,
            latency_ns: 10,
            comm,
            ..FaultEvent::default()
        }
    }

    #[test]
    fn aggregates_per_process_and_kind() {
        let mut agg = Aggregate::default();
        // Anon events need no files.
        agg.add(&event(1, Kind::CowCopyAnon));
        agg.add(&event(1, Kind::CowCopyAnon));
        agg.add(&event(1, Kind::CowReuse));
        agg.add(&event(2, Kind::WriteNotify));
        agg.add(&FaultEvent::default()); // kind 0 is not a fault
        assert_eq!(agg.events, 4);
        let p1 = &agg.processes[&1];
        assert_eq!(p1.comm, "work");
        assert_eq!(p1.counts.get(Kind::CowCopyAnon), 2);
        assert_eq!(p1.counts.copies(), 2);
        assert_eq!(p1.counts.cow_total(), 3);
        assert_eq!(p1.latency_ns, 30);
        let latency = agg.latencies.summary();
        assert_eq!(latency.len(), 3, "three kinds seen");
        assert_eq!(latency[0].0, Kind::CowCopyAnon);
        assert_eq!(latency[0].1.count, 2);
        assert_eq!(latency[0].1.p50_ns, 10);
        let totals = agg.totals();
        assert_eq!(totals.get(Kind::WriteNotify), 1);
        assert_eq!(totals.cow_total(), 3);
    }

    #[test]
    fn comm_stops_at_nul() {
        assert_eq!(comm_str(b"sh\0\0junk"), "sh");
        assert_eq!(comm_str(b"sixteen-chars-xx"), "sixteen-chars-xx");
    }
}
