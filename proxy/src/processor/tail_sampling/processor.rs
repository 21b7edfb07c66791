//! The per-core `tail_sampling` stage: routing to owner cores, the owner's engine, its timer.
//!
//! Decisions are not ticked periodically: the owner asks its engine when the next decision falls
//! due ([`Engine::next_due`], from the engine's timer wheel) and ticks the engine only then: on an
//! [`Alarm`] set for that instant, or earlier when a request arrives after it anyway (one wake-up
//! for both). An idle core is not woken at all, and at a low rate the core wakes for decisions
//! only as often as traces actually fall due.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::shared_channel::ConnectedReceiver;
use tailgate_proto::{RequestBuilder, SpanView, Splitter};
use tailgate_sampler::span::proto_view::scan_summarized;
use tailgate_sampler::span::SummaryFields;
use tailgate_sampler::{
    shard_for, BatchOutput, Clock, DecidedTrace, Engine, SamplerConfig, SystemClock,
};

use super::forward::Forwarder;
use super::metrics::{DropReason, Drops, TailMetrics};
use crate::connector::spanmetrics::kept::KeptOnCore;
use crate::pipeline::{Consumer, Drain, Hop, LocalFuture, Payload, Refusal};
use crate::runtime::alarm::Alarm;
use crate::runtime::mesh::Mesh;
use crate::telemetry::metrics::Local;

/// Messages between cores: one request part holding only spans the receiving core owns.
#[derive(Debug)]
pub struct Part {
    /// An `ExportTraceServiceRequest`.
    pub body: Bytes,
    /// Its spans (counted while splitting), so a part that is lost is counted exactly.
    pub spans: u64,
    /// The gateway-to-gateway mark of the request it came from.
    pub hop: Option<Hop>,
}

/// Counters of the stage itself (the engine's own counters go through [`TailMetrics`]).
pub struct StageMetrics {
    /// `otelcol_processor_refused_spans_total{processor}`: refused with a retryable status
    /// (owner core's channel full, shutting down, `block_on_overflow`).
    pub refused: Local,
    /// `otelcol_processor_dropped_spans_total{processor}`: malformed spans or parts, kept spans
    /// the next stage refused, parts for a stopped core; also counted by reason ([`Drops`]).
    pub dropped: Local,
}

/// The owner side: this core's engine and where kept traces go.
pub struct Owner {
    engine: RefCell<Engine<SpanView, SystemClock>>,
    next: Rc<dyn Consumer>,
    /// Spans the engine refused (`block_on_overflow`); re-inserted after each tick. While any
    /// wait, new data is refused and inbound channels are not read (backpressure).
    blocked: RefCell<Vec<SpanView>>,
    out: RefCell<BatchOutput<SpanView>>,
    /// Scratch lists for [`Owner::insert`], kept between requests: a 1000-span request needs
    /// ~140 KB of them, and fresh allocations that size cost page faults on every request.
    scratch: RefCell<(Vec<SpanView>, Vec<SummaryFields>)>,
    metrics: TailMetrics,
    /// `refused` of [`StageMetrics`].
    refused: Local,
    /// Drops by reason (and `dropped` of [`StageMetrics`]).
    drops: Drops,
    tick: Duration,
    /// Rings when the engine's next decision falls due (or at the next tick while spans wait in
    /// `blocked`).
    alarm: Alarm,
    /// Set when the drain deadline passed with parts still in the inbound channels: from then on
    /// a part is counted as dropped (`drain_timeout`) instead of entering an engine that has
    /// already made its last decisions.
    stopped: Cell<bool>,
    /// Gateway membership: which spans go to other gateways (`None`: every span stays).
    forwarder: Option<Forwarder>,
    /// spanmetrics connectors with `tailgate.exemplars_kept_by` naming this processor: they are
    /// told the IDs of the traces this core keeps (one batch per decision round).
    kept: KeptOnCore,
}

/// What an owner core is connected to besides the next stage.
pub struct Links {
    /// Gateway membership: which spans go to other gateways (`None`: every span stays).
    pub forwarder: Option<Forwarder>,
    /// spanmetrics connectors told the IDs of the traces this core keeps (exemplars).
    pub kept: KeptOnCore,
}

/// After the drain deadline, how long the inbound channels are given to be emptied (each part is
/// only counted, so this is quick) before the core stops with whatever is left unread.
const DISCARD_BUDGET: Duration = Duration::from_millis(200);

