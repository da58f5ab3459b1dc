//! `cargo xtask vm-test`: the kernel matrix. Boots Debian's current 5.10,
//! 6.1, 6.12 and newest 7.x cloud kernels under qemu (TCG; KVM does not
//! work on this host), runs
//! the live suite once per probe strategy inside each, plus `cowprof
//! doctor`, a latency sample and a cost sample, and reports a kernel ×
//! strategy table. docs/kernel.md §7 has the recipe this follows.
mod guest;
mod host;

use std::{fmt::Write as _, time::Instant};

use anyhow::{bail, Result};

use crate::setup::Env;

/// The strategies, in the order the guest runs them.
pub const STRATEGIES: [&str; 3] = ["fentry", "kprobe", "tracepoint"];

/// What one strategy did on one kernel.
#[derive(Clone, Debug)]
pub enum Outcome {
    Pass,
    Fail(String),
    Unavailable(String),
    Missing,
}

impl Outcome {
    fn cell(&self) -> String {
        match self {
            Outcome::Pass => "pass".into(),
            Outcome::Fail(_) => "FAIL".into(),
            Outcome::Unavailable(why) => format!("unavailable ({why})"),
            Outcome::Missing => "did not run".into(),
        }
    }
}

/// One kernel's results.
pub struct KernelResult {
    pub kernel: String,
    pub outcomes: Vec<(String, Outcome)>,
    pub doctor_chosen: Option<String>,
    /// The eBPF object doctor says loads (`default` or `legacy`).
    pub object: Option<String>,
    /// The preemption model doctor read, if any.
    pub preemption: Option<String>,
    /// Lines the guest printed about latency and cost.
    pub measurements: Vec<String>,
    pub seconds: f64,
}

impl KernelResult {
    fn passed(&self) -> bool {
        self.outcomes
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Pass | Outcome::Unavailable(_)))
    }
}

/// Runs the matrix. A kernel whose guest already passed with byte-identical
/// inputs (kernel, binaries, init script) is not booted again unless
/// `fresh`: its console log is reused, which keeps the warm path quick.
pub fn run(env: &Env, only: Option<&str>, fresh: bool) -> Result<()> {
    let started = Instant::now();
    host::ensure_packages()?;
    let kernels = host::ensure_kernels(only)?;
    let bins = host::build_static(env)?;
    let mut prepared = Vec::new();
    for kernel in &kernels {
        let initramfs = guest::initramfs(kernel, &bins)?;
        let key = host::input_key(kernel, &initramfs.root)?;
        prepared.push((kernel, initramfs, key));
    }
    // Guests boot GUESTS_AT_ONCE at a time, each a two-vCPU qemu: more at
    // once only slow each other down on this 2-core host, and stretch
    // each guest towards its timeout.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<KernelResult>>>> = prepared
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..GUESTS_AT_ONCE.min(prepared.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((kernel, initramfs, key)) = prepared.get(i) else {
                    break;
                };
                let result = run_guest(kernel, initramfs, key, fresh);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    let results = slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow::anyhow!("a guest thread panicked")))
        })
        .collect::<Result<Vec<_>>>()?;
    let table = table(&results);
    print!("{table}");
    for result in &results {
        for line in &result.measurements {
            println!("{}: {line}", result.kernel);
        }
    }
    println!("vm-test took {:.0} s", started.elapsed().as_secs_f64());
    // The README's table is the whole matrix's: a run of one series
    // (`--kernel`) prints its rows without replacing it.
    if only.is_none() {
        crate::readme::replace_section(BEGIN, END, &table)?;
    }
    let failures: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.outcomes.iter().filter_map(move |(s, o)| match o {
                Outcome::Fail(why) => Some(format!("{} / {s}: {why}", r.kernel)),
                Outcome::Missing => Some(format!(
                    "{} / {s}: did not run (guest crashed or timed out)",
                    r.kernel
                )),
                _ => None,
            })
        })
        .collect();
    if !failures.is_empty() {
        bail!("the VM matrix failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// How many guests run at once.
const GUESTS_AT_ONCE: usize = 2;

/// Boots one guest, or reuses the log of an earlier pass with the same
/// inputs, and reads its markers.
fn run_guest(
    kernel: &host::Kernel,
    initramfs: &guest::Initramfs,
    key: &str,
    fresh: bool,
) -> Result<KernelResult> {
    let boot = Instant::now();
    let log = match host::cached_pass(key) {
        Some(log) if !fresh => {
            eprintln!(
                "xtask: {} passed with these exact inputs before; reusing that run (--fresh boots again)",
                kernel.release
            );
            log
        }
        _ => {
            eprintln!("xtask: booting {} under qemu (TCG)", kernel.release);
            host::boot(kernel, &initramfs.image)?
        }
    };
    let mut result = guest::parse(&kernel.release, &log);
    if result.passed() {
        host::remember_pass(key, &log)?;
    }
    result.seconds = boot.elapsed().as_secs_f64();
    eprintln!("xtask: {} done in {:.0} s", kernel.release, result.seconds);
    Ok(result)
}

/// The kernel × strategy table, in markdown.
fn table(results: &[KernelResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| kernel | {} | doctor chooses | eBPF object | preemption |",
        STRATEGIES.join(" | ")
    );
    let _ = writeln!(out, "|---|{}---|---|---|", "---|".repeat(STRATEGIES.len()));
    for r in results {
        let cells: Vec<String> = STRATEGIES
            .iter()
            .map(|s| {
                r.outcomes
                    .iter()
                    .find(|(name, _)| name == s)
                    .map_or_else(|| Outcome::Missing.cell(), |(_, o)| o.cell())
            })
            .collect();
        let object = match r.object.as_deref() {
            Some("legacy") => "legacy (no task storage, no bpf_find_vma)",
            Some(other) => other,
            None => "?",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {object} | {} |",
            r.kernel,
            cells.join(" | "),
            r.doctor_chosen.as_deref().unwrap_or("?"),
            r.preemption.as_deref().unwrap_or("unknown")
        );
    }
    out
}

const BEGIN: &str = "<!-- vm-support:begin (generated by cargo xtask vm-test) -->";
const END: &str = "<!-- vm-support:end -->";
