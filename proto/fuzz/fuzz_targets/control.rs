//! Fuzz target `control`: see `tailgate_proto::fuzzing::control`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::control(data));
