//! Loading, attaching and reading the eBPF probes.
mod attach;
pub mod facts;
mod object;
pub mod requirements;
mod stats;
pub mod strategy;

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    time::Duration,
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf, StackTraceMap},
    Ebpf,
};
use cowprof_common::{Config, FaultEvent, FileRecord, ProcCounts};

use self::{
    facts::KernelFacts,
    object::{configs, load_object, take_map, tracepoint_offsets},
};
pub use self::{
    stats::{CountedProcess, ProbeStats, ProgramStat},
    strategy::Strategy,
};
use crate::kernel;

/// Default ring buffer size: 16 MiB holds about 150,000 events.
pub const DEFAULT_RINGBUF_BYTES: u32 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "cowprof needs root, or CAP_BPF with CAP_PERFMON, to load its probes; run it with sudo"
    )]
    Privileges,
    #[error(transparent)]
    Btf(#[from] kernel::btf::BtfError),
    #[error("--ringbuf-size must be a power of two of at least 4096 bytes, got {0}")]
    RingbufSize(u32),
    #[error("loading the eBPF programs failed: {0}")]
    Load(String),
    #[error("the {strategy} strategy is unavailable here: {reason}; run `cowprof doctor`")]
    Unavailable {
        strategy: Strategy,
        reason: String,
        /// The errno of the failed syscall, when one failed.
        errno: Option<i32>,
    },
    #[error("no probe strategy works on this kernel ({0}); run `cowprof doctor`")]
    NoStrategy(String),
    #[error("following pid {pid} failed: {reason}")]
    Follow { pid: u32, reason: String },
}

impl ProbeError {
    /// What is missing, without the advice to run doctor.
    #[must_use]
    pub fn reason(&self) -> String {
        match self {
            ProbeError::Unavailable { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// What to trace.
#[derive(Clone, Copy, Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of the kernel programs"
)]
pub struct ProbeOptions {
    /// Trace every process instead of the follow set.
    pub system_wide: bool,
    /// Ring buffer size in bytes (a power of two).
    pub ringbuf_bytes: u32,
    /// Forward the programs' aya-log diagnostics to the log.
    pub debug: bool,
    /// The strategy to use; `None` picks the best available.
    pub strategy: Option<Strategy>,
    /// Record each fault's user stack.
    pub stacks: bool,
    /// Count per process in the kernel and send no fault events.
    pub count_only: bool,
    /// Turn on the kernel's BPF run-time statistics while recording, to
    /// report each program's runs and mean run time.
    pub program_stats: bool,
    /// Measure each fault's latency (two clock reads per fault, and the
    /// perf-event completion on the tracepoint strategy).
    pub latency: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            system_wide: false,
            ringbuf_bytes: DEFAULT_RINGBUF_BYTES,
            debug: false,
            strategy: None,
            stacks: false,
            count_only: false,
            program_stats: false,
            latency: false,
        }
    }
}

impl ProbeOptions {
    /// Whether fault latency is measured: asked for, and events are sent.
    #[must_use]
    pub fn measures_latency(&self) -> bool {
        self.latency && !self.count_only
    }
}

/// How long the final flush gives faults in flight to return.
const FLUSH_GRACE: Duration = Duration::from_millis(10);

/// Loaded and attached probes.
pub struct Probes {
    /// Owns the loaded programs and their links; dropping it detaches.
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    targets: HashMap<MapData, u32, u8>,
    stats: PerCpuArray<MapData, u64>,
    kinds: PerCpuArray<MapData, u64>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    strategy: Strategy,
    attached: Vec<&'static str>,
    stacks: Option<StackTraceMap<MapData>>,
    /// Per-process counts, in count-only mode.
    proc_counts: Option<PerCpuHashMap<MapData, u32, ProcCounts>>,
    /// Keeps the kernel's BPF run-time statistics on (`--program-stats`).
    stats_enabled: Option<std::os::fd::OwnedFd>,
    ringbuf_bytes: u32,
    /// Lazy completion: the stop flag the final flush sets.
    control: Option<Array<MapData, u32>>,
    /// What the legacy object stands in for on this kernel (empty when
    /// the kernel has it all).
    fallbacks: Vec<&'static requirements::Requirement>,
}

