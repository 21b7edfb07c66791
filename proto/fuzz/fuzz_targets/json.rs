//! Fuzz target `json`: see `tailgate_proto::fuzzing::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::json(data));
