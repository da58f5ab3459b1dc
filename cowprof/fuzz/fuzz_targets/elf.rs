//! Fuzz target: `cowprof::fuzzing::elf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowprof::fuzzing::elf(data));
