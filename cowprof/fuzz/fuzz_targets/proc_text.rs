//! Fuzz target: `cowprof::fuzzing::proc_text`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowprof::fuzzing::proc_text(data));
