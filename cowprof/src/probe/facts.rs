//! The checks that decide what this kernel offers, against the rows of the
//! compatibility table (`strategy`), from facts read once.
use std::{cell::OnceCell, fs, path::Path};

use serde::Serialize;

use super::{
    requirements::{Property, Requirement, Without, EXCLUSIONS, REQUIREMENTS},
    strategy::{Check, ProbeSpec, Strategy},
};
use crate::kernel::{btf::KernelBtf, preempt, tracefs};

/// What the checks found for one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub ok: bool,
    /// Why not, and how to fix it, when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CheckResult {
    fn pass() -> Self {
        Self {
            ok: true,
            reason: None,
        }
    }

    fn fail(reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            reason: Some(reason.into()),
        }
    }
}

/// Facts about the running kernel the checks consult, read once.
pub struct KernelFacts {
    pub release: String,
    pub version: (u32, u32),
    pub btf: Option<KernelBtf>,
    /// Read on first use: both files are large, and the kernel generates
    /// them slowly (a second each under emulation).
    kallsyms: OnceCell<String>,
    /// `None` when `available_filter_functions` cannot be read.
    filter_functions: OnceCell<Option<String>>,
    pub kprobe_pmu: bool,
    /// `None` when no source tells.
    pub preemption: Option<preempt::Model>,
}

impl KernelFacts {
    /// Facts of a kernel known only by its release (no BTF), for tests.
    #[cfg(test)]
    pub(crate) fn of_release(release: &str) -> Self {
        Self {
            release: release.to_owned(),
            version: parse_version(release),
            btf: None,
            kallsyms: OnceCell::new(),
            filter_functions: OnceCell::new(),
            kprobe_pmu: true,
            preemption: None,
        }
    }

    /// Reads what the checks need from /proc and /sys.
    #[must_use]
    pub fn read() -> Self {
        let release = crate::kernel::release();
        Self {
            version: parse_version(&release),
            preemption: preempt::read(&release),
            release,
            btf: KernelBtf::open().ok(),
            kallsyms: OnceCell::new(),
            filter_functions: OnceCell::new(),
            kprobe_pmu: Path::new("/sys/bus/event_source/devices/kprobe/type").exists(),
        }
    }

    fn kallsyms(&self) -> &str {
        self.kallsyms
            .get_or_init(|| fs::read_to_string("/proc/kallsyms").unwrap_or_default())
    }

    fn in_kallsyms(&self, name: &str) -> bool {
        kallsyms_has_text(self.kallsyms(), name)
    }

    /// `[start, end)` of kernel text function `name`: its address, and the
    /// next symbol's. `None` when /proc/kallsyms hides addresses or lacks it.
    #[must_use]
    pub fn text_range(&self, name: &str) -> Option<[u64; 2]> {
        kallsyms_text_range(self.kallsyms(), name)
    }

    fn traceable(&self, name: &str) -> Option<bool> {
        let list = self.filter_functions.get_or_init(|| {
            fs::read_to_string("/sys/kernel/tracing/available_filter_functions").ok()
        });
        list.as_ref().map(|list| {
            list.lines()
                .any(|line| line.split_whitespace().next() == Some(name))
        })
    }

    /// Runs one row's checks.
    #[must_use]
    pub fn check(&self, spec: &ProbeSpec) -> CheckResult {
        if !spec.applies_to(self.version) {
            let reason = match (spec.until, spec.since) {
                (Some(until), _) if self.version >= until => format!(
                    "not used from Linux {}.{} on: its classic tracepoint twin is",
                    until.0, until.1
                ),
                (_, Some(since)) => format!(
                    "used from Linux {}.{} on, in place of its tp_btf twin",
                    since.0, since.1
                ),
                _ => "not used on this kernel".to_owned(),
            };
            return CheckResult::fail(reason);
        }
        if self.version < spec.min_kernel {
            return CheckResult::fail(format!(
                "needs Linux {}.{}+, this is {}",
                spec.min_kernel.0, spec.min_kernel.1, self.release
            ));
        }
        let Some(btf) = &self.btf else {
            return CheckResult::fail(
                "no kernel BTF; use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            );
        };
        match spec.check {
            Check::BtfFunc(name) => {
                if !btf.has_func(name) {
                    return CheckResult::fail(format!(
                        "{name} is not in kernel BTF (inlined or renamed)"
                    ));
                }
                match self.traceable(name) {
                    Some(false) => CheckResult::fail(format!(
                        "{name} is not in available_filter_functions (not traceable)"
                    )),
                    _ => CheckResult::pass(),
                }
            }
            Check::Kallsyms(name) => {
                if !self.kprobe_pmu {
                    CheckResult::fail(
                        "no kprobe support (kernel built without CONFIG_KPROBES or the kprobe PMU)",
                    )
                } else if !self.in_kallsyms(name) {
                    CheckResult::fail(format!("{name} is not in /proc/kallsyms (inlined)"))
                } else {
                    CheckResult::pass()
                }
            }
            Check::Tracepoint(name) => {
                if btf.has_type(&format!("btf_trace_{name}")) {
                    CheckResult::pass()
                } else {
                    CheckResult::fail(format!("tracepoint {name} is not in kernel BTF"))
                }
            }
            Check::TracefsEvent(event) => {
                if tracefs::has_event(event) {
                    CheckResult::pass()
                } else {
                    CheckResult::fail(format!(
                        "no tracefs event {event} (is tracefs mounted at {}?)",
                        tracefs::TRACEFS
                    ))
                }
            }
            Check::PerfSoftware => CheckResult::pass(),
            Check::Iterator(name) => {
                if btf.has_type(&format!("bpf_iter__{name}")) {
                    CheckResult::pass()
                } else {
                    CheckResult::fail(format!("no BPF {name} iterator in kernel BTF"))
                }
            }
        }
    }

    /// Whether this kernel has `requirement`.
    #[must_use]
    pub fn has_requirement(&self, requirement: &Requirement) -> bool {
        self.version >= requirement.min_kernel
    }

    /// The requirements this kernel lacks.
    pub fn missing(&self) -> impl Iterator<Item = &'static Requirement> + '_ {
        REQUIREMENTS
            .iter()
            .filter(move |r| !self.has_requirement(r))
    }

    /// The requirements the legacy object stands in for here; the object
    /// is used when there is any.
    #[must_use]
    pub fn legacy_fallbacks(&self) -> Vec<&'static Requirement> {
        self.missing()
            .filter(|r| matches!(r.without, Without::Legacy(_)))
            .collect()
    }

