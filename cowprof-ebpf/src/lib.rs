#![no_std]
// This file exists so the crate has a library target that `cowprof`s build
// script can depend on, making cargo rebuild the eBPF object when it changes.
