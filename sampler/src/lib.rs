//! `tailgate-sampler`: a sans-IO tail-sampling engine with the OpenTelemetry Collector's
//! `tail_sampling` semantics (collector-contrib v0.115.0, plus keys added since).
//!
//! A gateway must see whole traces before it can keep the interesting ones. This crate buffers
//! spans per trace and decides keep or drop with the collector's policies, keys, defaults and
//! decision rule, so a user's existing `tail_sampling:` YAML means the same here. It performs no
//! I/O and reads no clock of its own: the runtime hands it spans and a [`Clock`], and takes back
//! decided traces. It is generic over the span type ([`SpanData`]); the wire layer's zero-copy
//! view implements that trait.
//!
//! # How the engine works
//! - **Trace table** ([`Engine`], one per shard/core): a ring of `num_traces` slots in arrival
//!   order plus an index by trace ID. A slot holds running aggregates ([`TraceSummary`]: span
//!   count, bytes, earliest start, latest end, status codes seen, sampled flag, root seen) so the
//!   status/latency/span-count/flags policies never rescan; attribute policies scan the spans
//!   lazily at decision time. The index stores 8 bytes per trace (a fingerprint and the slot,
//!   confirmed against the slot's ID). Spans live in the shard's arena, in chunks of 4 recycled
//!   through a free list: no allocation per trace or span once warm, and deciding reads a
//!   trace's few chunks. Inserting a span reads one index line, one 64-byte slot line (the
//!   slot's times live apart) and one chunk; [`Engine::insert_batch`] takes these misses for a
//!   group of spans together before inserting them. [`Engine::insert_batch_summarized`] takes
//!   the fields the scan already parsed, so a span's bytes are walked once.
//! - **Timer wheel**: each new trace is scheduled at `decision_wait` after its first span (moved
//!   earlier to `decision_wait_after_root_received` after its root). O(1) insert and expiry;
//!   [`Engine::advance`] fires what is due by the clock, and [`Engine::next_due`] says when that
//!   next decides something (so a runtime need not tick when nothing is due).
//! - **Decision**: every policy is evaluated (drop policies first); any `Dropped` wins, then any
//!   inverted-not-sampled, then any `Sampled`, then inverted-sampled without a `NotSampled`;
//!   otherwise not sampled. `sample_on_first_match` stops at the first `Sampled`.
//! - **Late spans**: a decided trace keeps its slot (without spans) until `num_traces` newer
//!   traces push it out, so a late span is forwarded or dropped at once; after that the decision
//!   caches answer; only then does a late span start a new trace.
//! - **Limits**: `num_traces` (the ring: the oldest trace is pushed out, counted as dropped too
//!   early if undecided, or the insert is refused with `block_on_overflow`),
//!   `maximum_trace_size_bytes`, and tailgate's `max_buffered_bytes` budget measured in retained
//!   request buffers; sparse buffers are compacted by copying survivors out
//!   ([`SpanData::detach`]).
//! - **Membership** (issue 18, for gateways that hand traces to one another): [`Engine::take_pending`]
//!   removes an undecided trace and returns its spans; [`Engine::holds`] / [`Engine::held`] say
//!   what the table holds; [`Engine::defer`] keeps a trace from being decided before a time;
//!   [`Engine::import_decisions`] lets decisions taken elsewhere answer late spans here. Every
//!   span received is exported, dropped, buffered or handed over
//!   ([`Counters::handed_over_spans`]).
//! - **Output**: [`Engine::drain_decided`] yields [`DecidedTrace`]s (decision, matched policies,
//!   spans if kept); [`Engine::counters`] mirrors `otelcol_processor_tail_sampling_*`.
//!
//! # Cost (2026-11-25, shared 2-core machine; see `docs/sampler.md`)
//! Insert + decide with [`Engine::insert_batch`], 20 spans/trace, spans of a trace spread over
//! its life: 2.6–4.3 M spans per CPU-second at 50 k live traces, 2.1–2.7 M at 500 k (noisy: load
//! 12–15 on 2 cores); 27–29 bytes of engine memory per buffered span beyond a 16-byte span view.
//! With real scanned 56-byte `SpanView`s ([`Engine::insert_batch_summarized`], 2026-11-26,
//! median of whole steady-state generations, loaded machine): about 3.0 M spans/s at 50 k live
//! traces and 2.9 M at 500 k; 17–18 bytes per buffered span beyond the view.
//!
//! # Example
//! ```
//! use tailgate_sampler::testing::{FakeClock, TestSpan};
//! use tailgate_sampler::{BatchOutput, Engine, SamplerConfig, StatusCode};
//!
//! let yaml = "decision_wait: 10s\npolicies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]";
//! let (config, warnings) = SamplerConfig::from_yaml_str(yaml).expect("valid config");
//! assert!(warnings.is_empty());
//! let clock = FakeClock::at(0);
//! let mut engine = Engine::new(&config, clock.clone()).expect("engine");
//! let mut request = vec![TestSpan::new(7, 1, 0, 5).status(StatusCode::Error), TestSpan::new(7, 2, 0, 9)];
//! let mut out = BatchOutput::default();
//! engine.insert_batch(&mut request, &mut out);
//! clock.advance_ms(10_000);
//! engine.advance();
//! let decided: Vec<_> = engine.drain_decided().collect();
//! assert!(decided[0].decision.is_sampled());
//! assert_eq!(decided[0].spans.len(), 2);
//! ```
//!
//! # Layout
//! - [`span`]: the [`SpanData`] trait and attribute values.
//! - [`clock`]: the injected clock.
//! - [`config`]: YAML → serde structs → validated [`SamplerConfig`] (+ warnings).
//! - [`policy`]: the collector's policies, decision combination, probabilistic hash, OTTL subset.
//! - [`engine`]: trace table, timer wheel, decision caches, buffer ledger, counters.
//! - [`testing`]: an owned test span and a fake clock.

pub mod clock;
pub mod config;
pub mod engine;
pub mod policy;
pub mod span;
pub mod testing;

pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, ConfigWarning, PolicyConfig, PolicySpec, SamplerConfig};
pub use engine::{
    BatchOutput, Counters, DecidedTrace, DecisionCause, DropReason, Engine, EngineError, HeldState,
    InsertOutcome, MemoryStats, PolicySet, Taken,
};
pub use policy::{Decision, FinalDecision, SpanAggregates, TraceSummary};
pub use span::{AttrValue, BufferRef, SpanData, SpanKind, StatusCode, SummaryFields};

/// The shard (0..`shards`) that owns a trace: derived from bits of the trace ID different from
/// the ones agents route on, so that one gateway's traces still spread over its cores.
pub fn shard_for(trace_id: &[u8; 16], shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let h = engine::fingerprint(trace_id).rotate_left(23);
    ((u128::from(h) * u128::from(shards)) >> 64) as u32
}
