//! Rebuild the eBPF object when bpf-linker changes, as aya-template does.
use std::{env, path::PathBuf};

fn main() {
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
