//! `cargo xtask test`: lints (and no module cycle), unit tests (the fuzz
//! corpus replayed among them), the live privileged suite (one binary on one
//! thread, as aya runs its tests), a 3-minute soak, then the kernel matrix:
//! that suite under every strategy each of Debian's 5.10, 6.1, 6.12 and
//! newest 7.x kernels offers, booted under qemu.
use anyhow::Result;

use crate::{lint, setup};

pub fn run(with_lint: bool) -> Result<()> {
    let env = setup::run()?;
    if with_lint {
        lint::run(&env)?;
    }
    // Unit tests of every host crate.
    setup::status(env.cargo().args([
        "test",
        "--workspace",
        "--exclude",
        "cowprof-ebpf",
        "--lib",
        "--bins",
    ]))?;
    // The live suite runs the workload example as a plain binary.
    setup::status(
        env.cargo()
            .args(["build", "--package", "cowprof", "--examples"]),
    )?;
    // Profiles are read back by pyarrow and DuckDB too.
    let python = setup::python()?;
    // `top` is driven in a real terminal.
    setup::debian_tools()?;
    setup::status(
        env.cargo()
            .args([
                "test",
                "--package",
                "cowprof",
                "--test",
                "privileged",
                "--",
                "--test-threads=1",
            ])
            .env("COWPROF_PYTHON", python),
    )?;
    // Three minutes of every output at once under a COW-fault storm.
    crate::soak::run(3)?;
    // The kernel matrix: the same suite under every strategy on 5.10, 6.1,
    // 6.12 and 7.x.
    crate::vm::run(&env, None, false)
}
