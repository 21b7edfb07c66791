//! Fuzz target `snappy`: see `tailgate_proto::fuzzing::snappy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::snappy(data));
