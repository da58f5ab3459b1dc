//! cowprof's developer tasks, in the manner of aya's own xtask:
//! `cargo xtask setup | run | test | bench | vm-test | lint | cycles | soak |
//! fuzz`.
mod bench;
mod cache;
mod cycles;
mod fuzz;
mod lint;
mod readme;
mod run;
mod setup;
mod soak;
mod test;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "cowprof developer tasks")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install everything the build and tests need (idempotent).
    Setup,
    /// Build cowprof in release mode and run it as root with ARGS.
    Run {
        /// Arguments for cowprof, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test: lints (and no module cycle), unit tests, the live
    /// privileged suite, a 3-minute soak, and the kernel matrix (the live
    /// suite under every strategy on Debian's 5.10, 6.1, 6.12 and newest
    /// 7.x kernels, under qemu).
    Test {
        /// Skip rustfmt and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Measure cowprof's overhead on three workloads against nothing
    /// attached and bpftrace, its sustained rate, CPU, memory and attach
    /// time; writes bench/results.{md,json}.
    Bench {
        /// Interleaved rounds per workload (the host's noise is about ±15%
        /// per run; medians of 15 settle within a few percent).
        #[arg(long, default_value_t = 15)]
        pairs: usize,
        /// Pages the fork-write storm's child writes.
        #[arg(long, default_value_t = 131_072)]
        pages: usize,
        /// COW faults in the two-writer recording.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Run only the `top` benchmarks and print them (the README and
        /// `bench/results.*` are left as they are).
        #[arg(long)]
        only_top: bool,
        /// Run only the exporter's storm benchmark and print it.
        #[arg(long, conflicts_with = "only_top")]
        only_serve: bool,
        /// Run only the benchmarks of reading a profile back (`report`,
        /// `top --replay`) on a fresh two-writer profile, and print them.
        #[arg(long, conflicts_with_all = ["only_top", "only_serve"])]
        only_read: bool,
    },
    /// Boot Debian's 5.10, 6.1, 6.12 and newest 7.x cloud kernels under
    /// qemu and run the live suite under every probe strategy each offers.
    VmTest {
        /// Only this kernel series (5.10, 6.1, 6.12 or 7).
        #[arg(long)]
        kernel: Option<String>,
        /// Boot even when these exact inputs passed before.
        #[arg(long)]
        fresh: bool,
    },
    /// rustfmt and clippy (pedantic) on the host crates and the eBPF crate,
    /// and no module cycle in any crate.
    Lint,
    /// List the module dependency cycles of each crate (two modules on
    /// different branches that name each other's items, directly or not);
    /// fails when there is one.
    Cycles,
    /// Run cowprof record -o and serve (scraped every second) at once
    /// under a workload of over 100,000 COW faults/s for MINUTES; fail on
    /// RSS or descriptor growth, uncounted losses or invalid outputs.
    /// Writes bench/soak.md.
    Soak {
        #[arg(long, default_value_t = 3)]
        minutes: u64,
    },
    /// Run the fuzz targets of `cowprof/fuzz` (cargo-fuzz, nightly,
    /// libFuzzer) from the committed corpus; fails on any finding. The
    /// corpus itself is replayed by `cargo xtask test`.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Memory limit per target, in MiB (libFuzzer's `-rss_limit_mb`).
        #[arg(long, default_value_t = 2048)]
        rss_limit_mb: u64,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Xtask::parse().task {
        Task::Setup => setup::run().map(|_| ()),
        Task::Run { args } => run::run(&args),
        Task::Test { no_lint } => test::run(!no_lint),
        Task::Bench {
            pairs,
            pages,
            events,
            only_top,
            only_serve,
            only_read,
        } => bench::run(&bench::Options {
            pairs,
            pages,
            events,
            only_top,
            only_serve,
            only_read,
        }),
        Task::VmTest { kernel, fresh } => {
            let env = setup::run()?;
            vm::run(&env, kernel.as_deref(), fresh)
        }
        Task::Fuzz {
            seconds,
            rss_limit_mb,
            targets,
        } => {
            let env = setup::run()?;
            fuzz::run(&env, &targets, seconds, rss_limit_mb)
        }
        Task::Soak { minutes } => soak::run(minutes),
        Task::Cycles => cycles::run(),
        Task::Lint => {
            let env = setup::run()?;
            lint::run(&env)
        }
    }
}
