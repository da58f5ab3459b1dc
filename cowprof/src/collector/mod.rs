//! The collector thread: the only owner of the probes, the resolver and the
//! state. It drains the ring buffer in bounded batches (decode → resolve →
//! state), forwards raw events to the per-event sinks, and publishes named
//! reports on a tick. Sinks get data over bounded channels and never block
//! the drain: what a sink could not take is counted and reported.
mod sweep;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{SyncSender, TrySendError},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use cowprof_common::FaultEvent;
use serde::Serialize;

use crate::{
    decode::{decode, Decoded},
    newest::{Newest, Offered},
    probe::{CountedProcess, ProbeError, ProbeStats, Probes, ProgramStat},
    report::{
        events::{EventNames, EventRow},
        naming,
        tallies::{Tallies, TallyBatch, TallyLabels},
        Report,
    },
    resolve::{symbols::DebugDirs, Resolver},
};
use cowprof_model::state::{KindCounts, SnapshotOptions, State, View};

/// How often the collector drains the ring buffer when the programs have not
/// woken it (they wake it only when the buffer is a quarter full).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Records handled per batch, between checks of the tick and the stop flag.
const BATCH: usize = 4096;

/// What the collector publishes, and how often.
#[derive(Clone, Debug, Default)]
pub struct CollectorOptions {
    /// The views named in reports (rows of other views are kept, not named).
    pub views: Vec<View>,
    /// Publish a report this often (only the final one when `None`).
    pub tick: Option<Duration>,
    /// Rows per view in published reports (all when `None`; the final
    /// report always has all).
    pub top: Option<usize>,
    /// Include the touch map in published reports.
    pub touch_map: bool,
    /// Keep each process's faults per mapping (`Report::process_mappings`).
    pub process_mappings: bool,
    /// Keep no state (so no reports but empty ones): for the exporter,
    /// whose own state is bounded, where a long system-wide run would
    /// otherwise keep a row for every process it ever saw.
    pub stateless: bool,
    /// The optional labels of the exporter's tallies.
    pub tally_labels: TallyLabels,
    /// Where separate debug files are looked for (`--debug-dir`).
    pub debug_dirs: DebugDirs,
}

/// Where the collector sends data.
#[derive(Default)]
pub struct Sinks {
    /// Named reports, on each tick; the newest replaces one unread.
    pub reports: Option<Newest<Arc<Report>>>,
    /// Every fault event, in batches.
    pub events: Option<SyncSender<Vec<FaultEvent>>>,
    /// Every fault, named, in batches.
    pub rows: Option<SyncSender<Vec<EventRow>>>,
    /// Faults summed per label set, named, at most every
    /// [`Tallies::FLUSH`]; what does not fit waits for the next batch.
    pub tallies: Option<crossbeam_channel::Sender<TallyBatch>>,
}

/// A process the recording found exited (and retired: see
/// `State::exited`), at its position in the events the profile writer took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub pid: u32,
    /// Events sent to the profile writer before it.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` when it was retired, in ns.
    pub ts_ns: u64,
}

/// What sinks could not take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkDrops {
    /// Reports replaced by a newer one before the sink read them.
    pub reports: u64,
    /// Events the events file had no room for: missing from it.
    pub events: u64,
    /// Events the profile writer had no room for: missing from the profile.
    pub rows: u64,
}

/// What the collector hands back when it stops.
#[derive(Debug)]
pub struct Final {
    /// Every view, unabridged, with the touch map.
    pub report: Report,
    /// Per-program costs (`--program-stats`).
    pub programs: Vec<ProgramStat>,
    pub drops: SinkDrops,
    /// Records the ring buffer held that were not decodable.
    pub undecodable: u64,
    /// Problems that make the accounting incomplete, one line each.
    pub warnings: Vec<String>,
    /// The processes retired, in order, when a profile is written.
    pub exits: Vec<Exit>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("the collector thread failed: {0}; this is a bug, please report it")]
    Panicked(String),
}

/// The running collector thread. Dropping it stops it, which detaches the
/// probes.
pub struct Collector {
    stop: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
    thread: Option<JoinHandle<Final>>,
}

