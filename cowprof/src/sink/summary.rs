//! The summary sink: the final report of a recording, with what the
//! recording cost, as a table or one JSON document.
use std::fmt::Write as _;

use serde::Serialize;

use super::tables;
use crate::{
    collector::{Final, SinkDrops},
    probe::{ProgramStat, Strategy},
    report::Report,
};
use cowprof_model::state::{KindCounts, View};

/// Why the recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    CommandExited,
    TargetExited,
    Interrupted,
    Duration,
}

/// Everything a recording reports.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub strategy: Strategy,
    /// Kernel features this kernel lacks and what the legacy eBPF object
    /// does instead, with the same results (docs/kernel.md §3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_fallbacks: Vec<String>,
    pub stop_reason: StopReason,
    pub duration_s: f64,
    /// The command's exit code, or 128 + signal, when cowprof ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_exit: Option<i32>,
    /// The views asked for with `--by`.
    pub by: Vec<View>,
    #[serde(flatten)]
    pub report: Report,
    pub total_cow: u64,
    pub total_copies: u64,
    /// Events lost because the ring buffer was full. Counts per kind in
    /// `kernel_totals` include them.
    pub lost_events: u64,
    pub kernel_totals: KindCounts,
    /// What the sinks could not take.
    pub sink_drops: SinkDrops,
    /// Ring buffer records that could not be decoded.
    pub undecodable: u64,
    /// Set when the `--events` file is incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_file_error: Option<String>,
    /// What makes the accounting incomplete, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the recording cost cowprof itself.
    pub cost: SelfCost,
    /// Each eBPF program's runs and mean run time (`--program-stats`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub program_stats: Vec<ProgramStat>,
}

/// cowprof's own cost: time to attach, CPU and peak memory (its threads,
/// not the command it ran).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SelfCost {
    /// From the start of `record` to the probes attached and the command
    /// released.
    pub attach_s: f64,
    /// User plus system CPU time.
    pub cpu_s: f64,
    /// `cpu_s` over the recording's wall time, in % of one core.
    pub cpu_percent: f64,
    /// Peak resident set size, in KiB.
    pub peak_rss_kib: u64,
}

/// `VmHWM` from /proc/self/status, in KiB.
fn vm_hwm_kib() -> Option<u64> {
    crate::kernel::procstat::own_status()?.vmhwm
}

impl SelfCost {
    /// Reads this process's resource usage; `wall_s` is the time since
    /// `record` started.
    #[must_use]
    pub fn measure(attach_s: f64, wall_s: f64) -> Self {
        // SAFETY: getrusage fills the struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &raw mut usage);
            usage
        };
        #[expect(clippy::cast_precision_loss, reason = "seconds for display")]
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
        Self {
            attach_s,
            cpu_s,
            cpu_percent: if wall_s > 0.0 {
                100.0 * cpu_s / wall_s
            } else {
                0.0
            },
            // VmHWM is this address space's own peak. ru_maxrss is not: at
            // exec the kernel carries over the peak of the address space
            // replaced, which was a copy of the parent's.
            peak_rss_kib: vm_hwm_kib()
                .unwrap_or_else(|| u64::try_from(usage.ru_maxrss).unwrap_or(0)),
        }
    }
}

impl Summary {
    /// Builds the summary of a finished recording, with the views in `by`.
    #[must_use]
    pub fn new(
        strategy: Strategy,
        stop_reason: StopReason,
        duration_s: f64,
        command_exit: Option<i32>,
        by: Vec<View>,
        collected: Final,
    ) -> Self {
        let mut report = collected.report;
        report.views.retain(|view, _| by.contains(view));
        if !by.iter().any(|v| v.has_touch_map()) {
            report.waste.clear();
        }
        let totals = report.totals;
        let mut warnings = collected.warnings;
        if report.kernel.recursion_misses > 0 {
            warnings.push(format!(
                "the kernel skipped {} runs of the fault probes: the same program was already running on that CPU (an fentry program preempted under full or lazy preemption), so faults are missing; --probe kprobe runs with preemption off",
                report.kernel.recursion_misses
            ));
        }
        if collected.drops.rows > 0 {
            warnings.push(format!(
                "{} events could not be written to the profile in time; it lacks them",
                collected.drops.rows
            ));
        }
        if collected.drops.events > 0 {
            warnings.push(format!(
                "{} events could not be written to the events file in time; it lacks them",
                collected.drops.events
            ));
        }
        Self {
            strategy,
            kernel_fallbacks: Vec::new(),
            stop_reason,
            duration_s,
            command_exit,
            by,
            total_cow: totals.cow_total(),
            total_copies: totals.copies(),
            lost_events: report.kernel.lost_events,
            kernel_totals: report.kernel_totals(),
            report,
            sink_drops: collected.drops,
            undecodable: collected.undecodable,
            events_file_error: None,
            warnings,
            cost: SelfCost::default(),
            program_stats: collected.programs,
        }
    }

