//! Rebuild the eBPF object when bpf-linker changes, as aya-template does,
//! and keep the BPF global functions global.
use std::{env, path::PathBuf};

/// Functions the verifier should check once as BPF global functions rather
/// than at every call site. bpf-linker internalizes every other symbol.
const GLOBAL_FUNCTIONS: &[&str] = &["cowprof_find_vma", "cowprof_announce_file"];

fn main() {
    println!(
        "cargo:rustc-link-arg-bins=--export={}",
        GLOBAL_FUNCTIONS.join(",")
    );
    println!("cargo:rerun-if-env-changed=PATH");
    let cache = env::var_os("COWPROF_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cowprof")));
    let candidates = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cache.map(|c| c.join("bpf-linker/bin")));
    for dir in candidates {
        let linker = dir.join("bpf-linker");
        if linker.is_file() {
            println!("cargo:rerun-if-changed={}", linker.display());
            return;
        }
    }
}
