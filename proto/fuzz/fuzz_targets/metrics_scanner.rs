//! Fuzz target `metrics_scanner`: see `tailgate_proto::fuzzing::metrics`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::metrics(data));
