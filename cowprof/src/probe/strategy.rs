//! The one declarative table of what each probe strategy needs. The checks
//! that decide what this kernel offers are in `facts`. Startup picks from
//! the table by priority; `cowprof doctor` prints it.
use std::fmt;

use serde::Serialize;

/// A way of probing the write-protect fault path (docs/kernel.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// fentry/fexit on `handle_mm_fault`, `do_wp_page`, `wp_page_copy`.
    Fentry,
    /// kprobe/kretprobe on the same functions.
    Kprobe,
    /// `page_fault_user`/`page_fault_kernel` and perf software events.
    Tracepoint,
}

impl Strategy {
    /// Every strategy, best first.
    pub const BY_PRIORITY: [Strategy; 3] =
        [Strategy::Fentry, Strategy::Kprobe, Strategy::Tracepoint];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Fentry => "fentry",
            Strategy::Kprobe => "kprobe",
            Strategy::Tracepoint => "tracepoint",
        }
    }

    /// Lower is preferred.
    #[must_use]
    pub fn priority(self) -> u8 {
        TABLE
            .iter()
            .find(|spec| spec.strategy == self)
            .map_or(u8::MAX, |spec| spec.priority)
    }

    /// Whether faults complete lazily (docs/kernel.md §3): the tracepoint
    /// strategy sees no fault end but the perf event, which is attached
    /// only to measure latency.
    #[must_use]
    pub const fn lazy(self, latency: bool) -> bool {
        matches!(self, Strategy::Tracepoint) && !latency
    }

    /// This strategy's rows of the table.
    pub fn probes(self) -> impl Iterator<Item = &'static ProbeSpec> {
        TABLE.iter().filter(move |spec| spec.strategy == self)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The software events the tracepoint strategy's completion program uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SoftwareEvent {
    PageFaultsMin,
    PageFaultsMaj,
}