impl Probes {
    /// Loads the programs and attaches the chosen strategy: the one forced
    /// in `options`, else the best this kernel offers (by priority, falling
    /// back when one fails to attach).
    ///
    /// # Errors
    /// Without privileges, without BTF, or when no (or not the forced)
    /// strategy can be attached.
    pub fn load(options: ProbeOptions) -> Result<Self, ProbeError> {
        if !kernel::privileges::can_trace() {
            return Err(ProbeError::Privileges);
        }
        let bytes = options.ringbuf_bytes;
        if bytes < 4096 || !bytes.is_power_of_two() {
            return Err(ProbeError::RingbufSize(bytes));
        }
        // tracefs is not needed by these programs, but users of a tracer
        // expect it and the checks read it; mount it when we can.
        if let Err(err) = kernel::tracefs::ensure_mounted() {
            log::warn!("tracefs is not mounted and mounting it failed: {err}");
        }
        let started = std::time::Instant::now();
        let facts = KernelFacts::read();
        log::info!("kernel facts read in {:?}", started.elapsed());
        let offsets = facts
            .btf
            .as_ref()
            .ok_or(kernel::btf::BtfError::Missing)?
            .offsets()?;
        let tracepoints = tracepoint_offsets(&facts)?;
        let aya_btf =
            aya::Btf::from_sys_fs().map_err(|e| ProbeError::Load(format!("kernel BTF: {e}")))?;
        log::info!("aya BTF parsed at {:?}", started.elapsed());
        let candidates: &[Strategy] = match &options.strategy {
            Some(forced) => std::slice::from_ref(forced),
            None => &Strategy::BY_PRIORITY,
        };
        let fallbacks = facts.legacy_fallbacks();
        let mut failures = Vec::new();
        for &strategy in candidates {
            let checked = facts.strategy_check(strategy, options.measures_latency());
            if !checked.ok {
                failures.push(ProbeError::Unavailable {
                    strategy,
                    reason: checked.reason.unwrap_or_default(),
                    errno: None,
                });
                continue;
            }
            let (full, lite) = configs(&options, strategy, &facts, offsets, tracepoints);
            let mut outcome = Err(ProbeError::Load(String::new()));
            // Where the verifier cannot take the full programs (E2BIG), the
            // lite set loads instead.
            let configs: &[&Config] = if options.count_only {
                &[&lite]
            } else {
                &[&full, &lite]
            };
            for &config in configs {
                let mut ebpf = load_object(&fallbacks, config, bytes)?;
                log::info!("object loaded at {:?}", started.elapsed());
                outcome = attach::strategy(
                    &mut ebpf,
                    strategy,
                    options.measures_latency(),
                    &facts,
                    &aya_btf,
                )
                .map(|attached| (ebpf, attached));
                match &outcome {
                    Err(ProbeError::Unavailable {
                        errno: Some(libc::E2BIG),
                        ..
                    }) => {
                        log::warn!(
                            "{strategy}: the verifier cannot take the programs whole here (E2BIG); loading them without in-kernel attribution"
                        );
                    }
                    _ => break,
                }
            }
            match outcome {
                Ok((ebpf, attached)) => {
                    log::info!("{strategy} attached at {:?}", started.elapsed());
                    let mut probes = Self::finish(ebpf, strategy, attached, options)?;
                    probes.fallbacks = fallbacks;
                    return Ok(probes);
                }
                Err(err) => {
                    log::info!("{err}");
                    failures.push(err);
                }
            }
        }
        match (options.strategy, failures.pop()) {
            (Some(_), Some(err)) => Err(err),
            _ => Err(ProbeError::NoStrategy(
                Strategy::BY_PRIORITY
                    .iter()
                    .map(|s| format!("{s} unavailable"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    fn finish(
        mut ebpf: Ebpf,
        strategy: Strategy,
        attached: Vec<&'static str>,
        options: ProbeOptions,
    ) -> Result<Self, ProbeError> {
        let logger = if options.debug {
            aya_log::EbpfLogger::init(&mut ebpf)
                .inspect_err(|e| log::warn!("eBPF logging unavailable: {e}"))
                .ok()
        } else {
            None
        };
        let events: RingBuf<MapData> = take_map(&mut ebpf, "EVENTS")?;
        let targets = take_map(&mut ebpf, "TARGETS")?;
        let stats = take_map(&mut ebpf, "STATS")?;
        let kinds = take_map(&mut ebpf, "KIND_COUNTS")?;
        let stacks = options
            .stacks
            .then(|| take_map(&mut ebpf, "STACKS"))
            .transpose()?;
        let proc_counts = options
            .count_only
            .then(|| take_map(&mut ebpf, "PROC_COUNTS"))
            .transpose()?;
        let control = strategy
            .lazy(options.measures_latency())
            .then(|| take_map(&mut ebpf, "CONTROL"))
            .transpose()?;
        let stats_enabled = if options.program_stats {
            Some(
                aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
                    ProbeError::Load(format!("turning on BPF run-time statistics: {e}"))
                })?,
            )
        } else {
            None
        };
        Ok(Self {
            ebpf,
            events,
            targets,
            stats,
            kinds,
            logger,
            strategy,
            attached,
            stacks,
            proc_counts,
            stats_enabled,
            ringbuf_bytes: options.ringbuf_bytes,
            control,
            fallbacks: Vec::new(),
        })
    }

    /// Lazy completion: completes every fault record still open, each
    /// task's last fault. Tells the programs to open no new records, gives
    /// faults in flight a moment to return, then runs the task iterator,
    /// whose completions go to the ring buffer like any other. A no-op when
    /// faults complete eagerly.
    ///
    /// # Errors
    /// When the flag cannot be set or the iterator cannot run; the records
    /// still open are then not reported.
    pub fn flush_pending(&mut self) -> Result<(), ProbeError> {
        let Some(control) = self.control.as_mut() else {
            return Ok(());
        };
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ProbeError::Load(format!("final flush: {what}: {e}"))
        };
        control
            .set(0, 1, 0)
            .map_err(|e| failed("setting the stop flag", &e))?;
        std::thread::sleep(FLUSH_GRACE);
        let program: &mut aya::programs::Iter = self
            .ebpf
            .program_mut("flush_pending")
            .ok_or_else(|| failed("the iterator", &"missing"))?
            .try_into()
            .map_err(|e| failed("the iterator", &e))?;
        let link = program.attach().map_err(|e| failed("attaching", &e))?;
        let link = program
            .take_link(link)
            .map_err(|e| failed("attaching", &e))?;
        let mut file = link.into_file().map_err(|e| failed("starting", &e))?;
        std::io::copy(&mut file, &mut std::io::sink()).map_err(|e| failed("running", &e))?;
        Ok(())
    }

    /// The kernel features the legacy object stands in for here, as
    /// "FEATURE: WHAT INSTEAD" (empty on kernels that have them all).
    #[must_use]
    pub fn fallbacks(&self) -> Vec<String> {
        // Only `Without::Legacy` requirements are kept (`legacy_fallbacks`).
        self.fallbacks
            .iter()
            .filter_map(|r| match r.without {
                requirements::Without::Legacy(instead) => Some(format!("{}: {instead}", r.feature)),
                requirements::Without::Unavailable(_) => None,
            })
            .collect()
    }

    /// The probe strategy in use.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Each attached program's runs and mean run time so far, when
    /// `--program-stats` turned the kernel's statistics on (else empty).
    #[must_use]
    pub fn program_stats(&self) -> Vec<ProgramStat> {
        if self.stats_enabled.is_none() {
            return Vec::new();
        }
        let mut stats: Vec<ProgramStat> = self
            .ebpf
            .programs()
            .filter(|(name, _)| self.attached.contains(name))
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                let runs = info.run_count();
                #[expect(clippy::cast_precision_loss, reason = "a mean for display")]
                let mean_ns = if runs == 0 {
                    0.0
                } else {
                    info.run_time().as_nanos() as f64 / runs as f64
                };
                Some(ProgramStat {
                    program: name.to_owned(),
                    runs,
                    mean_ns,
                })
            })
            .collect();
        // The costliest first.
        #[expect(clippy::cast_precision_loss, reason = "an order only")]
        stats.sort_by(|a, b| (b.runs as f64 * b.mean_ns).total_cmp(&(a.runs as f64 * a.mean_ns)));
        stats
    }

    /// The per-process counts kept in the kernel (count-only mode; empty
    /// otherwise).
    ///
    /// # Errors
    /// When the map cannot be read.
    pub fn process_counts(&self) -> Result<Vec<CountedProcess>, ProbeError> {
        self.proc_counts.as_ref().map_or(Ok(Vec::new()), |map| {
            stats::process_counts(map).map_err(|e| ProbeError::Load(e.to_string()))
        })
    }

    /// The user stack map, when `--stacks` asked for stacks.
    pub fn take_stacks(&mut self) -> Option<StackTraceMap<MapData>> {
        self.stacks.take()
    }

    /// The programs attached (optional rows the kernel lacks are absent).
    #[must_use]
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    /// Adds `pid` (a tgid) and, through the fork probe, its future
    /// descendants to the follow set.
    ///
    /// # Errors
    /// When the follow set is full.
    pub fn follow(&mut self, pid: u32) -> Result<(), ProbeError> {
        self.targets
            .insert(pid, 1, 0)
            .map_err(|e| ProbeError::Follow {
                pid,
                reason: e.to_string(),
            })
    }

    /// Waits up to `timeout` for events. Returns whether some are ready.
    #[must_use]
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut fd = libc::pollfd {
            fd: self.events.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&raw mut fd, 1, millis) };
        rc > 0
    }

    /// Hands up to `limit` queued records to `sink`, as the kernel wrote
    /// them. Returns how many there were.
    pub fn drain(&mut self, limit: usize, mut sink: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(item) = self.events.next() else {
                break;
            };
            sink(&item);
            n += 1;
        }
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
        n
    }

    /// How many records the ring buffer holds at most: a bound for the
    /// last drain.
    #[must_use]
    pub fn ring_capacity_records(&self) -> usize {
        self.ringbuf_bytes as usize / size_of::<FaultEvent>().min(size_of::<FileRecord>()) + 1
    }

    /// The programs' counters, summed over CPUs.
    ///
    /// # Errors
    /// When the maps cannot be read.
    pub fn stats(&self) -> Result<ProbeStats, ProbeError> {
        let mut stats = ProbeStats::read(&self.stats, &self.kinds)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        stats.recursion_misses = self
            .ebpf
            .programs()
            .filter(|(name, _)| self.attached.contains(name) && stats::sees_faults(name))
            .filter_map(|(_, program)| {
                stats::recursion_misses(std::os::fd::AsFd::as_fd(program.fd().ok()?))
            })
            .sum();
        Ok(stats)
    }
}

