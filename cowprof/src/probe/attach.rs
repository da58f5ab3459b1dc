//! Attaching one strategy's rows of the compatibility table.
use aya::{
    programs::{
        perf_event::{self, PerfEventConfig, PerfEventScope, SamplePolicy},
        BtfTracePoint, FEntry, FExit, Iter, KProbe, PerfEvent, ProgramError, TracePoint,
    },
    Btf, Ebpf,
};

use super::{
    facts::KernelFacts,
    strategy::{Hook, ProbeSpec, SoftwareEvent, Strategy},
    ProbeError,
};

/// Programs named in `COWPROF_SKIP_PROGRAMS` (comma-separated) are not
/// attached. This is a benchmarking knob for measuring what each program
/// costs; the results are then incomplete.
fn skipped(program: &str) -> bool {
    std::env::var("COWPROF_SKIP_PROGRAMS")
        .is_ok_and(|list| list.split(',').any(|p| p.trim() == program))
}

/// Loads and attaches every usable row of `strategy`. Optional rows that the
/// kernel lacks are left out; a required row that fails fails the strategy.
pub(super) fn strategy(
    ebpf: &mut Ebpf,
    strategy: Strategy,
    latency: bool,
    facts: &KernelFacts,
    btf: &Btf,
) -> Result<Vec<&'static str>, ProbeError> {
    let cpus = aya::util::online_cpus()
        .map_err(|(what, e)| ProbeError::Load(format!("reading {what}: {e}")))?;
    let unavailable = |spec: &ProbeSpec, failure: Failure| ProbeError::Unavailable {
        strategy,
        reason: format!("{} ({}): {}", spec.hook, spec.program, failure.reason),
        errno: failure.errno,
    };
    let mut attached = Vec::new();
    for spec in strategy
        .probes()
        .filter(|spec| spec.used(latency) && spec.applies_to(facts.version))
    {
        if skipped(spec.program) {
            continue;
        }
        let checked = facts.check(spec);
        if !checked.ok {
            if spec.required {
                return Err(unavailable(spec, checked.reason.unwrap_or_default().into()));
            }
            log::info!(
                "{strategy}: leaving out optional {}: {:?}",
                spec.hook,
                checked.reason
            );
            continue;
        }
        let started = std::time::Instant::now();
        let result = one(ebpf, spec, btf, &cpus);
        log::debug!(
            "{}: {} took {:?}, {:?} instructions verified",
            spec.program,
            spec.hook,
            started.elapsed(),
            ebpf.program(spec.program)
                .and_then(|p| p.info().ok())
                .and_then(|i| i.verified_instruction_count())
        );
        match result {
            Ok(()) => attached.push(spec.program),
            Err(reason) if spec.required => return Err(unavailable(spec, reason)),
            Err(failure) => log::info!(
                "{strategy}: optional {} failed: {}",
                spec.hook,
                failure.reason
            ),
        }
    }
    Ok(attached)
}

/// Why a row failed, and the errno of the syscall that failed, if one did.
pub(super) struct Failure {
    reason: String,
    errno: Option<i32>,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Self {
            reason,
            errno: None,
        }
    }
}

impl From<&ProgramError> for Failure {
    fn from(err: &ProgramError) -> Self {
        Self {
            reason: attach_reason(err),
            errno: super::errno_of(err),
        }
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, Failure>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| Failure::from("missing from the eBPF object".to_owned()))?
        .try_into()
        .map_err(|e: ProgramError| Failure::from(&e))
}

/// Loads and attaches one row.
fn one(ebpf: &mut Ebpf, spec: &ProbeSpec, btf: &Btf, cpus: &[u32]) -> Result<(), Failure> {
    let name = spec.program;
    match spec.hook {
        Hook::Fentry(function) => {
            let prog: &mut FEntry = program(ebpf, name)?;
            load_once(prog.load(function, btf))?;
            prog.attach().map(drop).map_err(|e| Failure::from(&e))
        }
        Hook::Fexit(function) => {
            let prog: &mut FExit = program(ebpf, name)?;
            load_once(prog.load(function, btf))?;
            prog.attach().map(drop).map_err(|e| Failure::from(&e))
        }
        Hook::Kprobe(function) | Hook::Kretprobe(function) => {
            let prog: &mut KProbe = program(ebpf, name)?;
            load_once(prog.load())?;
            prog.attach(function, 0)
                .map(drop)
                .map_err(|e| Failure::from(&e))
        }
        Hook::BtfTracepoint(tracepoint) => {
            let prog: &mut BtfTracePoint = program(ebpf, name)?;
            load_once(prog.load(tracepoint, btf))?;
            prog.attach().map(drop).map_err(|e| Failure::from(&e))
        }
        Hook::Tracepoint(event) => {
            let prog: &mut TracePoint = program(ebpf, name)?;
            load_once(prog.load())?;
            let (category, event) = event.split_once('/').unwrap_or(("", event));
            prog.attach(category, event)
                .map(drop)
                .map_err(|e| Failure::from(&e))
        }
        // Loaded (and so verified) now; run when the recording stops.
        Hook::Iterator(kind) => {
            let prog: &mut Iter = program(ebpf, name)?;
            load_once(prog.load(kind, btf))
        }
        Hook::PerfSoftware(events) => {
            let prog: &mut PerfEvent = program(ebpf, name)?;
            load_once(prog.load())?;
            for &event in events {
                let config = match event {
                    SoftwareEvent::PageFaultsMin => perf_event::SoftwareEvent::PageFaultsMin,
                    SoftwareEvent::PageFaultsMaj => perf_event::SoftwareEvent::PageFaultsMaj,
                };
                for &cpu in cpus {
                    prog.attach(
                        PerfEventConfig::Software(config),
                        PerfEventScope::AllProcessesOneCpu { cpu },
                        SamplePolicy::Period(1),
                        false,
                    )
                    .map_err(|e| {
                        let failure = Failure::from(&e);
                        Failure {
                            reason: format!("{event:?} on cpu {cpu}: {}", failure.reason),
                            ..failure
                        }
                    })?;
                }
            }
            Ok(())
        }
    }
}

/// A program already loaded (shared by two rows) is fine.
fn load_once(result: Result<(), ProgramError>) -> Result<(), Failure> {
    match result {
        Ok(()) | Err(ProgramError::AlreadyLoaded) => Ok(()),
        Err(err) => Err(Failure {
            reason: verifier_reason(&err),
            errno: super::errno_of(&err),
        }),
    }
}

fn attach_reason(err: &ProgramError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The verifier's last lines, which say why a program was rejected: six,
/// or `COWPROF_VERIFIER_LINES` (a debugging knob: the lines before the
/// rejection show the path the verifier took).
fn verifier_reason(err: &ProgramError) -> String {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(
                    std::env::var("COWPROF_VERIFIER_LINES")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(6),
                )
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            if tail.is_empty() {
                format!("loading: {io_error}")
            } else {
                format!("loading: {io_error}; verifier: {}", tail.join(" | "))
            }
        }
        other => attach_reason(other),
    }
}
