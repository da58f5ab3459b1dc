//! Fuzz target: `cowprof::fuzzing::ringbuf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cowprof::fuzzing::ringbuf(data));
