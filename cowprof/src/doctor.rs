//! `cowprof doctor`: what this kernel supports, which strategy cowprof
//! would choose and why, and how to fix what is missing.
use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    kernel::{btf::VMLINUX_BTF, preempt, privileges, tracefs},
    probe::{
        facts::KernelFacts,
        requirements::{Exclusion, Requirement, Without, EXCLUSIONS, REQUIREMENTS},
        strategy::{ProbeSpec, Strategy, TABLE},
        ProbeOptions, Probes,
    },
};

/// One exclusion and whether it applies here.
#[derive(Debug, Serialize)]
pub struct ExclusionRow {
    #[serde(flatten)]
    pub exclusion: Exclusion,
    /// `None` when the property cannot be read here.
    pub applies: Option<bool>,
}

/// One requirement and whether this kernel has it.
#[derive(Debug, Serialize)]
pub struct RequirementRow {
    #[serde(flatten)]
    pub requirement: Requirement,
    pub present: bool,
}

/// One strategy's verdict.
#[derive(Debug, Serialize)]
pub struct StrategyReport {
    pub strategy: Strategy,
    pub priority: u8,
    pub available: bool,
    /// Why it is unavailable, or which optional probes it leaves out.
    pub reason: String,
    /// Whether a live load and attach was tried (needs privileges).
    pub attach_tested: bool,
}

/// One row of the compatibility table with its check result.
#[derive(Debug, Serialize)]
pub struct ProbeRow {
    #[serde(flatten)]
    pub spec: ProbeSpec,
    /// Whether the row is for this kernel (`ProbeSpec::applies_to`).
    pub applies: bool,
    pub check_ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_reason: Option<String>,
}

/// Everything doctor found.
#[derive(Debug, Serialize)]
pub struct Doctor {
    pub kernel: String,
    pub arch: &'static str,
    pub btf: bool,
    pub privileged: bool,
    pub tracefs: bool,
    pub strategies: Vec<StrategyReport>,
    pub chosen: Option<Strategy>,
    /// The preemption model and where it was read; `None` when unknown.
    pub preemption: Option<preempt::Model>,
    /// Which eBPF object loads here: `default`, or `legacy` where the
    /// kernel lacks what a [`Without::Legacy`] requirement names.
    pub object: &'static str,
    /// What the programs need beyond their attach points.
    pub requirements: Vec<RequirementRow>,
    /// Kernel properties that rule a strategy out.
    pub exclusions: Vec<ExclusionRow>,
    pub table: Vec<ProbeRow>,
    pub fixes: Vec<String>,
}

impl Doctor {
    /// Examines this machine. With privileges every strategy that passes its
    /// static checks is loaded and attached for real, then detached.
    #[must_use]
    pub fn examine() -> Self {
        let privileged = privileges::can_trace();
        if privileged {
            let _ = tracefs::ensure_mounted();
        }
        let facts = KernelFacts::read();
        let mut strategies = Vec::new();
        for strategy in Strategy::BY_PRIORITY {
            let checked = facts.strategy_check(strategy, false);
            let mut report = StrategyReport {
                strategy,
                priority: strategy.priority(),
                available: checked.ok,
                reason: checked.reason.unwrap_or_default(),
                attach_tested: false,
            };
            if checked.ok && privileged {
                report.attach_tested = true;
                match Probes::load(ProbeOptions {
                    strategy: Some(strategy),
                    ringbuf_bytes: 1 << 16,
                    ..ProbeOptions::default()
                }) {
                    Ok(probes) => {
                        let left_out: Vec<&str> = strategy
                            .probes()
                            .filter(|spec| spec.used(false) && spec.applies_to(facts.version))
                            .filter(|spec| !probes.attached().contains(&spec.program))
                            .map(|spec| spec.program)
                            .collect();
                        if !left_out.is_empty() {
                            report.reason =
                                format!("optional probes left out: {}", left_out.join(", "));
                        }
                    }
                    Err(err) => {
                        report.available = false;
                        report.reason = err.reason();
                    }
                }
            } else if checked.ok {
                report.available = false;
                report.reason = "static checks pass; attaching needs root".into();
            }
            strategies.push(report);
        }
        let chosen = strategies.iter().find(|s| s.available).map(|s| s.strategy);
        let table = TABLE
            .iter()
            .map(|spec| {
                let result = facts.check(spec);
                ProbeRow {
                    spec: *spec,
                    applies: spec.applies_to(facts.version),
                    check_ok: result.ok,
                    check_reason: result.reason,
                }
            })
            .collect();
        let mut doctor = Self {
            kernel: facts.release.clone(),
            arch: std::env::consts::ARCH,
            btf: facts.btf.is_some(),
            privileged,
            tracefs: tracefs::is_mounted(),
            strategies,
            chosen,
            preemption: facts.preemption,
            object: if facts.legacy_fallbacks().is_empty() {
                "default"
            } else {
                "legacy"
            },
            requirements: REQUIREMENTS
                .iter()
                .map(|r| RequirementRow {
                    requirement: *r,
                    present: facts.has_requirement(r),
                })
                .collect(),
            exclusions: EXCLUSIONS
                .iter()
                .map(|e| ExclusionRow {
                    exclusion: *e,
                    applies: facts.property(e.property),
                })
                .collect(),
            table,
            fixes: Vec::new(),
        };
        doctor.fixes = doctor.fixes(&facts);
        doctor
    }

