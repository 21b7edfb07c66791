//! What flows between components on one core, and the interfaces each stage implements.
//!
//! A [`Payload`] is one or more serialized OTLP export requests of one [`Signal`] back to back:
//! protobuf merges repeated fields of concatenated messages, so joining request bodies *is*
//! batching, with one copy and no decoding. Stages are per core (`Rc`, no locks) and synchronous: a
//! stage either takes the data or refuses it at once; anything slow (sending) sits behind a
//! bounded queue. Only the proto walkers and the component factories know what a signal's body
//! holds; receivers, memory_limiter, batch, the sending queue and fan-out move any payload.

pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

pub use crate::config::Signal;

/// Items in transit: a serialized export request (or several concatenated) of one signal, how
/// many items (spans, data points, log records) it holds, and where it came from.
#[derive(Debug, Clone)]
pub struct Payload {
    /// What the body holds.
    pub signal: Signal,
    /// Serialized request(s).
    pub body: Bytes,
    /// Item count, measured once by the receiver.
    pub items: u64,
    /// Where the data came from; survives batching as the collector's client metadata does.
    pub meta: Metadata,
}

impl Payload {
    /// A traces payload without metadata (tests, and stages that make new data).
    pub fn traces(body: Bytes, spans: u64) -> Self {
        Payload {
            signal: Signal::Traces,
            body,
            items: spans,
            meta: Metadata::default(),
        }
    }

    /// The same signal and metadata around another body (a split part, a kept subset).
    pub fn with_body(&self, body: Bytes, items: u64) -> Self {
        Payload {
            signal: self.signal,
            body,
            items,
            meta: self.meta.clone(),
        }
    }
}

/// The client metadata of a payload (the collector's `client.Info`), plus tailgate's hop marker.
///
/// Cloned with every fan-out, so it stays small: the headers kept by `include_metadata` are one
/// shared list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The peer that sent the request (`client.Info.Addr`); kept until a batch merges clients.
    pub client: Option<SocketAddr>,
    /// When the receiver took the request (the earliest of a batch's requests).
    pub received: Option<Instant>,
    /// Request headers a receiver kept (`include_metadata: true`), names in lower case; after a
    /// `batch` with `metadata_keys`, only those keys.
    pub headers: Option<Rc<[(String, String)]>>,
    /// Set on data one gateway forwarded to another: never forwarded again, never exported.
    pub hop: Option<Hop>,
}

impl Metadata {
    /// The values of `key` (lower case) that the request carried, in order.
    pub fn get<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .flat_map(|h| h.iter())
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The mark on gateway-to-gateway data (the `tailgate-hop` header, docs/membership-design.md §5):
/// who sent it, why, which routing table the sender used (so disagreements between gateways are
/// counted), and the batch ID that makes a retried forward harmless.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// Forwarded (and why) or handed over.
    pub kind: HopKind,
    /// The sender's endpoint as the resolver lists it (its `membership.self`).
    pub from: Arc<str>,
    /// The sender's incarnation: a restart at the same address is a new member.
    pub incarnation: u64,
    /// Hash of the sender's effective routing table.
    pub table: u64,
    /// The sender's core and its sequence number on that core (span data only; `(0, 0)` on
    /// control messages, which need no dedup).
    pub batch: (u16, u64),
}

/// What a marked payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HopKind {
    /// Spans the sender does not hold, sent to their owner or claimant (`k=fwd`).
    Forward(tailgate_routing::membership::Reason),
    /// An undecided fragment handed to its claimant (`k=handover`).
    HandOver,
    /// A control message (`claim`, `redirect`, `decisions`): no spans, a payload for the rules
    /// of every core (`tailgate_proto::control`).
    Control(tailgate_proto::hop::Kind),
}

impl Hop {
    /// Whether this mark carries a control message rather than spans.
    pub fn is_control(&self) -> bool {
        matches!(self.kind, HopKind::Control(_))
    }
}

/// The gRPC metadata key of the gateway-to-gateway mark.
pub const HOP_HEADER: &str = tailgate_proto::hop::HOP_HEADER;

