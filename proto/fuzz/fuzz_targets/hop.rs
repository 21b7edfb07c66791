//! Fuzz target `hop`: see `tailgate_proto::fuzzing::hop`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::hop(data));
