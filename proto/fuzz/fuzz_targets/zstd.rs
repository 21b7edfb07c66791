//! Fuzz target `zstd`: see `tailgate_proto::fuzzing::zstd`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::zstd(data));
