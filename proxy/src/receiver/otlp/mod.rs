//! The `otlp` receiver: OTLP/gRPC (h2) and OTLP/HTTP (hyper http1) on every core.

pub mod config;
pub mod grpc;
pub mod http;