/// The loop's own state, on the collector thread.
struct Run {
    probes: Probes,
    resolver: Resolver,
    state: State,
    options: CollectorOptions,
    sinks: Sinks,
    batch: Vec<FaultEvent>,
    rows: Vec<EventRow>,
    names: EventNames,
    tallies: Tallies,
    tallied: Instant,
    stats_read: Instant,
    drops: SinkDrops,
    undecodable: u64,
    stats: ProbeStats,
    warnings: Vec<String>,
    sweep: sweep::Sweep,
    /// Events the profile writer took.
    rows_sent: u64,
    exits: Vec<Exit>,
}

/// How often the kernel's counters go out with the tallies.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl Run {
    /// Drains up to `limit` records. Returns how many there were.
    fn drain(&mut self, limit: usize) -> usize {
        let Self {
            probes,
            resolver,
            state,
            sinks,
            batch,
            rows,
            names,
            tallies,
            undecodable,
            options,
            ..
        } = self;
        let n = probes.drain(limit, |bytes| match decode(bytes) {
            Ok(Decoded::Fault(event)) => {
                if let Some(resolved) = resolver.resolve(&event) {
                    if !options.stateless {
                        state.apply(&resolved);
                    }
                    if sinks.tallies.is_some() {
                        tallies.add(&resolved);
                    }
                    if sinks.rows.is_some() {
                        rows.push(names.row(&event, &resolved, resolver));
                    }
                }
                if sinks.events.is_some() {
                    batch.push(event);
                }
            }
            Ok(Decoded::File(file)) => resolver.add_file(&file),
            Err(err) => {
                *undecodable += 1;
                log::warn!("{err}");
            }
        });
        self.flush_events();
        self.flush_tallies();
        n
    }

    /// Sends the tallies, at most every [`Tallies::FLUSH`], when the
    /// exporter has room for them; otherwise they keep summing (nothing is
    /// lost, the next batch is larger).
    fn flush_tallies(&mut self) {
        if self.tallied.elapsed() < Tallies::FLUSH {
            return;
        }
        let Some(full) = self
            .sinks
            .tallies
            .as_ref()
            .map(crossbeam_channel::Sender::is_full)
        else {
            return;
        };
        self.tallied = Instant::now();
        let stats_due = self.stats_read.elapsed() >= STATS_INTERVAL;
        if (self.tallies.is_empty() && !stats_due) || full {
            return;
        }
        let mut batch = self.tallies.take(&mut self.names, &self.resolver);
        if stats_due {
            self.read_stats();
            self.stats_read = Instant::now();
            batch.stats = Some(self.stats);
        }
        // The collector is the only sender: a channel that was not full
        // still has room.
        if let Some(tx) = &self.sinks.tallies {
            if let Err(crossbeam_channel::TrySendError::Disconnected(_)) = tx.try_send(batch) {
                self.sinks.tallies = None;
            }
        }
    }

    fn flush_events(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let n = batch.len() as u64;
            if !offer(&mut self.sinks.events, batch) {
                self.drops.events += n;
            }
        }
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            let n = rows.len() as u64;
            if offer(&mut self.sinks.rows, rows) {
                self.rows_sent += n;
            } else {
                self.drops.rows += n;
            }
        }
    }

    /// A named report of the state now.
    fn report(&self, options: SnapshotOptions) -> Report {
        let snapshot = self.state.snapshot(options);
        let mut report = naming::report(snapshot, &self.resolver, &self.options.views, self.stats);
        report.unnamed_writers = self.unnamed_writers();
        report
    }

    fn unnamed_writers(&self) -> Vec<String> {
        self.resolver.unnamed_writers().map(str::to_owned).collect()
    }

    /// Reads the kernel's counters; a failure keeps the last ones read.
    fn read_stats(&mut self) {
        match self.probes.stats() {
            Ok(stats) => self.stats = stats,
            Err(err) => log::warn!("reading the probes' counters: {err}"),
        }
    }

    fn publish(&mut self) {
        if self.sinks.reports.is_none() {
            return;
        }
        self.read_stats();
        let report = self.report(SnapshotOptions {
            top: self.options.top,
            touch_map: self.options.touch_map,
        });
        if let Some(sink) = &self.sinks.reports {
            match sink.offer(Arc::new(report)) {
                Offered::Sent => {}
                Offered::Replaced => self.drops.reports += 1,
                Offered::Closed => self.sinks.reports = None,
            }
        }
    }

    fn run(mut self, stop: &AtomicBool, reset: &AtomicBool) -> Final {
        let mut next_tick = self.options.tick.map(|t| Instant::now() + t);
        loop {
            // The final drain below runs after the stop was asked for, so
            // it misses nothing sent before.
            if stop.load(Ordering::Acquire) {
                break;
            }
            if reset.swap(false, Ordering::AcqRel) {
                self.state = if self.options.process_mappings {
                    State::with_process_mappings()
                } else {
                    State::default()
                };
                self.publish();
            }
            let wait = next_tick.map_or(POLL_INTERVAL, |t| {
                t.saturating_duration_since(Instant::now())
                    .min(POLL_INTERVAL)
            });
            let n = self.drain(BATCH);
            self.sweep.drained(n, BATCH);
            for pid in self.sweep.run(&mut self.state, &mut self.resolver) {
                if self.sinks.rows.is_some() {
                    self.exits.push(Exit {
                        pid,
                        seq: self.rows_sent + self.rows.len() as u64,
                        ts_ns: crate::kernel::monotonic_ns(),
                    });
                }
            }
            if n < BATCH {
                let _ = self.probes.wait(wait);
            }
            if let (Some(due), Some(tick)) = (next_tick, self.options.tick) {
                if Instant::now() >= due {
                    self.publish();
                    next_tick = Some(Instant::now() + tick);
                }
            }
        }
        // Lazy completion leaves each task's last fault open: complete them
        // before the final drain.
        if let Err(err) = self.probes.flush_pending() {
            self.warnings.push(format!(
                "{err}; each task's last fault before the stop is not reported"
            ));
        }
        // The final drain is bounded: under -a the rest of the system keeps
        // faulting while cowprof reads.
        let bound = self.probes.ring_capacity_records();
        let mut drained = 0;
        while drained < bound {
            let n = self.drain(BATCH.min(bound - drained));
            if n == 0 {
                break;
            }
            drained += n;
        }
        if drained >= bound {
            self.warnings.push(format!(
                "stopped reading after {drained} records at the end: faults kept arriving (system-wide); the kernel totals include them"
            ));
        }
        self.finish()
    }

    fn finish(mut self) -> Final {
        if let Some(tx) = self.sinks.tallies.take() {
            let mut batch = self.tallies.take(&mut self.names, &self.resolver);
            self.read_stats();
            batch.stats = Some(self.stats);
            let _ = tx.send_timeout(batch, Duration::from_secs(1));
        }
        let counted = self.probes.process_counts();
        let read = self.probes.stats();
        let mut warnings = account_end(&mut self.state, &mut self.stats, counted, read);
        self.warnings.append(&mut warnings);
        // The last report takes the state apart rather than copying it:
        // each view's rows are named as they leave it.
        let mut state = std::mem::take(&mut self.state);
        state.freeze();
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        let views = self
            .options
            .views
            .iter()
            .filter(|v| **v != View::Process)
            .map(|v| (*v, naming::rows(state.take_rows(*v), &self.resolver)))
            .collect();
        let mut report = naming::report(
            state.into_snapshot(),
            &self.resolver,
            &self.options.views,
            self.stats,
        );
        report.views = views;
        report.unnamed_writers = self.unnamed_writers();
        Final {
            report,
            programs: self.probes.program_stats(),
            drops: self.drops,
            undecodable: self.undecodable,
            warnings: self.warnings,
            exits: self.exits,
        }
    }
}