/// Where a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "target", rename_all = "snake_case")]
pub enum Hook {
    Fentry(&'static str),
    Fexit(&'static str),
    Kprobe(&'static str),
    Kretprobe(&'static str),
    /// A BTF-enabled tracepoint (`tp_btf`).
    BtfTracepoint(&'static str),
    /// A classic (perf) tracepoint, `"category/name"`.
    Tracepoint(&'static str),
    /// A BPF iterator over this kind of kernel object, loaded at startup and
    /// run when the recording stops.
    Iterator(&'static str),
    /// Software perf events on every CPU, one sample per event.
    PerfSoftware(&'static [SoftwareEvent]),
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::Fentry(t) => write!(f, "fentry/{t}"),
            Hook::Fexit(t) => write!(f, "fexit/{t}"),
            Hook::Kprobe(t) => write!(f, "kprobe/{t}"),
            Hook::Kretprobe(t) => write!(f, "kretprobe/{t}"),
            Hook::BtfTracepoint(t) => write!(f, "tp_btf/{t}"),
            Hook::Tracepoint(t) => write!(f, "tracepoint/{t}"),
            Hook::Iterator(t) => write!(f, "iter/{t}"),
            Hook::PerfSoftware(events) => {
                let names: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
                write!(f, "perf_event/{}", names.join("+"))
            }
        }
    }
}

/// What must exist for a row to be usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum Check {
    /// A `FUNC` of this name in kernel BTF (fentry/fexit need it), and the
    /// function in `available_filter_functions` when that is readable.
    BtfFunc(&'static str),
    /// The symbol in `/proc/kallsyms` (not inlined), and kprobe support.
    Kallsyms(&'static str),
    /// The tracepoint's `btf_trace_<name>` type in kernel BTF.
    Tracepoint(&'static str),
    /// The event's `format` file in tracefs (`"category/name"`).
    TracefsEvent(&'static str),
    /// perf software events (every kernel cowprof supports).
    PerfSoftware,
    /// The iterator's `bpf_iter_<name>` function in kernel BTF.
    Iterator(&'static str),
}

/// When a row is used, beyond what the kernel offers: the tracepoint
/// strategy completes faults through the perf event only when latency is
/// measured, and lazily otherwise (docs/kernel.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    Always,
    /// Only with `--latency`.
    Latency,
    /// Only without `--latency` (lazy completion).
    Lazy,
}

impl When {
    /// Whether the row is used when `latency` is (or is not) measured.
    #[must_use]
    pub const fn applies(self, latency: bool) -> bool {
        match self {
            When::Always => true,
            When::Latency => latency,
            When::Lazy => !latency,
        }
    }

    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            When::Always => "always",
            When::Latency => "--latency",
            When::Lazy => "default",
        }
    }
}

/// One row of the compatibility table.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProbeSpec {
    pub strategy: Strategy,
    /// The strategy's priority (lower is preferred); the same on its rows.
    pub priority: u8,
    /// The program's name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    /// Oldest kernel (major, minor) where the hook and program type exist.
    pub min_kernel: (u32, u32),
    /// The first kernel where the row gives way to another (a `tp_btf`
    /// program to its classic twin from v7.0), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<(u32, u32)>,
    /// The first kernel where the row takes over from another, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<(u32, u32)>,
    pub check: Check,
    /// Optional rows refine the result where available (`wp_page_copy` is
    /// inlined on current kernels).
    pub required: bool,
    pub when: When,
}

impl ProbeSpec {
    const fn only(self, when: When) -> Self {
        Self { when, ..self }
    }

    /// Whether the row is used when `latency` is (or is not) measured.
    #[must_use]
    pub const fn used(&self, latency: bool) -> bool {
        self.when.applies(latency)
    }

    /// Whether the row is for kernel `version`: from its `since`, before
    /// its `until`. (A kernel older than `min_kernel` is not the row's
    /// choice: the row applies, and fails its check.)
    #[must_use]
    pub fn applies_to(&self, version: (u32, u32)) -> bool {
        self.until.is_none_or(|until| version < until)
            && self.since.is_none_or(|since| version >= since)
    }
}

/// From v7.0 `tp_btf` programs run preemptible, so each gives way to a
/// classic tracepoint program (cowprof-ebpf/src/tracepoints.rs says why).
pub const CLASSIC_TRACEPOINTS: (u32, u32) = (7, 0);

/// A `tp_btf` row used before v7.0; the program is named after the
/// tracepoint.
const fn btf_tp(strategy: Strategy, name: &'static str) -> ProbeSpec {
    let spec = row(
        strategy,
        name,
        Hook::BtfTracepoint(name),
        (5, 5),
        Check::Tracepoint(name),
        true,
    );
    ProbeSpec {
        until: Some(CLASSIC_TRACEPOINTS),
        ..spec
    }
}

/// The classic tracepoint twin of a [`btf_tp`] row, from v7.0.
const fn classic_tp(strategy: Strategy, program: &'static str, event: &'static str) -> ProbeSpec {
    let spec = row(
        strategy,
        program,
        Hook::Tracepoint(event),
        CLASSIC_TRACEPOINTS,
        Check::TracefsEvent(event),
        true,
    );
    ProbeSpec {
        since: Some(CLASSIC_TRACEPOINTS),
        ..spec
    }
}

const fn row(
    strategy: Strategy,
    program: &'static str,
    hook: Hook,
    min_kernel: (u32, u32),
    check: Check,
    required: bool,
) -> ProbeSpec {
    let priority = match strategy {
        Strategy::Fentry => 1,
        Strategy::Kprobe => 2,
        Strategy::Tracepoint => 3,
    };
    ProbeSpec {
        strategy,
        priority,
        program,
        hook,
        min_kernel,
        until: None,
        since: None,
        check,
        required,
        when: When::Always,
    }
}

use Check::{BtfFunc, Iterator as Iter, Kallsyms, PerfSoftware as Perf};
use Hook::{Fentry, Fexit, Kprobe, Kretprobe, PerfSoftware};
use Strategy::{Fentry as F, Kprobe as K, Tracepoint as T};

/// Every probe of every strategy.
pub const TABLE: &[ProbeSpec] = &[
    row(
        F,
        "fentry_handle_mm_fault",
        Fentry("handle_mm_fault"),
        (5, 8),
        BtfFunc("handle_mm_fault"),
        true,
    ),
    row(
        F,
        "fexit_handle_mm_fault",
        Fexit("handle_mm_fault"),
        (5, 8),
        BtfFunc("handle_mm_fault"),
        true,
    ),
    row(
        F,
        "fentry_do_wp_page",
        Fentry("do_wp_page"),
        (5, 5),
        BtfFunc("do_wp_page"),
        true,
    ),
    row(
        F,
        "fentry_wp_page_copy",
        Fentry("wp_page_copy"),
        (5, 5),
        BtfFunc("wp_page_copy"),
        false,
    ),
    btf_tp(F, "mm_page_alloc"),
    classic_tp(F, "tp_mm_page_alloc", "kmem/mm_page_alloc"),
    btf_tp(F, "rss_stat"),
    classic_tp(F, "tp_rss_stat", "kmem/rss_stat"),
    btf_tp(F, "sched_process_fork"),
    classic_tp(F, "tp_sched_process_fork", "sched/sched_process_fork"),
    btf_tp(F, "sched_process_exit"),
    classic_tp(F, "tp_sched_process_exit", "sched/sched_process_exit"),
    row(
        K,
        "kprobe_handle_mm_fault",
        Kprobe("handle_mm_fault"),
        (5, 8),
        Kallsyms("handle_mm_fault"),
        true,
    ),
    row(
        K,
        "kretprobe_handle_mm_fault",
        Kretprobe("handle_mm_fault"),
        (5, 8),
        Kallsyms("handle_mm_fault"),
        true,
    ),
    row(
        K,
        "kprobe_do_wp_page",
        Kprobe("do_wp_page"),
        (5, 5),
        Kallsyms("do_wp_page"),
        true,
    ),
    row(
        K,
        "kprobe_wp_page_copy",
        Kprobe("wp_page_copy"),
        (5, 5),
        Kallsyms("wp_page_copy"),
        false,
    ),
    btf_tp(K, "mm_page_alloc"),
    classic_tp(K, "tp_mm_page_alloc", "kmem/mm_page_alloc"),
    btf_tp(K, "rss_stat"),
    classic_tp(K, "tp_rss_stat", "kmem/rss_stat"),
    btf_tp(K, "sched_process_fork"),
    classic_tp(K, "tp_sched_process_fork", "sched/sched_process_fork"),
    btf_tp(K, "sched_process_exit"),
    classic_tp(K, "tp_sched_process_exit", "sched/sched_process_exit"),
    btf_tp(T, "sched_process_fork"),
    classic_tp(T, "tp_sched_process_fork", "sched/sched_process_fork"),
    btf_tp(T, "sched_process_exit"),
    classic_tp(T, "tp_sched_process_exit", "sched/sched_process_exit"),
    row(
        T,
        "fault_done",
        PerfSoftware(&[SoftwareEvent::PageFaultsMin, SoftwareEvent::PageFaultsMaj]),
        (5, 9),
        Perf,
        true,
    )
    .only(When::Latency),
    ProbeSpec {
        min_kernel: (5, 11),
        ..btf_tp(T, "mmap_lock_start_locking")
    }
    .only(When::Lazy),
    classic_tp(
        T,
        "tp_mmap_lock_start_locking",
        "mmap_lock/mmap_lock_start_locking",
    )
    .only(When::Lazy),
    row(
        T,
        "flush_pending",
        Hook::Iterator("task"),
        (5, 8),
        Iter("task"),
        true,
    )
    .only(When::Lazy),
    btf_tp(T, "mm_page_alloc"),
    classic_tp(T, "tp_mm_page_alloc", "kmem/mm_page_alloc"),
    btf_tp(T, "rss_stat"),
    classic_tp(T, "tp_rss_stat", "kmem/rss_stat"),
    // Entry last: every fault it opens can then be seen to completion.
    btf_tp(T, "page_fault_kernel"),
    classic_tp(T, "tp_page_fault_kernel", "exceptions/page_fault_kernel"),
    btf_tp(T, "page_fault_user"),
    classic_tp(T, "tp_page_fault_user", "exceptions/page_fault_user"),
];

#[cfg(test)]
#[path = "strategy_tests.rs"]
mod tests;
