//! The `tail_sampling` processor: `tailgate-sampler`'s engine on every core, each trace owned by
//! exactly one core.
//!
//! # Data path
//! - **Receiving core** ([`processor::TailSampling::consume`]): splits the request by owner core
//!   (`tailgate_sampler::shard_for`, a hash of the trace ID with other bits than the agents'
//!   routing) with `tailgate_proto::Splitter`; its own part is scanned and inserted into its
//!   engine at once, every other part goes as one `Bytes` over the core mesh
//!   ([`crate::runtime::mesh`]). All destination channels are checked for room first, so a request
//!   is either taken whole or refused whole with a retryable status (never half-delivered).
//! - **Owner core**: scans the part into views with the fields the scan parsed
//!   (`tailgate_sampler::span::proto_view::scan_summarized`) and inserts them with
//!   `Engine::insert_batch_summarized` (each span's bytes walked once). The engine is ticked only
//!   when a decision falls due (`Engine::next_due`, on the `tailgate.timer_tick` grid): by an
//!   alarm set for that instant, or by a request that arrives after it. Kept traces are re-framed
//!   into one request per tick and handed to the next stage (batch → exporters) on the owner
//!   core; dropped traces are released at once.
//! - **Shutdown**: every core stops taking data, waits until all cores have stopped sending,
//!   drains its inbound channels, then decides pending traces early (or drops them with
//!   `drop_pending_traces_on_shutdown`) and flushes kept ones before the batches are flushed.
//!
//! # Layout
//! - [`config`]: YAML → the sampler's `SamplerConfig` (key paths re-rooted at the component).
//! - [`processor`]: the per-core stage, the owner's engine and its timer task.
//! - [`metrics`]: `otelcol_processor_tail_sampling_*` from the engine's counters, per core.
//! - Gateway membership (issue 18): [`membership`] (the keys), [`peers`] (the view shared by every
//!   core), [`forward`] (the owner core's rule 4.2 and its peer clients), [`mark`] (the receiving
//!   side: member gate and the `tailgate-hop` header), [`drain`] (the phases a leaving gateway
//!   runs on SIGTERM).

pub mod config;
pub mod drain;
pub mod forward;
pub mod mark;
pub mod membership;
pub mod metrics;
pub mod peers;
pub mod processor;
