//! Attaching the tracepoint strategy's programs (DESIGN.md §3).
use aya::{
    programs::{
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
        BtfTracePoint, PerfEvent,
    },
    Btf, Ebpf,
};

use super::ProbeError;

/// BTF tracepoints: program name and tracepoint.
const BTF_TRACEPOINTS: [(&str, &str); 5] = [
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exit", "sched_process_exit"),
    ("mm_page_alloc", "mm_page_alloc"),
    ("rss_stat", "rss_stat"),
    // Entry last: every fault it opens can then be seen to completion.
    ("page_fault_user", "page_fault_user"),
];

/// Programs named in `COWPROF_SKIP_PROGRAMS` (comma-separated) are not
/// attached. This is a benchmarking knob for measuring what each program
/// costs (`cargo xtask bench`); the results are then incomplete.
fn skipped(program: &str) -> bool {
    std::env::var("COWPROF_SKIP_PROGRAMS")
        .is_ok_and(|list| list.split(',').any(|p| p.trim() == program))
}

/// Loads and attaches every program of the tracepoint strategy.
pub(super) fn tracepoint_strategy(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Load(format!("kernel BTF: {e}")))?;
    let cpus = aya::util::online_cpus()
        .map_err(|(what, e)| ProbeError::Load(format!("reading {what}: {e}")))?;
    perf_events(
        ebpf,
        "fault_done",
        &[SoftwareEvent::PageFaultsMin, SoftwareEvent::PageFaultsMaj],
        &cpus,
    )?;
    for (program, tracepoint) in BTF_TRACEPOINTS {
        if skipped(program) {
            continue;
        }
        let attach_err = |reason: String| ProbeError::Attach {
            program,
            point: format!("tp_btf/{tracepoint}"),
            reason,
        };
        let prog: &mut BtfTracePoint = ebpf
            .program_mut(program)
            .ok_or_else(|| attach_err("missing from the object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| attach_err(e.to_string()))?;
        prog.load(tracepoint, &btf)
            .map_err(|e| attach_err(verifier_reason(&e)))?;
        prog.attach().map_err(|e| attach_err(e.to_string()))?;
    }
    Ok(())
}

/// Attaches `program` to the software events on every CPU, one sample per
/// event.
fn perf_events(
    ebpf: &mut Ebpf,
    program: &'static str,
    events: &[SoftwareEvent],
    cpus: &[u32],
) -> Result<(), ProbeError> {
    if skipped(program) {
        return Ok(());
    }
    let attach_err = |point: String, reason: String| ProbeError::Attach {
        program,
        point,
        reason,
    };
    let prog: &mut PerfEvent = ebpf
        .program_mut(program)
        .ok_or_else(|| attach_err("perf_event".into(), "missing from the object".into()))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| attach_err("perf_event".into(), e.to_string()))?;
    prog.load()
        .map_err(|e| attach_err("perf_event".into(), verifier_reason(&e)))?;
    for &event in events {
        for &cpu in cpus {
            prog.attach(
                PerfEventConfig::Software(event),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Period(1),
                false,
            )
            .map_err(|e| {
                attach_err(
                    format!("software event {event:?} on cpu {cpu}"),
                    e.to_string(),
                )
            })?;
        }
    }
    Ok(())
}

/// The verifier's last lines, which say why a program was rejected.
fn verifier_reason(err: &aya::programs::ProgramError) -> String {
    match err {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{io_error}; verifier: {}", tail.join(" | "))
        }
        other => other.to_string(),
    }
}
