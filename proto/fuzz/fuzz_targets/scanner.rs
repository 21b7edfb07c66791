//! Fuzz target `scanner`: see `tailgate_proto::fuzzing::scan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::scan(data));
