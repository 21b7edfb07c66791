//! Fuzz target `gzip`: see `tailgate_proto::fuzzing::gzip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::gzip(data));