    fn fixes(&self, facts: &KernelFacts) -> Vec<String> {
        let mut fixes = Vec::new();
        if !self.privileged {
            fixes.push("run as root (sudo), or grant CAP_BPF and CAP_PERFMON".to_owned());
        }
        if !self.btf {
            fixes.push(format!(
                "{VMLINUX_BTF} is missing: use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
            ));
        }
        if !self.tracefs {
            fixes.push("mount tracefs: mount -t tracefs nodev /sys/kernel/tracing".to_owned());
        }
        if !facts.kprobe_pmu {
            fixes.push(
                "kprobes: the kernel lacks CONFIG_KPROBES (no kprobe PMU); the tracepoint strategy works without it"
                    .to_owned(),
            );
        }
        let fentry = self
            .strategies
            .iter()
            .find(|s| s.strategy == Strategy::Fentry);
        if fentry.is_some_and(|s| !s.available && s.reason.contains("not permitted")) {
            fixes.push(
                "fentry: the kernel refuses tracing programs (EPERM): it may lack CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS or be locked down; kprobe or tracepoint strategies still work"
                    .to_owned(),
            );
        }
        if self.chosen.is_none() {
            fixes.push("no strategy works: cowprof cannot record on this machine".to_owned());
        }
        fixes
    }

    /// The report as JSON.
    ///
    /// # Panics
    /// Never: the report contains only serializable data.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("doctor report serializes") + "\n"
    }

    /// The report as text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut out = String::new();
        let _ = writeln!(out, "kernel      {} ({})", self.kernel, self.arch);
        let _ = writeln!(out, "BTF         {}", yes(self.btf));
        let _ = writeln!(
            out,
            "privileges  {}",
            if self.privileged {
                "yes (can load tracing programs)"
            } else {
                "no"
            }
        );
        let _ = writeln!(
            out,
            "tracefs     {}",
            if self.tracefs {
                "mounted"
            } else {
                "not mounted"
            }
        );
        let _ = writeln!(
            out,
            "\n{:<11} {:>8}  {:<12} reason",
            "STRATEGY", "PRIORITY", "STATUS"
        );
        for s in &self.strategies {
            let status = if s.available {
                "available"
            } else {
                "unavailable"
            };
            let _ = writeln!(
                out,
                "{:<11} {:>8}  {:<12} {}",
                s.strategy.name(),
                s.priority,
                status,
                s.reason
            );
        }
        let chosen = self.chosen.map_or("none", Strategy::name);
        let _ = writeln!(out, "\nchosen: {chosen}");
        self.requirements_text(&mut out);
        let _ = writeln!(
            out,
            "\n{:<11} {:<26} {:<42} {:>6} {:<8} {:<9} check",
            "STRATEGY", "PROGRAM", "ATTACH POINT", "KERNEL", "REQUIRED", "USED"
        );
        for row in &self.table {
            let check = if row.check_ok {
                "ok".to_owned()
            } else if !row.applies {
                format!("n/a: {}", row.check_reason.as_deref().unwrap_or(""))
            } else {
                format!("FAIL: {}", row.check_reason.as_deref().unwrap_or(""))
            };
            let _ = writeln!(
                out,
                "{:<11} {:<26} {:<42} {:>6} {:<8} {:<9} {}",
                row.spec.strategy.name(),
                row.spec.program,
                row.spec.hook.to_string(),
                format!("{}.{}", row.spec.min_kernel.0, row.spec.min_kernel.1),
                yes(row.spec.required),
                row.spec.when.label(),
                check
            );
        }
        if !self.fixes.is_empty() {
            let _ = writeln!(out, "\nto fix:");
            for fix in &self.fixes {
                let _ = writeln!(out, "  - {fix}");
            }
        }
        out
    }

    /// The preemption model, the object loaded, the requirements and the
    /// exclusions, for [`Doctor::to_text`].
    fn requirements_text(&self, out: &mut String) {
        let preemption = self.preemption.map_or_else(
            || "unknown".to_owned(),
            |found| format!("{} (from {})", found.model.name(), found.source),
        );
        let _ = writeln!(out, "preemption: {preemption}");
        let _ = writeln!(out, "eBPF object: {}", self.object);
        let _ = writeln!(out, "\nthe programs need:");
        for row in &self.requirements {
            let r = &row.requirement;
            let status = match (row.present, r.without) {
                (true, _) => "present".to_owned(),
                (false, Without::Legacy(instead)) => format!("MISSING, instead: {instead}"),
                (false, Without::Unavailable(strategies)) => {
                    let names: Vec<&str> = strategies.iter().map(|s| s.name()).collect();
                    format!("MISSING, so unavailable: {}", names.join(", "))
                }
            };
            let _ = writeln!(
                out,
                "  {:<36} Linux {}.{}+  for {}: {status}",
                r.feature, r.min_kernel.0, r.min_kernel.1, r.used_for
            );
        }
        let _ = writeln!(out, "\nruled out:");
        for row in &self.exclusions {
            let e = &row.exclusion;
            let here = match row.applies {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown (so not ruled out)",
            };
            let _ = writeln!(
                out,
                "  {:<11} where {}: here {here}",
                e.strategy.name(),
                e.property.label()
            );
        }
    }
}
