//! Replay: generate a pool of requests once, then resend it with fresh trace IDs each round.
//!
//! Live generation costs ~8 µs of CPU per span (random attributes + prost encoding; see
//! docs/perf.md), far too slow to load a proxy. A replayed request costs a copy plus a 16-byte
//! patch per span: the pool is built from whole traces only (the workload is drained), and each
//! round XORs the round number into bytes 8..16 of every trace ID, so every round is a new set of
//! traces with the same shapes and the manifest stays exact.
//!
//! The pool comes from the synthetic workload ([`ReplayPool::build`]) or from the realistic corpus
//! ([`ReplayPool::realistic`], see [`crate::gen::corpus`]), whose requests hold whole traces too, so
//! the same mechanics apply; its ground truth is read back from the requests' spans.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::workload::{Workload, WorkloadConfig};
use crate::manifest::ManifestEntry;
use tailgate_proto::span::StatusCode;
use tailgate_proto::{ScanError, SpanView};

/// Which requests a replay pool is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorpusKind {
    /// The synthetic workload (~225-byte spans, repeated attribute values): the default, so
    /// figures stay comparable with earlier runs.
    #[default]
    Synthetic,
    /// The realistic corpus (random IDs, varied attribute values, a few KiB-sized attributes):
    /// what compression sees in real traffic.
    Realistic,
}

impl CorpusKind {
    /// Parses `synthetic` or `realistic`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "synthetic" => Some(CorpusKind::Synthetic),
            "realistic" => Some(CorpusKind::Realistic),
            _ => None,
        }
    }

    /// The name [`CorpusKind::parse`] takes.
    pub fn name(self) -> &'static str {
        match self {
            CorpusKind::Synthetic => "synthetic",
            CorpusKind::Realistic => "realistic",
        }
    }
}

/// One pooled request and where its trace IDs sit.
#[derive(Debug, Clone)]
struct Pooled {
    request: Vec<u8>,
    spans: u32,
    /// Byte offsets of each span's 16 trace-ID bytes in `request`.
    trace_id_at: Vec<usize>,
}

/// A replayable pool of whole traces.
#[derive(Debug, Clone)]
pub struct ReplayPool {
    pool: Vec<Pooled>,
    truth: Vec<ManifestEntry>,
    next: usize,
    round: u64,
    stopping: bool,
    finished: Vec<ManifestEntry>,
    spans_made: u64,
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A generated request did not scan (a bug in the generator).
    #[error("generated request does not scan: {0}")]
    Scan(#[from] ScanError),
    /// A span does not start with its trace ID field (the generator's encoder changed).
    #[error("span at byte {0} does not start with a 16-byte trace ID")]
    Layout(usize),
}

impl ReplayPool {
    /// A pool of `kind`'s requests: [`ReplayPool::build`] for the synthetic workload, else
    /// [`ReplayPool::realistic`] with `config`'s seed, spans per request and slow threshold.
    pub fn of_kind(
        kind: CorpusKind,
        config: WorkloadConfig,
        batches: usize,
    ) -> Result<Self, ReplayError> {
        match kind {
            CorpusKind::Synthetic => Self::build(config, batches),
            CorpusKind::Realistic => Self::realistic(
                config.seed,
                batches,
                config.spans_per_request,
                config.shape.slow_threshold,
            ),
        }
    }

