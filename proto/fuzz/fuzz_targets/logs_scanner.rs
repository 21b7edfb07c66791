//! Fuzz target `logs_scanner`: see `tailgate_proto::fuzzing::logs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::logs(data));
