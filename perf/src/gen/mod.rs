//! Trace-shaped traffic with known ground truth.
//!
//! [`shape`] makes single traces (span count, size, error and slow flags); [`workload`]
//! interleaves many open traces into export requests and reports each finished trace's truth
//! for the manifest; [`replay`] resends a pre-built pool with fresh trace IDs, for load above
//! what live generation can produce. All are deterministic for a seed and do no I/O.

pub mod replay;
pub mod shape;
pub mod workload;

pub use replay::ReplayPool;

pub use shape::{GenTrace, SpanCount, TraceShape};
pub use workload::{Batch, Workload, WorkloadConfig};