    /// `batches` requests of `spans` spans from the realistic corpus of `seed`. Each corpus
    /// request holds whole traces, so the truth is read from its spans: span count per trace, an
    /// ERROR status on any span, and a root lasting longer than `slow_threshold`.
    pub fn realistic(
        seed: u64,
        batches: usize,
        spans: u32,
        slow_threshold: Duration,
    ) -> Result<Self, ReplayError> {
        let mut corpus = crate::gen::corpus::Corpus::new(seed);
        let mut pool = Vec::with_capacity(batches);
        let mut truth = Vec::new();
        let slow_ns = u64::try_from(slow_threshold.as_nanos()).unwrap_or(u64::MAX);
        for _ in 0..batches {
            let request = Bytes::from(corpus.next_request_bytes(spans as usize));
            let views = tailgate_proto::scan(&request)?;
            let trace_id_at = trace_id_offsets(&request, &views)?;
            // Traces in first-seen order, so the manifest is deterministic for a seed.
            let mut index: HashMap<[u8; 16], usize> = HashMap::new();
            let first = truth.len();
            for view in &views {
                let f = view.fields();
                let i = *index.entry(f.trace_id).or_insert_with(|| {
                    truth.push(ManifestEntry {
                        trace_id: f.trace_id,
                        spans: 0,
                        error: false,
                        slow: false,
                    });
                    truth.len() - 1
                });
                let e = &mut truth[i];
                e.spans += 1;
                e.error |= f.status() == StatusCode::Error;
                e.slow |= f.is_root()
                    && f.end_time_unix_nano.saturating_sub(f.start_time_unix_nano) > slow_ns;
            }
            debug_assert_eq!(truth.len() - first, index.len());
            pool.push(Pooled {
                request: request.to_vec(),
                spans: views.len() as u32,
                trace_id_at,
            });
        }
        Ok(Self::from_parts(pool, truth))
    }

    fn from_parts(pool: Vec<Pooled>, truth: Vec<ManifestEntry>) -> Self {
        ReplayPool {
            pool,
            truth,
            next: 0,
            round: 0,
            stopping: false,
            finished: Vec::new(),
            spans_made: 0,
        }
    }

    /// Generates about `batches` requests of `config` (then the open traces are finished).
    pub fn build(config: WorkloadConfig, batches: usize) -> Result<Self, ReplayError> {
        let mut w = Workload::new(config);
        let mut pool = Vec::new();
        while let Some(b) = w.next_batch(1_700_000_000_000_000_000) {
            let request = Bytes::from(b.request);
            let trace_id_at = trace_id_offsets(&request, &tailgate_proto::scan(&request)?)?;
            pool.push(Pooled {
                request: request.to_vec(),
                spans: b.spans,
                trace_id_at,
            });
            if pool.len() >= batches {
                w.stop();
            }
        }
        Ok(Self::from_parts(pool, w.take_finished()))
    }

