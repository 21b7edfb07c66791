//! Fuzz target `grpc_deframer`: see `tailgate_proto::fuzzing::grpc_deframer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tailgate_proto::fuzzing::grpc_deframer(data));