/// The stage a pipeline calls on each core.
pub struct TailSampling {
    core: usize,
    mesh: Mesh<Part>,
    splitter: RefCell<Splitter>,
    /// Spans per destination core of the request being split (scratch).
    counts: RefCell<Vec<u64>>,
    owner: Rc<Owner>,
    closing: Cell<bool>,
}

/// Builds one core's stage. `config.num_shards` is overridden with the core count: one engine
/// per core, each with its share of `num_traces`, caches and rates.
pub fn build(
    config: &SamplerConfig,
    mut mesh: Mesh<Part>,
    next: Rc<dyn Consumer>,
    component: &str,
    registry: &crate::telemetry::metrics::Registry,
    stage: StageMetrics,
    links: Links,
) -> Result<Rc<TailSampling>, String> {
    let mut config = config.clone();
    config.num_shards = u32::try_from(mesh.cores()).unwrap_or(u32::MAX);
    let engine = Engine::new(&config, SystemClock).map_err(|e| e.to_string())?;
    let core = mesh.core();
    let metrics = TailMetrics::register(registry, core, component, engine.counters());
    // This core's share of the byte budget (the engine divides it by shard), summed on scrape.
    let shards = u64::from(config.num_shards.max(1));
    registry
        .register(
            "tailgate_tail_sampling_max_buffered_bytes",
            "Byte budget over retained request buffers (tailgate.max_buffered_bytes, or half the memory_limiter's soft limit by default; 0 = none) (tailgate).",
            crate::telemetry::metrics::Kind::Gauge,
            &[("processor", component)],
        )
        .local(core)
        .set(config.max_buffered_bytes.map_or(0, |b| b / shards));
    let owner = Rc::new(Owner {
        engine: RefCell::new(engine),
        next,
        blocked: RefCell::new(Vec::new()),
        out: RefCell::new(BatchOutput::default()),
        scratch: RefCell::new((Vec::new(), Vec::new())),
        metrics,
        refused: stage.refused,
        drops: Drops::register(registry, core, component, stage.dropped),
        tick: config.timer_tick,
        alarm: Alarm::new(),
        stopped: Cell::new(false),
        forwarder: links.forwarder,
        kept: links.kept,
    });
    for (_, rx, in_flight) in mesh.take_receivers() {
        glommio::spawn_local(serve_inbound(owner.clone(), rx, in_flight)).detach();
    }
    let stage = Rc::new(TailSampling {
        core,
        mesh,
        splitter: RefCell::new(Splitter::new()),
        counts: RefCell::new(Vec::new()),
        owner: owner.clone(),
        closing: Cell::new(false),
    });
    glommio::spawn_local(run_timer(Rc::downgrade(&stage))).detach();
    if stage.owner.forwarder.is_some() {
        glommio::spawn_local(follow_members(Rc::downgrade(&stage))).detach();
    }
    Ok(stage)
}

/// The trace ID of a span on the split path, as the scanner will read it (absent → zeros).
fn trace_id_of(id: &[u8]) -> [u8; 16] {
    <[u8; 16]>::try_from(id).unwrap_or([0; 16])
}

impl Consumer for TailSampling {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        if self.closing.get() {
            self.owner.refused.add(data.items);
            return Err(Refusal::ShuttingDown);
        }
        if !self.owner.blocked.borrow().is_empty() {
            self.owner.refused.add(data.items);
            return Err(Refusal::Overloaded);
        }
        if data.meta.hop.as_ref().is_some_and(Hop::is_control) {
            return self.broadcast(data);
        }
        let cores = self.mesh.cores();
        if cores == 1 {
            self.owner.insert(Part {
                body: data.body,
                spans: data.items,
                hop: data.meta.hop,
            });
            return Ok(());
        }
        let shards = u32::try_from(cores).unwrap_or(u32::MAX);
        let mut counts = self.counts.borrow_mut();
        counts.clear();
        counts.resize(cores, 0);
        let parts = self.splitter.borrow_mut().split(&data.body, cores, |span| {
            let to = shard_for(&trace_id_of(span.trace_id()), shards) as usize % cores;
            counts[to] += 1;
            to
        });
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                // The receivers walk every request, so only a bug gets here: the spans cannot be
                // told apart, and the request was answered already.
                let detail = format!("cannot split a request: {e}");
                self.owner
                    .drops
                    .count(DropReason::MalformedRequest, data.items, &detail);
                return Ok(());
            }
        };
        // Room first, everywhere: a request is taken whole or refused whole.
        let busy = parts
            .iter()
            .enumerate()
            .any(|(to, p)| !p.is_empty() && to != self.core && !self.mesh.has_room(to));
        if busy {
            self.owner.refused.add(data.items);
            return Err(Refusal::Overloaded);
        }
        for ((to, body), &spans) in parts.into_iter().enumerate().zip(counts.iter()) {
            if body.is_empty() {
                continue;
            }
            let part = Part {
                body,
                spans,
                hop: data.meta.hop.clone(),
            };
            if to == self.core {
                self.owner.insert(part);
            } else if self.mesh.try_send(to, part).is_err() {
                // Only when the peer core is gone (shutdown): room was checked above.
                let detail = format!("core {to} has stopped; a request part was lost");
                self.owner
                    .drops
                    .count(DropReason::CoreStopped, spans, &detail);
            }
        }
        Ok(())
    }
}