    /// Stops at the end of the current round (so every trace sent is whole).
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether [`ReplayPool::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Spans handed out so far.
    pub fn spans_made(&self) -> u64 {
        self.spans_made
    }

    /// Ground truth of the rounds completed since the previous call.
    pub fn take_finished(&mut self) -> Vec<ManifestEntry> {
        std::mem::take(&mut self.finished)
    }

    /// The next request and its span count; `None` once stopped at a round boundary.
    pub fn next_batch(&mut self) -> Option<(Vec<u8>, u32)> {
        if self.pool.is_empty() || (self.stopping && self.next == 0) {
            return None;
        }
        let salt = self.round.to_le_bytes();
        let item = &self.pool[self.next];
        let mut request = item.request.clone();
        for &at in &item.trace_id_at {
            for (b, s) in request[at + 8..at + 16].iter_mut().zip(salt) {
                *b ^= s;
            }
        }
        let spans = item.spans;
        self.spans_made += u64::from(spans);
        self.next += 1;
        if self.next == self.pool.len() {
            self.finished
                .extend(self.truth.iter().map(|t| salted(t, salt)));
            self.next = 0;
            self.round += 1;
        }
        Some((request, spans))
    }
}

/// Byte offsets in `request` of each span's 16 trace-ID bytes (`views` scanned from `request`).
fn trace_id_offsets(request: &Bytes, views: &[SpanView]) -> Result<Vec<usize>, ReplayError> {
    let mut out = Vec::with_capacity(views.len());
    for view in views {
        let span = view.span_slice();
        let at = span.as_ptr() as usize - request.as_ptr() as usize;
        // prost writes fields in number order: tag 0x0a, length 16, then the ID.
        if span.get(..2) != Some(&[0x0a, 0x10][..]) {
            return Err(ReplayError::Layout(at));
        }
        out.push(at + 2);
    }
    Ok(out)
}

fn salted(t: &ManifestEntry, salt: [u8; 8]) -> ManifestEntry {
    let mut e = *t;
    for (b, s) in e.trace_id[8..].iter_mut().zip(salt) {
        *b ^= s;
    }
    e
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::check::{check, SinkObservations};
    use crate::sink::SpanKey;

    #[test]
    fn rounds_are_new_traces_and_the_manifest_matches() {
        let config = WorkloadConfig {
            spans_per_request: 50,
            interleave: 10,
            ..WorkloadConfig::default()
        };
        let mut pool = ReplayPool::build(config, 5).unwrap();
        let mut keys = Vec::new();
        let mut sent = 0;
        while let Some((req, spans)) = pool.next_batch() {
            let views = tailgate_proto::scan(&Bytes::from(req)).unwrap();
            assert_eq!(views.len() as u32, spans);
            keys.extend(views.iter().map(|v| SpanKey {
                trace_id: v.trace_id(),
                span_id: v.span_id(),
            }));
            sent += 1;
            if sent == 2 * pool.pool.len() + 1 {
                pool.stop();
            }
        }
        assert_eq!(
            sent,
            3 * pool.pool.len(),
            "stops at the end of the third round"
        );
        let manifest = pool.take_finished();
        assert_eq!(manifest.len(), 3 * pool.truth.len());
        let r = check(
            &manifest,
            &[SinkObservations {
                name: "s".into(),
                keys,
            }],
        );
        let all = r.class("all").unwrap();
        assert_eq!(
            (all.complete, all.partial, all.missing, all.duplicated),
            (all.traces, 0, 0, 0)
        );
        assert_eq!(r.unknown_spans, 0);
    }

    #[test]
    fn a_realistic_pool_replays_new_traces_with_the_same_spans() {
        let mut pool = ReplayPool::realistic(7, 3, 1000, Duration::from_secs(1)).unwrap();
        assert_eq!(pool.pool.len(), 3);
        let mut rounds: Vec<Vec<SpanKey>> = vec![Vec::new(); 3];
        let mut sent = 0;
        while let Some((req, spans)) = pool.next_batch() {
            let views = tailgate_proto::scan(&Bytes::from(req)).unwrap();
            assert_eq!((views.len(), spans), (1000, 1000));
            rounds[sent / 3].extend(views.iter().map(|v| SpanKey {
                trace_id: v.trace_id(),
                span_id: v.span_id(),
            }));
            sent += 1;
            if sent == 2 * 3 + 1 {
                pool.stop();
            }
        }
        assert_eq!(sent, 9, "stops at the end of the third round");
        assert_eq!(pool.spans_made(), 9000);
        let traces = |keys: &[SpanKey]| {
            keys.iter()
                .map(|k| k.trace_id)
                .collect::<std::collections::HashSet<_>>()
        };
        let first = traces(&rounds[0]);
        assert!(first.len() > 3 * 1000 / 40, "traces of 1-40 spans");
        for later in &rounds[1..] {
            assert_eq!(later.len(), rounds[0].len());
            let ids = traces(later);
            assert_eq!(ids.len(), first.len(), "same traces, renamed");
            assert!(ids.is_disjoint(&first), "every round has new trace IDs");
            // Only the trace IDs change: span IDs are replayed as they were.
            let span_ids = |k: &[SpanKey]| k.iter().map(|k| k.span_id).collect::<Vec<_>>();
            assert_eq!(span_ids(later), span_ids(&rounds[0]));
        }
        let manifest = pool.take_finished();
        assert_eq!(manifest.len(), 3 * first.len());
        assert!(
            manifest.iter().any(|e| e.error),
            "the corpus has error traces"
        );
        let r = check(
            &manifest,
            &[SinkObservations {
                name: "s".into(),
                keys: rounds.concat(),
            }],
        );
        let all = r.class("all").unwrap();
        assert_eq!(
            (all.complete, all.partial, all.missing, all.duplicated),
            (all.traces, 0, 0, 0)
        );
        assert_eq!(r.unknown_spans, 0);
    }

    #[test]
    fn the_corpus_kind_parses_its_names() {
        for k in [CorpusKind::Synthetic, CorpusKind::Realistic] {
            assert_eq!(CorpusKind::parse(k.name()), Some(k));
        }
        assert_eq!(CorpusKind::parse("real"), None);
        assert_eq!(CorpusKind::default(), CorpusKind::Synthetic);
    }
}
