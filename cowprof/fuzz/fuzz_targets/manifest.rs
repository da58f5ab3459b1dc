//! Fuzz target: `cowprof::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowprof::fuzzing::manifest(data));