impl TailSampling {
    /// A control message goes to every core whole: each applies the entries of the traces it
    /// owns (control messages are rare, one per peer and view change, so no split is needed).
    fn broadcast(&self, data: Payload) -> Result<(), Refusal> {
        let cores = self.mesh.cores();
        if (0..cores).any(|to| to != self.core && !self.mesh.has_room(to)) {
            return Err(Refusal::Overloaded);
        }
        for to in 0..cores {
            let part = Part {
                body: data.body.clone(),
                spans: 0,
                hop: data.meta.hop.clone(),
            };
            if to == self.core {
                self.owner.insert(part);
            } else if self.mesh.try_send(to, part).is_err() {
                tracing::warn!(core = to, "a control message for a stopped core was lost");
            }
        }
        Ok(())
    }

    /// Shutdown: stop taking data, wait until no core sends any more and every part sent here is
    /// processed, then decide (or drop, per `drop_pending_traces_on_shutdown`) the pending traces
    /// and hand the kept ones on. Gives up waiting halfway to `deadline`: the stages after this one
    /// (the exporters' queues) keep the other half of the drain budget to send what it decides.
    pub async fn shutdown(&self, deadline: Instant) {
        self.closing.set(true);
        let closed = self.mesh.close_sending();
        let cores = self.mesh.cores();
        let now = Instant::now();
        let give_up = now + deadline.saturating_duration_since(now) / 2;
        while (closed.load(Ordering::Acquire) < cores || self.mesh.inbound_pending() > 0)
            && Instant::now() < give_up
        {
            glommio::timer::Timer::new(Duration::from_millis(5)).await;
        }
        let owner = &self.owner;
        if self.mesh.inbound_pending() > 0 {
            // Time ran out with parts unread (the next stage kept refusing, say): count
            // them as they are read instead of inserting them after the engine's last decision.
            owner.stopped.set(true);
            let until = Instant::now() + DISCARD_BUDGET;
            while self.mesh.inbound_pending() > 0 && Instant::now() < until {
                glommio::timer::Timer::new(Duration::from_millis(1)).await;
            }
        }
        owner.decide_all();
        // A part read from now on (a peer that sent past the deadline) would enter an engine
        // that makes no more decisions: counted instead.
        owner.stopped.set(true);
    }
}

