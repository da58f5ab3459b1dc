//! Builds the eBPF object with aya-build, as aya-template does.
use std::{env, path::PathBuf};

use anyhow::{anyhow, Context as _};

/// Where `cargo xtask setup` installs bpf-linker (see xtask/src/setup.rs).
fn cached_linker_dir() -> Option<PathBuf> {
    let cache = env::var_os("COWPROF_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/cowprof")))?;
    let bin = cache.join("bpf-linker/bin");
    bin.join("bpf-linker").is_file().then_some(bin)
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=COWPROF_CACHE_DIR");
    // Let a plain `cargo build` find the bpf-linker that setup installed.
    if let Some(dir) = cached_linker_dir() {
        let path = env::var_os("PATH").unwrap_or_default();
        let joined = env::join_paths(std::iter::once(dir).chain(env::split_paths(&path)))
            .context("joining PATH")?;
        env::set_var("PATH", joined);
    }
    let ebpf_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("cowprof crate has no parent directory"))?
        .join("cowprof-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    // Two objects from one crate: the legacy one (for kernels without task
    // storage or bpf_find_vma) is built first and renamed, since aya-build
    // names its output after the binary.
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    for (features, output) in [(&["legacy"][..], Some("cowprof-legacy")), (&[][..], None)] {
        aya_build::build_ebpf(
            [aya_build::Package {
                name: "cowprof-ebpf",
                root_dir,
                features,
                ..Default::default()
            }],
            aya_build::Toolchain::default(),
        )
        .context("building the eBPF programs (run `cargo xtask setup` first)")?;
        if let Some(output) = output {
            std::fs::rename(out_dir.join("cowprof"), out_dir.join(output))
                .with_context(|| format!("naming the {output} object"))?;
        }
    }
    Ok(())
}