impl Hop {
    /// The wire form of this mark (`tailgate_proto::hop`, docs/membership-design.md §5).
    pub fn header(&self) -> tailgate_proto::hop::HopHeader<'_> {
        use tailgate_proto::hop::{HopHeader, Kind, Reason as WireReason};
        use tailgate_routing::membership::Reason;
        let (kind, reason) = match self.kind {
            HopKind::Forward(Reason::NotOwner) => (Kind::Fwd, Some(WireReason::NotOwner)),
            HopKind::Forward(Reason::Claim) => (Kind::Fwd, Some(WireReason::Claim)),
            HopKind::HandOver => (Kind::HandOver, None),
            HopKind::Control(kind) => (kind, None),
        };
        HopHeader {
            kind,
            reason,
            from: &self.from,
            incarnation: self.incarnation,
            table: self.table,
            // Control messages are not deduplicated: applying one twice changes nothing.
            batch: kind.carries_spans().then_some(self.batch),
        }
    }
}

/// The `tailgate-hop` header value that marks `hop` on the wire. Fails only on a `from` that is
/// not a header-safe endpoint (`self` is checked as a `host:port` at validation).
pub fn hop_header(hop: &Hop) -> Result<http::HeaderValue, String> {
    let header = hop.header();
    header.validate().map_err(|e| e.to_string())?;
    http::HeaderValue::from_str(&header.to_header_value()).map_err(|e| e.to_string())
}

/// Why a stage refused data; small and `Copy` because it travels on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A memory_limiter is above its soft limit (gRPC UNAVAILABLE / HTTP 503; clients retry).
    MemoryLimited,
    /// An exporter's sending queue is full.
    QueueFull,
    /// A routing exporter has no destination yet (no backend resolved); clients retry.
    NoRoute,
    /// A batch processor already holds `metadata_cardinality_limit` distinct metadata
    /// combinations; clients retry (a deviation: the collector's error is permanent, answered
    /// INTERNAL, though the next request may well fit once a batch has been sent).
    TooManyBatches,
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
            Refusal::NoRoute => "no backend resolved yet",
            Refusal::TooManyBatches => "too many batcher metadata-value combinations",
            Refusal::ShuttingDown => "tailgate is shutting down",
            Refusal::Overloaded => "tail_sampling is overloaded; retry later",
        }
    }
}

/// A pipeline stage on one core.
pub trait Consumer {
    /// Takes `data` or refuses it.
    fn consume(&self, data: Payload) -> Result<(), Refusal>;

    /// Whether this stage would refuse data now. Receivers ask when a request starts, before they
    /// read its body: a request that will be refused anyway should not cost its bytes first (the
    /// collector's memory_limiter is only asked after decoding). Only a stage whose refusal comes
    /// from a flag it already holds answers (memory_limiter); the default is ready.
    fn ready(&self) -> Result<(), Refusal> {
        Ok(())
    }
}

/// A future a stage returns from [`Drain::flush`]; local to the core.
pub type LocalFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// What shutdown asks of a stage that holds data: hand it on, say what is still in flight, and
/// count what is left when the deadline passes. Stages are drained upstream first, so what one
/// flushes is in the queues of the next before those are asked.
pub trait Drain {
    /// Hands on what the stage holds (decide buffered traces, send pending batches), finishing
    /// before `until`.
    fn flush(&self, until: Instant) -> LocalFuture<'_>;
    /// Batches queued or being sent (an exporter's queue); 0 for stages that hold nothing.
    fn pending(&self) -> usize {
        0
    }
    /// Counts what is still held as failed (the drain deadline passed); returns the items.
    fn abandon(&self) -> u64 {
        0
    }
}

/// Sends the same data to several consumers (a receiver feeding pipelines, a pipeline feeding
/// exporters). Every consumer gets every item; the first refusal is reported after all were tried.
pub struct Fanout {
    /// Downstream consumers (never empty: [`fan_out`] builds one only for two or more).
    consumers: Vec<Rc<dyn Consumer>>,
}

