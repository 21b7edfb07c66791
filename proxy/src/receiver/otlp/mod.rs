//! The `otlp` receiver: OTLP/gRPC on every core (OTLP/HTTP is not implemented yet).

pub mod config;
pub mod grpc;