    /// Whether the running kernel has `property`; `None` when unknown.
    #[must_use]
    pub fn property(&self, property: Property) -> Option<bool> {
        match property {
            Property::PreemptibleKernel => {
                self.preemption.map(|found| found.model.preempts_kernel())
            }
        }
    }

    /// Whether the running kernel is known to have `property`.
    #[must_use]
    pub fn has(&self, property: Property) -> bool {
        self.property(property) == Some(true)
    }

    /// Whether every required row of `strategy` passes its static checks;
    /// the first failure otherwise.
    #[must_use]
    pub fn strategy_check(&self, strategy: Strategy, latency: bool) -> CheckResult {
        if let Some(missing) = self.missing().find(|r| match r.without {
            Without::Unavailable(strategies) => strategies.contains(&strategy),
            Without::Legacy(_) => false,
        }) {
            return CheckResult::fail(format!(
                "needs {}, Linux {}.{}+: used for {}; this is {}",
                missing.feature,
                missing.min_kernel.0,
                missing.min_kernel.1,
                missing.used_for,
                self.release
            ));
        }
        if let Some(excluded) = EXCLUSIONS
            .iter()
            .find(|e| e.strategy == strategy && self.has(e.property))
        {
            let model = self
                .preemption
                .map_or("unknown", |found| found.model.name());
            return CheckResult::fail(format!(
                "{} (preempt={model}): {}",
                excluded.what, excluded.why
            ));
        }
        strategy
            .probes()
            .filter(|spec| spec.required && spec.used(latency) && spec.applies_to(self.version))
            .map(|spec| (spec, self.check(spec)))
            .find(|(_, result)| !result.ok)
            .map_or_else(CheckResult::pass, |(spec, result)| {
                CheckResult::fail(format!(
                    "{}: {}",
                    spec.hook,
                    result.reason.unwrap_or_default()
                ))
            })
    }
}

/// "6.12.117+deb12-cloud-amd64" → (6, 12).
#[must_use]
pub fn parse_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether `/proc/kallsyms` text has text symbol `name`.
#[must_use]
pub fn kallsyms_has_text(kallsyms: &str, name: &str) -> bool {
    kallsyms.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, kind, sym) = (fields.next(), fields.next(), fields.next());
        sym == Some(name) && kind.is_some_and(|k| k.eq_ignore_ascii_case("t"))
    })
}

/// `[start, end)` of text symbol `name` in `/proc/kallsyms` text: its
/// address, and the next symbol's.
#[must_use]
pub fn kallsyms_text_range(kallsyms: &str, name: &str) -> Option<[u64; 2]> {
    fn parse(line: &str) -> Option<(u64, &str, &str)> {
        let mut fields = line.split_whitespace();
        let address = u64::from_str_radix(fields.next()?, 16).ok()?;
        let kind = fields.next()?;
        Some((address, kind, fields.next()?))
    }
    let start = kallsyms
        .lines()
        .filter_map(parse)
        .find(|&(address, kind, sym)| {
            sym == name && address != 0 && kind.eq_ignore_ascii_case("t")
        })?
        .0;
    let end = kallsyms
        .lines()
        .filter_map(parse)
        .map(|(address, _, _)| address)
        .filter(|&address| address > start)
        .min()?;
    Some([start, end])
}
