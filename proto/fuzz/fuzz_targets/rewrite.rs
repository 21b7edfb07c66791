//! Fuzz target `rewrite`: see `tailgate_proto::fuzzing::rewrite`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::rewrite(data));