/// Offers `item` to a sink without blocking. Returns whether it took it; a
/// sink that hung up is forgotten.
fn offer<T>(sink: &mut Option<SyncSender<T>>, item: T) -> bool {
    let Some(tx) = sink else {
        return true;
    };
    match tx.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => false,
        Err(TrySendError::Disconnected(_)) => {
            *sink = None;
            false
        }
    }
}

/// Accounts what is read from the kernel at the end: per-process counts
/// (count-only mode) and the counters. A map that cannot be read costs its
/// own data and one warning, never the recording.
fn account_end(
    state: &mut State,
    kernel: &mut ProbeStats,
    counted: Result<Vec<CountedProcess>, ProbeError>,
    read: Result<ProbeStats, ProbeError>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    match counted {
        Ok(counted) => {
            for p in counted {
                state.add_counted(p.pid, p.comm, &KindCounts::from_array(p.counts));
            }
        }
        Err(err) => warnings.push(unread("per-process counts", &err)),
    }
    match read {
        Ok(read) => *kernel = read,
        Err(err) => warnings.push(unread("the kernel's counters", &err)),
    }
    warnings
}

/// The one-line warning for a map that could not be read at the end.
fn unread(what: &str, err: &ProbeError) -> String {
    format!("{what} could not be read at the end ({err}); the summary lacks them")
}

