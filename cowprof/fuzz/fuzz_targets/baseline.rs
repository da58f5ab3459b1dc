//! Fuzz target: `cowprof::fuzzing::baseline`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowprof::fuzzing::baseline(data));
