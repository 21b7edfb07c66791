//! Trace-shaped traffic with known ground truth.
//!
//! [`shape`] makes single traces (span count, size, error and slow flags); [`workload`]
//! interleaves many open traces into export requests and reports each finished trace's truth
//! for the manifest; [`replay`] resends a pre-built pool with fresh trace IDs, for load above
//! what live generation can produce. All are deterministic for a seed and do no I/O.
//! [`corpus`] (from `tailgate_proto`) makes realistic requests (random IDs, varied attribute values,
//! a few KiB-sized attributes) for compression work; the codec bench uses the same generator.

pub mod replay;
pub mod shape;
pub mod workload;

/// Realistic requests from a seed; lives in `tailgate_proto` so its benches can use it without a
/// dependency on this crate.
pub use tailgate_proto::corpus;

pub use replay::{CorpusKind, ReplayPool};

pub use shape::{GenTrace, SpanCount, TraceShape};
pub use workload::{Batch, Workload, WorkloadConfig};