impl Owner {
    /// Scans a part this core owns and inserts its spans. A span the scan cannot read is left
    /// out and counted; the others of the part (other clients' spans batched with it) go in.
    fn insert(&self, part: Part) {
        let control = part.hop.as_ref().filter(|h| h.is_control());
        if let (Some(f), Some(hop)) = (&self.forwarder, control) {
            f.on_control(hop, &part.body, &self.engine);
            self.due_work();
            return;
        }
        // The scan hands on the fields it parses, so the engine does not walk each span again.
        let mut scratch = self.scratch.borrow_mut();
        let (views, fields) = &mut *scratch;
        views.clear();
        fields.clear();
        match scan_summarized(&part.body, views, fields) {
            Ok(0) => {}
            Ok(skipped) => {
                let detail = "spans whose fields do not parse were left out of a request part";
                self.drops
                    .count(DropReason::MalformedSpan, skipped as u64, &detail);
            }
            Err(e) => {
                let detail = format!("cannot scan a request part: {e}");
                self.drops
                    .count(DropReason::MalformedRequest, part.spans, &detail);
                return;
            }
        }
        let (mut defer, mut outs) = (Vec::new(), Vec::new());
        if let Some(f) = &self.forwarder {
            f.follow(&self.engine);
            if let Some(hop) = &part.hop {
                if !f.accept(hop, part.spans) {
                    return;
                }
            }
            let now = SystemClock.now_unix_nanos();
            let plan = {
                let engine = self.engine.borrow();
                f.classify(now, views, part.hop.as_ref(), |id| engine.holds(id))
            };
            if !plan.all_local() {
                f.send(&plan, views);
                keep_local(views, fields, &plan.dest);
            }
            defer = plan.defer;
            outs = plan.out;
        }
        let mut out = self.out.borrow_mut();
        let mut engine = self.engine.borrow_mut();
        engine.insert_batch_summarized(views, fields, &mut out);
        if let (Some(f), false) = (&self.forwarder, views.is_empty()) {
            f.note_inserted();
        }
        for (id, at) in &defer {
            engine.defer(id, *at);
        }
        // No periodic tick would publish the buffered spans before their traces fall due.
        self.metrics.publish(engine.counters());
        drop(engine);
        drop(scratch);
        self.after_insert(&mut out);
        // Released first: with spans left in `blocked`, due_work ticks, and the tick's retry
        // borrows `out` again (a panic, with `panic = "abort"` the whole process).
        drop(out);
        if let (Some(f), false) = (&self.forwarder, outs.is_empty()) {
            // Claims of traces this core now holds without owning them (rule 5).
            f.execute(outs, &self.engine);
        }
        self.due_work();
    }

    /// Ticks the engine if anything is due (by the alarm or on a request's wake-up), then sets
    /// the alarm for the next instant anything is.
    fn due_work(&self) {
        let now = SystemClock.now_unix_nanos();
        if let Some(f) = &self.forwarder {
            // Hand-overs held back until this core's view settled, before decisions fall due.
            f.poll(now, &self.engine);
        }
        let due = self.engine.borrow().next_due().is_some_and(|at| at <= now);
        if due || !self.blocked.borrow().is_empty() {
            self.tick();
        }
        let polls = self.forwarder.as_ref().and_then(Forwarder::next_poll);
        let next = match (self.engine.borrow().next_due(), polls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(at) => {
                // Still due after a tick only if the system clock stepped back in between:
                // try again a tick later rather than spin.
                let wait = if at > now {
                    Duration::from_nanos(at - now)
                } else {
                    self.tick
                };
                self.alarm.set_at(Instant::now() + wait);
            }
            // Spans waiting for room: keep ticking.
            None if !self.blocked.borrow().is_empty() => {
                self.alarm.set_no_later_than(Instant::now() + self.tick);
            }
            None => self.alarm.clear(),
        }
    }

    fn after_insert(&self, out: &mut BatchOutput<SpanView>) {
        if !out.forward.is_empty() {
            let spans = std::mem::take(&mut out.forward);
            // Late spans of kept traces: published again, for candidates counted after the
            // decision (a connector forgets kept IDs after a while).
            if self.send_on(spans.iter()) && self.kept.is_on() {
                let mut ids: Vec<[u8; 16]> = spans.iter().map(SpanView::trace_id).collect();
                ids.dedup();
                self.kept.publish(ids);
            }
        }
        if !out.rejected.is_empty() {
            self.blocked.borrow_mut().append(&mut out.rejected);
        }
    }

    /// Shutdown's last decisions: decides (or drops) every pending trace, then inserts the spans
    /// waiting for room (`block_on_overflow`; they were answered OK) and decides those, round by
    /// round until none wait. Each round frees the whole table, so each inserts at least a
    /// table's worth.
    fn decide_all(&self) {
        loop {
            let mut engine = self.engine.borrow_mut();
            engine.shutdown();
            self.emit(&mut engine);
            drop(engine);
            let waiting = self.blocked.borrow().len();
            if waiting == 0 {
                return;
            }
            self.retry_blocked();
            let left = self.blocked.borrow().len();
            if left >= waiting {
                // No room made (decisions free every slot, so this is a bug): count, never spin.
                let spans = std::mem::take(&mut *self.blocked.borrow_mut()).len() as u64;
                let detail = "spans waiting for room were still refused after the last decisions";
                self.drops.count(DropReason::DrainTimeout, spans, &detail);
                return;
            }
        }
    }

    /// Re-inserts spans refused with `block_on_overflow`.
    fn retry_blocked(&self) {
        let mut blocked = std::mem::take(&mut *self.blocked.borrow_mut());
        if blocked.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let mut engine = self.engine.borrow_mut();
        engine.insert_batch(&mut blocked, &mut out);
        self.metrics.publish(engine.counters());
        drop(engine);
        self.after_insert(&mut out);
    }

