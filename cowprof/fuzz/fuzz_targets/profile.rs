//! Fuzz target: `cowprof::fuzzing::profile`, on the committed seed profile.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seed/profile");
    cowprof::fuzzing::profile(&seed, data);
});