impl Consumer for Fanout {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let mut result = Ok(());
        for c in &self.consumers {
            // A clone is a refcount increment: the body bytes are shared.
            if let Err(e) = c.consume(data.clone()) {
                result = result.and(Err(e));
            }
        }
        result
    }

    /// Not ready when any consumer is not: consume would refuse, and the client retries the whole
    /// request anyway.
    fn ready(&self) -> Result<(), Refusal> {
        self.consumers.iter().try_for_each(|c| c.ready())
    }
}

/// The head of a receiver's pipelines at shutdown: open until the connection grace is over, then
/// every request is refused (`ShuttingDown`, which clients retry elsewhere) so that nothing enters
/// a stage after it was flushed, where it would be answered OK and lost.
pub struct Gate {
    next: Rc<dyn Consumer>,
    closed: Rc<std::cell::Cell<bool>>,
}

impl Gate {
    /// A gate in front of `next`, closed when `closed` is set.
    pub fn new(next: Rc<dyn Consumer>, closed: Rc<std::cell::Cell<bool>>) -> Rc<Gate> {
        Rc::new(Gate { next, closed })
    }
}

impl Consumer for Gate {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        if self.closed.get() {
            return Err(Refusal::ShuttingDown);
        }
        self.next.consume(data)
    }

    /// Closed answers as consume would; open passes the question on (a memory_limiter behind
    /// the gate must still refuse before a body is read).
    fn ready(&self) -> Result<(), Refusal> {
        if self.closed.get() {
            return Err(Refusal::ShuttingDown);
        }
        self.next.ready()
    }
}

/// The one consumer of `consumers`, or a [`Fanout`] to all of them; `None` for none, so a pipeline
/// can never end in a fan-out to nobody that answers OK and drops.
pub fn fan_out(mut consumers: Vec<Rc<dyn Consumer>>) -> Option<Rc<dyn Consumer>> {
    match consumers.len() {
        0 => None,
        1 => consumers.pop(),
        _ => Some(Rc::new(Fanout { consumers })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Takes everything; not ready while `refusing` is set.
    struct Stage {
        refusing: Cell<Option<Refusal>>,
        taken: Cell<u64>,
    }

    impl Consumer for Stage {
        fn consume(&self, data: Payload) -> Result<(), Refusal> {
            self.taken.set(self.taken.get() + data.items);
            Ok(())
        }

        fn ready(&self) -> Result<(), Refusal> {
            self.refusing.get().map_or(Ok(()), Err)
        }
    }

    #[test]
    fn a_fan_out_is_ready_only_when_every_consumer_is() {
        let stage = || {
            Rc::new(Stage {
                refusing: Cell::new(None),
                taken: Cell::new(0),
            })
        };
        let (a, b) = (stage(), stage());
        let fan = fan_out(vec![a.clone(), b.clone()]).expect("two consumers");
        assert_eq!(fan.ready(), Ok(()));
        b.refusing.set(Some(Refusal::MemoryLimited));
        assert_eq!(fan.ready(), Err(Refusal::MemoryLimited));
        // Asking takes nothing.
        assert_eq!((a.taken.get(), b.taken.get()), (0, 0));
        // A stage that does not answer is ready.
        let nop: Rc<dyn Consumer> = Rc::new(Fanout {
            consumers: Vec::new(),
        });
        assert_eq!(nop.ready(), Ok(()));
    }

    #[test]
    fn the_shutdown_gate_passes_readiness_on_until_it_closes() {
        let stage = Rc::new(Stage {
            refusing: Cell::new(Some(Refusal::MemoryLimited)),
            taken: Cell::new(0),
        });
        let closed = Rc::new(Cell::new(false));
        let gate = Gate::new(stage.clone(), closed.clone());
        assert_eq!(gate.ready(), Err(Refusal::MemoryLimited));
        stage.refusing.set(None);
        assert_eq!(gate.ready(), Ok(()));
        closed.set(true);
        assert_eq!(gate.ready(), Err(Refusal::ShuttingDown));
    }
}