    /// One timer tick: fire due decisions, hand kept traces on, publish counters.
    fn tick(&self) {
        let mut engine = self.engine.borrow_mut();
        engine.advance();
        self.emit(&mut engine);
        drop(engine);
        self.retry_blocked();
    }

    /// Re-frames every kept trace decided since the last call into one request for the next stage.
    fn emit(&self, engine: &mut Engine<SpanView, SystemClock>) {
        let decided: Vec<DecidedTrace<SpanView>> = engine.drain_decided().collect();
        let kept = decided.iter().filter(|d| !d.spans.is_empty());
        // Only traces the next stage took are published: an exemplar should open a stored trace.
        if self.send_on(kept.clone().flat_map(|d| d.spans.iter())) && self.kept.is_on() {
            self.kept.publish(kept.map(|d| d.trace_id).collect());
        }
        self.metrics.publish(engine.counters());
    }

    /// Hands `spans` on as one request; true when the next stage took it.
    fn send_on<'a>(&self, spans: impl Iterator<Item = &'a SpanView>) -> bool {
        let mut builder = RequestBuilder::new();
        for s in spans {
            builder.push(s);
        }
        let n = builder.span_count() as u64;
        if n == 0 {
            return false;
        }
        let data = Payload::traces(builder.finish(), n);
        match self.next.consume(data) {
            Ok(()) => true,
            Err(r) => {
                // Decided spans have nowhere to wait; the collector logs and loses them too.
                let detail = format!("next stage refused kept spans: {}", r.message());
                self.drops.count(DropReason::NextRefused, n, &detail);
                false
            }
        }
    }
}

/// Keeps only the spans whose destination is the local engine (0), in order.
fn keep_local(views: &mut Vec<SpanView>, fields: &mut Vec<SummaryFields>, dest: &[u16]) {
    let mut i = 0;
    views.retain(|_| {
        i += 1;
        dest.get(i - 1) == Some(&0)
    });
    let mut i = 0;
    fields.retain(|_| {
        i += 1;
        dest.get(i - 1) == Some(&0)
    });
}

/// Reads one inbound channel: parts other cores routed here.
async fn serve_inbound(owner: Rc<Owner>, rx: ConnectedReceiver<Part>, in_flight: Arc<AtomicUsize>) {
    while let Some(part) = rx.recv().await {
        while !owner.blocked.borrow().is_empty() && !owner.stopped.get() {
            glommio::timer::Timer::new(owner.tick).await;
        }
        if owner.stopped.get() {
            let detail = "a part from another core was still unread when the drain deadline passed";
            owner
                .drops
                .count(DropReason::DrainTimeout, part.spans, &detail);
        } else {
            owner.insert(part);
        }
        in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Ticks the engine whenever its alarm rings, until the stage is dropped or shut down.
async fn run_timer(stage: std::rc::Weak<TailSampling>) {
    loop {
        let owner = match stage.upgrade() {
            Some(s) if !s.closing.get() => s.owner.clone(),
            _ => return,
        };
        owner.alarm.ring().await;
        match stage.upgrade() {
            Some(s) if !s.closing.get() => s.owner.due_work(),
            _ => return,
        }
    }
}

/// Applies new member tables even while no data arrives (gateway membership): claims of the
/// traces whose owner moved must go out when the change happens, not with the next request.
async fn follow_members(stage: std::rc::Weak<TailSampling>) {
    loop {
        glommio::timer::Timer::new(super::forward::FOLLOW_INTERVAL).await;
        let Some(s) = stage.upgrade().filter(|s| !s.closing.get()) else {
            return;
        };
        if let Some(f) = &s.owner.forwarder {
            f.follow(&s.owner.engine);
            f.drain_tick(&s.owner.engine);
            s.owner.due_work();
        }
    }
}

impl Drain for TailSampling {
    fn flush(&self, until: Instant) -> LocalFuture<'_> {
        Box::pin(self.shutdown(until))
    }

    /// The membership's peer clients: spans forwarded or handed over and not yet sent.
    fn pending(&self) -> usize {
        self.owner.forwarder.as_ref().map_or(0, Forwarder::pending)
    }

    fn abandon(&self) -> u64 {
        self.owner.forwarder.as_ref().map_or(0, Forwarder::abandon)
    }
}
