//! The eBPF objects, and the configuration they are loaded with: which
//! object this kernel takes, the values of `Config` (offsets from BTF and
//! from tracefs formats), and taking typed maps out of the loaded object.
use aya::{Ebpf, EbpfLoader};
use cowprof_common::Config;

use super::{
    facts::KernelFacts,
    load_error,
    requirements::Requirement,
    strategy::{self, Strategy},
    ProbeError, ProbeOptions,
};
use crate::kernel;

/// The eBPF object built by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowprof"));

/// The same programs for kernels without task storage or `bpf_find_vma`
/// (`requirements::Without::Legacy`).
static EBPF_LEGACY: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowprof-legacy"));

/// Threads the legacy object keeps state for at once (its `TASK_STATES`
/// hash, preallocated: 32,768 × about 420 bytes).
const LEGACY_TASKS: u32 = 32_768;

/// The programs' configuration for `strategy`: with in-kernel attribution,
/// and without (the lite set, which count-only mode always uses).
pub(super) fn configs(
    options: &ProbeOptions,
    strategy: Strategy,
    facts: &KernelFacts,
    offsets: cowprof_common::Offsets,
    tracepoints: cowprof_common::TpOffsets,
) -> (Config, Config) {
    let latency = options.measures_latency();
    let lazy = strategy.lazy(latency);
    // Lazy completion binds allocations to kernel-mode faults by finding
    // exc_page_fault() on the kernel stack.
    let exc_page_fault = if lazy {
        facts.text_range("exc_page_fault").unwrap_or_else(|| {
            log::warn!("exc_page_fault is not in /proc/kallsyms: allocations in a syscall are bound to its kernel-mode fault by the syscall alone");
            [0, 0]
        })
    } else {
        [0, 0]
    };
    let full = Config {
        self_tgid: std::process::id(),
        system_wide: u32::from(options.system_wide),
        debug: u32::from(options.debug),
        wakeup_bytes: options.ringbuf_bytes / 4,
        stacks: u32::from(options.stacks),
        attribution: 1,
        emit: u32::from(!options.count_only),
        latency: u32::from(latency),
        lazy: u32::from(lazy),
        _pad: 0,
        offsets,
        exc_page_fault,
        tracepoints,
    };
    let lite = Config {
        attribution: 0,
        stacks: 0,
        ..full
    };
    (full, lite)
}

/// Loads the eBPF object with `config`: the legacy one where the kernel
/// lacks what it stands in for (`fallbacks`), else the default.
pub(super) fn load_object(
    fallbacks: &[&Requirement],
    config: &Config,
    ringbuf_bytes: u32,
) -> Result<Ebpf, ProbeError> {
    let mut loader = EbpfLoader::new();
    // aya has no typed wrapper for task storage (TASK_STATE); it is created
    // from the object's BTF definition and used only by the programs.
    loader
        .allow_unsupported_maps()
        .override_global("CONFIG", config, true)
        .map_max_entries("EVENTS", ringbuf_bytes);
    let object = if fallbacks.is_empty() {
        EBPF_OBJECT
    } else {
        let names: Vec<&str> = fallbacks.iter().map(|r| r.feature).collect();
        log::info!(
            "the kernel lacks {}: loading the legacy object",
            names.join(", ")
        );
        loader.map_max_entries("TASK_STATES", LEGACY_TASKS);
        EBPF_LEGACY
    };
    loader.load(object).map_err(|e| load_error(&e))
}

/// The classic tracepoint records' field offsets, from tracefs, where this
/// kernel uses those programs (`strategy::CLASSIC_TRACEPOINTS`); zeros
/// elsewhere. An event the kernel lacks leaves its fields at zero (its rows
/// fail their check); a field missing from an event it has is an error.
pub(super) fn tracepoint_offsets(
    facts: &KernelFacts,
) -> Result<cowprof_common::TpOffsets, ProbeError> {
    if facts.version < strategy::CLASSIC_TRACEPOINTS {
        return Ok(cowprof_common::TpOffsets::default());
    }
    let field = |event: &str, field: &str| -> Result<u32, ProbeError> {
        if !kernel::tracefs::has_event(event) {
            return Ok(0);
        }
        kernel::tracefs::field_offset(event, field).ok_or_else(|| {
            ProbeError::Load(format!(
                "the tracefs format of {event} has no field {field}; run `cowprof doctor`"
            ))
        })
    };
    let fault = "exceptions/page_fault_user";
    Ok(cowprof_common::TpOffsets {
        page_alloc_order: field("kmem/mm_page_alloc", "order")?,
        page_alloc_gfp: field("kmem/mm_page_alloc", "gfp_flags")?,
        rss_member: field("kmem/rss_stat", "member")?,
        fork_child_pid: field("sched/sched_process_fork", "child_pid")?,
        fault_address: field(fault, "address")?,
        fault_ip: field(fault, "ip")?,
        fault_error_code: field(fault, "error_code")?,
        mmap_lock_mm: field("mmap_lock/mmap_lock_start_locking", "mm")?,
    })
}

/// Takes map `name` out of the loaded object as a typed map.
pub(super) fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map>,
    T::Error: std::fmt::Display,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| ProbeError::Load(format!("the object has no map {name}")))?;
    T::try_from(map).map_err(|e| ProbeError::Load(format!("map {name}: {e}")))
}
