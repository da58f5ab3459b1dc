//! Rebuild when bpf-linker changes, as aya-template does.
use std::env;

fn main() {
    // `cargo xtask setup` installs bpf-linker; its path is on PATH for builds.
    let linker = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join("bpf-linker"))
            .find(|candidate| candidate.is_file())
    });
    match linker {
        Some(path) => println!("cargo:rerun-if-changed={}", path.display()),
        None => println!("cargo:warning=bpf-linker not found on PATH; run `cargo xtask setup`"),
    }
}
