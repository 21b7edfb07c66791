//! Replay: generate a pool of requests once, then resend it with fresh trace IDs each round.
//!
//! Live generation costs ~8 µs of CPU per span (random attributes + prost encoding; see
//! docs/perf.md), far too slow to load a proxy. A replayed request costs a copy plus a 16-byte
//! patch per span: the pool is built from whole traces only (the workload is drained), and each
//! round XORs the round number into bytes 8..16 of every trace ID, so every round is a new set of
//! traces with the same shapes and the manifest stays exact.

use bytes::Bytes;

use super::workload::{Workload, WorkloadConfig};
use crate::manifest::ManifestEntry;
use tailgate_proto::ScanError;

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
    /// Generates about `batches` requests of `config` (then the open traces are finished).
    pub fn build(config: WorkloadConfig, batches: usize) -> Result<Self, ReplayError> {
        let mut w = Workload::new(config);
        let mut pool = Vec::new();
        while let Some(b) = w.next_batch(1_700_000_000_000_000_000) {
            let request = Bytes::from(b.request);
            let mut trace_id_at = Vec::with_capacity(b.spans as usize);
            for view in tailgate_proto::scan(&request)? {
                let span = view.span_slice();
                let at = span.as_ptr() as usize - request.as_ptr() as usize;
                // prost writes fields in number order: tag 0x0a, length 16, then the ID.
                if span.get(..2) != Some(&[0x0a, 0x10][..]) {
                    return Err(ReplayError::Layout(at));
                }
                trace_id_at.push(at + 2);
            }
            pool.push(Pooled {
                request: request.to_vec(),
                spans: b.spans,
                trace_id_at,
            });
            if pool.len() >= batches {
                w.stop();
            }
        }
        Ok(ReplayPool {
            pool,
            truth: w.take_finished(),
            next: 0,
            round: 0,
            stopping: false,
            finished: Vec::new(),
            spans_made: 0,
        })
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
}