/// The errno of the first OS error in `err`'s chain of causes.
#[must_use]
pub fn errno_of(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(errno) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(errno);
        }
        cause = err.source();
    }
    None
}

/// A failed load, told apart by its errno (never by message text, which
/// carries the verifier's log).
fn load_error(err: &aya::EbpfError) -> ProbeError {
    if errno_of(err) == Some(libc::EPERM) {
        return ProbeError::Privileges;
    }
    let text = err.to_string();
    let detail = std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_default();
    ProbeError::Load(if detail.is_empty() || text.contains(&detail) {
        text
    } else {
        format!("{text}: {detail}")
    })
}

#[cfg(test)]
mod tests {
    use aya::programs::ProgramError;

    use super::*;

    fn load_failure(errno: i32, log: &str) -> aya::EbpfError {
        aya::EbpfError::ProgramError(ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(errno),
            verifier_log: aya_obj::VerifierLog::new(log.to_owned()),
        })
    }

    #[test]
    fn load_errors_are_told_apart_by_errno_not_text() {
        assert!(matches!(
            load_error(&load_failure(libc::EPERM, "")),
            ProbeError::Privileges
        ));
        // A verifier log that quotes the text of EPERM is not a privileges
        // problem.
        let err = load_failure(
            libc::EINVAL,
            "R1 invalid mem access; Operation not permitted in this context",
        );
        assert!(matches!(load_error(&err), ProbeError::Load(_)));
        assert_eq!(errno_of(&load_failure(libc::E2BIG, "")), Some(libc::E2BIG));
        assert_eq!(errno_of(&ProbeError::Privileges), None);
    }
}
