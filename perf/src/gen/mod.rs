//! Trace-shaped traffic with known ground truth.
//!
//! [`shape`] makes single traces (span count, size, error and slow flags); [`workload`]
//! interleaves many open traces into export requests and reports each finished trace's truth
//! for the manifest. Both are deterministic for a seed and do no I/O.

pub mod shape;
pub mod workload;

pub use shape::{GenTrace, SpanCount, TraceShape};
pub use workload::{Batch, Workload, WorkloadConfig};
