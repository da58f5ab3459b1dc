//! Loading, attaching and reading the eBPF probes.
mod attach;
mod stats;

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    time::Duration,
};

use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    Ebpf, EbpfLoader,
};
use cowprof_common::{Config, FaultEvent};

pub use self::stats::ProbeStats;
use crate::kernel::{self, btf::KernelBtf};

/// The eBPF object built by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowprof"));

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
    #[error("attaching {program} to {point} failed: {reason}; run `cowprof doctor` to see what this kernel supports")]
    Attach {
        program: &'static str,
        point: String,
        reason: String,
    },
    #[error("following pid {pid} failed: {reason}")]
    Follow { pid: u32, reason: String },
}

impl ProbeError {
    /// Whether the error comes from missing privileges rather than the kernel.
    #[must_use]
    pub fn is_privileges(&self) -> bool {
        matches!(self, ProbeError::Privileges)
    }
}

/// What to trace.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    /// Trace every process instead of the follow set.
    pub system_wide: bool,
    /// Ring buffer size in bytes (a power of two).
    pub ringbuf_bytes: u32,
    /// Forward the programs' aya-log diagnostics to the log.
    pub debug: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            system_wide: false,
            ringbuf_bytes: DEFAULT_RINGBUF_BYTES,
            debug: false,
        }
    }
}

/// Loaded and attached probes.
pub struct Probes {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    targets: HashMap<MapData, u32, u8>,
    stats: PerCpuArray<MapData, u64>,
    kinds: PerCpuArray<MapData, u64>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    strategy: &'static str,
}

impl Probes {
    /// Loads the programs and attaches them with the tracepoint strategy.
    ///
    /// # Errors
    /// Without privileges, without BTF, or when the kernel refuses a program.
    pub fn load(options: ProbeOptions) -> Result<Self, ProbeError> {
        if !kernel::privileges::can_trace() {
            return Err(ProbeError::Privileges);
        }
        let bytes = options.ringbuf_bytes;
        if bytes < 4096 || !bytes.is_power_of_two() {
            return Err(ProbeError::RingbufSize(bytes));
        }
        // tracefs is not needed by these programs, but users of a tracer
        // expect it; mount it when we can and carry on when we cannot.
        if let Err(err) = kernel::tracefs::ensure_mounted() {
            log::warn!("tracefs is not mounted and mounting it failed: {err}");
        }
        let kernel_btf = KernelBtf::open()?;
        let config = Config {
            self_tgid: std::process::id(),
            system_wide: u32::from(options.system_wide),
            debug: u32::from(options.debug),
            wakeup_bytes: bytes / 4,
            offsets: kernel_btf.offsets()?,
        };
        let mut ebpf = EbpfLoader::new()
            // aya has no typed wrapper for task storage (PENDING); it is
            // created from the object's BTF definition and used only by the
            // programs.
            .allow_unsupported_maps()
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| load_error(&e))?;
        let logger = if options.debug {
            aya_log::EbpfLogger::init(&mut ebpf)
                .inspect_err(|e| log::warn!("eBPF logging unavailable: {e}"))
                .ok()
        } else {
            None
        };
        attach::tracepoint_strategy(&mut ebpf)?;
        let mut map = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| ProbeError::Load(format!("the object has no map {name}")))
        };
        let events =
            RingBuf::try_from(map("EVENTS")?).map_err(|e| ProbeError::Load(e.to_string()))?;
        let targets =
            HashMap::try_from(map("TARGETS")?).map_err(|e| ProbeError::Load(e.to_string()))?;
        let stats =
            PerCpuArray::try_from(map("STATS")?).map_err(|e| ProbeError::Load(e.to_string()))?;
        let kinds = PerCpuArray::try_from(map("KIND_COUNTS")?)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        Ok(Self {
            ebpf,
            events,
            targets,
            stats,
            kinds,
            logger,
            strategy: "tracepoint",
        })
    }

    /// The probe strategy in use.
    #[must_use]
    pub fn strategy(&self) -> &'static str {
        self.strategy
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

    /// Hands every queued event to `sink`. Returns how many there were.
    pub fn drain(&mut self, mut sink: impl FnMut(&FaultEvent)) -> usize {
        let mut n = 0;
        while let Some(item) = self.events.next() {
            if item.len() >= size_of::<FaultEvent>() {
                // SAFETY: the kernel wrote a FaultEvent; read unaligned.
                let event = unsafe { item.as_ptr().cast::<FaultEvent>().read_unaligned() };
                sink(&event);
                n += 1;
            }
        }
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
        n
    }

    /// The programs' counters, summed over CPUs.
    ///
    /// # Errors
    /// When the maps cannot be read.
    pub fn stats(&self) -> Result<ProbeStats, ProbeError> {
        ProbeStats::read(&self.stats, &self.kinds).map_err(|e| ProbeError::Load(e.to_string()))
    }

    /// Programs loaded, for diagnostics.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.ebpf.programs().map(|(name, _)| name)
    }
}

fn load_error(err: &aya::EbpfError) -> ProbeError {
    let text = err.to_string();
    let source = std::error::Error::source(err).map(ToString::to_string);
    let detail = source.unwrap_or_default();
    if detail.contains("Operation not permitted") || text.contains("Operation not permitted") {
        return ProbeError::Privileges;
    }
    ProbeError::Load(if detail.is_empty() || text.contains(&detail) {
        text
    } else {
        format!("{text}: {detail}")
    })
}