    /// Whether the accounting is complete: nothing lost, nothing unread.
    #[must_use]
    pub fn exact(&self) -> bool {
        self.lost_events == 0
            && self.warnings.is_empty()
            && self.undecodable == 0
            && self.events_file_error.is_none()
    }

    /// Writes the summary as one JSON document, streamed: a summary with
    /// every page of a long recording is never held as one string.
    ///
    /// # Errors
    /// When writing fails.
    pub fn write_json(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// Keeps the `n` processes and rows of each view with the most COW
    /// faults (they are sorted so).
    pub fn keep_top(&mut self, n: usize) {
        self.report.processes.truncate(n);
        for rows in self.report.views.values_mut() {
            rows.truncate(n);
        }
    }

    /// The summary as a table.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        tables::processes(&mut out, &self.report.processes, &self.report.totals);
        tables::views(&mut out, &self.report.views);
        tables::waste(&mut out, &self.report.waste);
        if !self.report.latency.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<16} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "LATENCY", "COUNT", "P50_NS", "P90_NS", "P99_NS", "MAX_NS"
            );
            for (kind, l) in &self.report.latency {
                let _ = writeln!(
                    out,
                    "{kind:<16} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    l.count, l.p50_ns, l.p90_ns, l.p99_ns, l.max_ns
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} processes, {} COW faults ({} copies), {} lost events, strategy {}, {:.2}s, stopped: {:?}",
            self.report.total_processes,
            self.total_cow,
            self.total_copies,
            self.lost_events,
            self.strategy,
            self.duration_s,
            self.stop_reason,
        );
        for fallback in &self.kernel_fallbacks {
            let _ = writeln!(out, "kernel fallback: {fallback}");
        }
        if self.report.folded_processes > 0 {
            let _ = writeln!(
                out,
                "{} exited processes with the fewest faults are summed into pid 0 \"(exited)\" and \"[anon] (exited processes)\"; the profile keeps each one's events.",
                self.report.folded_processes
            );
        }
        // Only where writers are shown: the writer view, or stacks.
        let writers_shown = self
            .by
            .iter()
            .any(|v| matches!(v, View::Writer | View::Stack));
        if writers_shown {
            for hint in crate::resolve::debuginfo::hints(&self.report.unnamed_writers) {
                let _ = writeln!(out, "{hint}");
            }
        }
        if self.lost_events > 0 {
            let _ = writeln!(
                out,
                "warning: {} events were lost; per-process counts are low by that much (kernel totals: {} COW). Raise --ringbuf-size.",
                self.lost_events,
                self.kernel_totals.cow_total()
            );
        }
        if !self.program_stats.is_empty() {
            let _ = writeln!(out, "\n{:<28} {:>12} {:>10}", "PROGRAM", "RUNS", "MEAN_NS");
            for p in &self.program_stats {
                let _ = writeln!(out, "{:<28} {:>12} {:>10.0}", p.program, p.runs, p.mean_ns);
            }
        }
        if self.report.kernel.process_counts_lost > 0 {
            let _ = writeln!(
                out,
                "warning: {} faults were not counted per process (more than {} processes); the kernel totals include them.",
                self.report.kernel.process_counts_lost,
                cowprof_common::event::MAX_COUNTED
            );
        }
        if let Some(err) = &self.events_file_error {
            let _ = writeln!(out, "warning: the events file is partial: {err}");
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }
}