impl Collector {
    /// Starts collecting from `probes` on a thread of its own.
    ///
    /// # Errors
    /// When the OS cannot create a thread.
    pub fn spawn(
        mut probes: Probes,
        options: CollectorOptions,
        sinks: Sinks,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let reset = Arc::new(AtomicBool::new(false));
        let reset_flag = Arc::clone(&reset);
        let thread = std::thread::Builder::new()
            .name("cowprof-collector".into())
            .spawn(move || {
                let resolver = Resolver::new(probes.take_stacks(), &options.debug_dirs);
                let now = Instant::now();
                let tallies = Tallies::new(options.tally_labels);
                let run = Run {
                    sweep: sweep::Sweep::new(options.stateless),
                    rows_sent: 0,
                    exits: Vec::new(),
                    probes,
                    resolver,
                    state: if options.process_mappings {
                        State::with_process_mappings()
                    } else {
                        State::default()
                    },
                    options,
                    sinks,
                    batch: Vec::new(),
                    rows: Vec::new(),
                    names: EventNames::default(),
                    tallies,
                    tallied: now,
                    stats_read: now.checked_sub(STATS_INTERVAL).unwrap_or(now),
                    drops: SinkDrops::default(),
                    undecodable: 0,
                    stats: ProbeStats::default(),
                    warnings: Vec::new(),
                };
                run.run(&stop_flag, &reset_flag)
            })?;
        Ok(Self {
            stop,
            reset,
            thread: Some(thread),
        })
    }

    /// Starts the counts over: the state is emptied (what was resolved
    /// stays known), and a report follows at once.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::Release);
    }

    /// Stops after a final drain and returns what was collected.
    ///
    /// # Errors
    /// When the collector thread panicked.
    pub fn finish(mut self) -> Result<Final, CollectError> {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return Err(CollectError::Panicked("finished twice".into()));
        };
        thread.join().map_err(|panic| {
            let text = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            CollectError::Panicked(text)
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_that_cannot_be_read_at_the_end_keeps_the_recording() {
        let mut state = State::default();
        let mut kernel = ProbeStats {
            lost_events: 3,
            ..ProbeStats::default()
        };
        let counted = vec![CountedProcess {
            pid: 42,
            comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
            counts: [5, 0, 0, 0, 1, 0],
        }];
        let warnings = account_end(
            &mut state,
            &mut kernel,
            Ok(counted),
            Err(ProbeError::Load("bpf_map_lookup_elem: EBADF".into())),
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(!warnings[0].contains('\n'));
        assert!(warnings[0].contains("the kernel's counters"));
        assert_eq!(state.totals().cow_total(), 6, "the counts are kept");
        assert_eq!(kernel.lost_events, 3, "the last counters read are kept");
        let warnings = account_end(
            &mut state,
            &mut kernel,
            Err(ProbeError::Load("EBADF".into())),
            Ok(ProbeStats::default()),
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("per-process counts"));
    }
}
