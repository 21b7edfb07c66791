//! The `redaction` processor (collector-contrib v0.115.0): removes span and resource attributes
//! not on an allow list, masks values matching blocked patterns, and writes a `redaction.*`
//! summary onto each list it changed.
//!
//! Built on [`tailgate_proto::rewrite`]: a span or resource whose attributes need no change is
//! copied byte for byte, and a request nothing changed in is forwarded as it came.

pub mod config;
pub mod processor;
pub mod rules;
