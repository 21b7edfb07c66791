//! What flows between components on one core, and the interface each stage implements.
//!
//! A [`TraceData`] is one or more serialized `ExportTraceServiceRequest`s back to back: protobuf
//! merges repeated fields of concatenated messages, so joining request bodies *is* batching, with
//! one copy and no decoding. Stages are per core (`Rc`, no locks) and synchronous: a stage either
//! takes the data or refuses it at once; anything slow (sending) sits behind a bounded queue.

pub mod wire;

use std::rc::Rc;

use bytes::Bytes;

/// Spans in transit: a serialized `ExportTraceServiceRequest` (or several concatenated) and how
/// many spans it holds.
#[derive(Debug, Clone)]
pub struct TraceData {
    /// Serialized request(s).
    pub body: Bytes,
    /// Span count, measured once by the receiver.
    pub spans: u64,
}

/// Why a stage refused data; small and `Copy` because it travels on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A memory_limiter is above its soft limit (gRPC UNAVAILABLE / HTTP 503; clients retry).
    MemoryLimited,
    /// An exporter's sending queue is full.
    QueueFull,
    /// tailgate is shutting down.
    ShuttingDown,
    /// A stage cannot take more right now (tail_sampling: an owner core's channel is full, or
    /// the trace table is full with `block_on_overflow`); clients retry.
    Overloaded,
}

impl Refusal {
    /// The message a client sees.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::MemoryLimited => "data refused due to high memory usage",
            Refusal::QueueFull => "sending queue is full",
            Refusal::ShuttingDown => "tailgate is shutting down",
            Refusal::Overloaded => "tail_sampling is overloaded; retry later",
        }
    }
}

/// A pipeline stage on one core.
pub trait TraceConsumer {
    /// Takes `data` or refuses it.
    fn consume(&self, data: TraceData) -> Result<(), Refusal>;
}

/// Sends the same data to several consumers (a receiver feeding pipelines, a pipeline feeding
/// exporters). Every consumer gets every span; the first refusal is reported after all were tried.
pub struct Fanout {
    /// Downstream consumers.
    pub consumers: Vec<Rc<dyn TraceConsumer>>,
}

impl TraceConsumer for Fanout {
    fn consume(&self, data: TraceData) -> Result<(), Refusal> {
        let mut result = Ok(());
        for c in &self.consumers {
            // A clone is a refcount increment: the body bytes are shared.
            if let Err(e) = c.consume(data.clone()) {
                result = result.and(Err(e));
            }
        }
        result
    }
}
