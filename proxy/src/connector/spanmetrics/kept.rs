//! `tailgate.exemplars_kept_by`: exemplars only of traces a `tail_sampling` processor kept.
//!
//! A trace is decided on its owner core (hash of the trace ID), generally not the core whose
//! spanmetrics stage counted the span, and up to `decision_wait` after the span. So nothing is
//! asked on the hot path: each core's stage hands its candidates to the merger with its deltas
//! ([`super::aggregate::Candidate`]); each owner core publishes the IDs of the traces it keeps,
//! one batch per decision tick (and per request that forwards late spans of kept traces), into a
//! bounded channel per connector ([`KeptOnCore`]); the merger thread remembers those IDs for a
//! bounded time and count ([`KeptSet`]) and settles each candidate once it has waited
//! `decision_wait` plus [`DECISION_MARGIN`] since the core counted it ([`Pending`]): kept → an
//! exemplar, otherwise dropped and counted with a reason.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::aggregate::Candidate;
use crate::telemetry::metrics::{Local, Metric};

/// Added to `decision_wait` before a candidate is settled: the owner core's timer fires a due
/// decision late by up to its tick, parts cross the core mesh, and the merger looks every 200 ms.
pub const DECISION_MARGIN: Duration = Duration::from_secs(2);

/// Batches of kept IDs in flight from all cores to one merger. The merger empties the channel
/// at least every 200 ms; a core publishes at most once per decision tick and request.
pub const CHANNEL_BATCHES: usize = 4096;

/// Kept trace IDs one merger remembers (about 40 bytes each: 10 MiB at most).
pub const MAX_KEPT: usize = 1 << 18;

/// Candidates one merger holds while they wait for their decision (about 80 bytes each).
pub const MAX_PENDING: usize = 1 << 17;

/// A batch of kept trace IDs.
pub type KeptBatch = Vec<[u8; 16]>;

/// The process-wide half of one connector's subscription to a `tail_sampling` processor.
#[derive(Clone)]
pub struct KeptPublisher {
    /// Where the processor's owner cores send.
    pub tx: SyncSender<KeptBatch>,
    /// `tailgate_connector_spanmetrics_kept_decisions_lost_total{connector,reason="channel_full"}`.
    pub lost: Metric,
}

impl KeptPublisher {
    /// A pair: the publisher for the cores and the receiver for the merger.
    pub fn channel(lost: Metric) -> (KeptPublisher, Receiver<KeptBatch>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_BATCHES);
        (KeptPublisher { tx, lost }, rx)
    }
}

/// One core's publishers (one per connector naming the processor); empty when none does.
#[derive(Default)]
pub struct KeptOnCore {
    to: Vec<(SyncSender<KeptBatch>, Local)>,
}

impl KeptOnCore {
    /// The publishers of `core`.
    pub fn new(publishers: &[KeptPublisher], core: usize) -> Self {
        KeptOnCore {
            to: publishers
                .iter()
                .map(|p| (p.tx.clone(), p.lost.local(core)))
                .collect(),
        }
    }

    /// True when some connector listens (the processor only collects IDs then).
    pub fn is_on(&self) -> bool {
        !self.to.is_empty()
    }

    /// Sends one batch to every listening merger without waiting: a full channel loses the batch
    /// (counted), never blocks the core.
    pub fn publish(&self, ids: KeptBatch) {
        if ids.is_empty() {
            return;
        }
        let n = ids.len() as u64;
        let Some(((last, last_lost), rest)) = self.to.split_last() else {
            return;
        };
        for (tx, lost) in rest {
            send(tx, ids.clone(), lost, n);
        }
        send(last, ids, last_lost, n);
    }
}

fn send(tx: &SyncSender<KeptBatch>, ids: KeptBatch, lost: &Local, n: u64) {
    match tx.try_send(ids) {
        Ok(()) => {}
        // Disconnected: the merger has stopped (shutdown); nothing is lost that it would use.
        Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(_)) => lost.add(n),
    }
}

/// The trace IDs kept recently, bounded in time (`retention`) and count ([`MAX_KEPT`]).
#[derive(Debug)]
pub struct KeptSet {
    ids: HashMap<[u8; 16], Instant, ahash::RandomState>,
    order: VecDeque<([u8; 16], Instant)>,
    retention: Duration,
    cap: usize,
    /// IDs forgotten because the set was full before their retention ended.
    pub evicted: u64,
}

impl KeptSet {
    /// An empty set remembering each ID for `retention`, at most `cap` of them.
    pub fn new(retention: Duration, cap: usize) -> Self {
        KeptSet {
            ids: HashMap::default(),
            order: VecDeque::new(),
            retention,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    /// Remembers `id` as kept at `now`.
    pub fn insert(&mut self, id: [u8; 16], now: Instant) {
        if self.order.len() >= self.cap {
            self.pop_oldest();
            self.evicted += 1;
        }
        self.ids.insert(id, now);
        self.order.push_back((id, now));
    }

    /// True when `id` was kept within the retention.
    pub fn contains(&self, id: &[u8; 16]) -> bool {
        self.ids.contains_key(id)
    }

    /// Forgets IDs older than the retention.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(_, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.retention {
                break;
            }
            self.pop_oldest();
        }
    }

    /// IDs remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn pop_oldest(&mut self) {
        if let Some((id, at)) = self.order.pop_front() {
            // A later insert of the same ID keeps it (its newer entry is further back).
            if self.ids.get(&id) == Some(&at) {
                self.ids.remove(&id);
            }
        }
    }
}

/// Why a candidate did not become an exemplar (`reason` label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateDrop {
    /// No kept decision for its trace arrived in time: the policy dropped it, another gateway
    /// decided it (issue 18's forwarding), or the decision was lost (counted apart).
    NotKept,
    /// Its point already had `max_per_data_point` exemplars in this flush.
    MaxPerDataPoint,
    /// Its series had no point in the flush it was settled for (delta, or expired).
    NoPoint,
    /// The merger already held [`MAX_PENDING`] candidates.
    Overflow,
    /// Still waiting for its decision at shutdown.
    Shutdown,
}

impl CandidateDrop {
    /// Every reason, in label order.
    pub const ALL: [CandidateDrop; 5] = [
        CandidateDrop::NotKept,
        CandidateDrop::MaxPerDataPoint,
        CandidateDrop::NoPoint,
        CandidateDrop::Overflow,
        CandidateDrop::Shutdown,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            CandidateDrop::NotKept => "not_kept",
            CandidateDrop::MaxPerDataPoint => "max_per_data_point",
            CandidateDrop::NoPoint => "no_point",
            CandidateDrop::Overflow => "overflow",
            CandidateDrop::Shutdown => "shutdown",
        }
    }
}

/// One waiting candidate.
#[derive(Debug)]
pub struct Waiting {
    /// When its decision should be known.
    pub ready: Instant,
    /// Its series.
    pub key: Arc<[u8]>,
    /// The span.
    pub candidate: Candidate,
}

/// Candidates waiting for their trace's decision, roughly in the order cores counted them
/// (one core's hand-over may hold older ones than another's already queued: those wait a little
/// longer than needed, never less).
#[derive(Debug, Default)]
pub struct Pending {
    queue: VecDeque<Waiting>,
}

impl Pending {
    /// Queues `c` of series `key` to be settled `wait` after the core counted it; false (not
    /// queued) when [`MAX_PENDING`] wait already.
    pub fn push(&mut self, key: &Arc<[u8]>, c: Candidate, wait: Duration) -> bool {
        if self.queue.len() >= MAX_PENDING {
            return false;
        }
        self.queue.push_back(Waiting {
            ready: c.seen + wait,
            key: key.clone(),
            candidate: c,
        });
        true
    }

    /// Takes the candidates at the front that are ready at `now` (all of them with `all`).
    pub fn take_ready(&mut self, now: Instant, all: bool) -> Vec<Waiting> {
        let n = self
            .queue
            .iter()
            .take_while(|w| all || w.ready <= now)
            .count();
        self.queue.drain(..n).collect()
    }

    /// Candidates waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_ids_expire_and_the_set_stays_bounded() {
        let t = Instant::now();
        let mut k = KeptSet::new(Duration::from_secs(10), 2);
        k.insert([1; 16], t);
        k.insert([2; 16], t + Duration::from_secs(5));
        assert!(k.contains(&[1; 16]) && k.contains(&[2; 16]));
        k.expire(t + Duration::from_secs(10));
        assert!(!k.contains(&[1; 16]) && k.contains(&[2; 16]));
        k.insert([3; 16], t + Duration::from_secs(11));
        k.insert([4; 16], t + Duration::from_secs(11));
        assert_eq!((k.len(), k.evicted), (2, 1));
        assert!(!k.contains(&[2; 16]));
        // An ID published again lives from its newest entry: the older one leaving keeps it.
        let mut k = KeptSet::new(Duration::from_secs(10), 8);
        k.insert([5; 16], t);
        k.insert([5; 16], t + Duration::from_secs(8));
        k.expire(t + Duration::from_secs(12));
        assert!(k.contains(&[5; 16]));
        k.expire(t + Duration::from_secs(18));
        assert!(k.is_empty());
    }

    #[test]
    fn candidates_wait_their_turn() {
        let t = Instant::now();
        let c = |ms: u64| Candidate {
            trace_id: [1; 16],
            span_id: [2; 8],
            value: 1.0,
            seen: t + Duration::from_millis(ms),
        };
        let key: Arc<[u8]> = Arc::from(&b"k"[..]);
        let mut p = Pending::default();
        let wait = Duration::from_secs(1);
        assert!(p.push(&key, c(0), wait) && p.push(&key, c(500), wait));
        assert!(p
            .take_ready(t + Duration::from_millis(999), false)
            .is_empty());
        assert_eq!(
            p.take_ready(t + Duration::from_millis(1000), false).len(),
            1
        );
        assert_eq!(p.take_ready(t, true).len(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn publishing_never_blocks_and_counts_what_a_full_channel_loses() {
        let registry = crate::telemetry::metrics::Registry::new(1);
        let lost = registry.register(
            "lost",
            "test",
            crate::telemetry::metrics::Kind::Counter,
            &[],
        );
        let (p, rx) = KeptPublisher::channel(lost.clone());
        let core = KeptOnCore::new(&[p], 0);
        assert!(core.is_on() && !KeptOnCore::default().is_on());
        for _ in 0..CHANNEL_BATCHES + 1 {
            core.publish(vec![[9; 16], [8; 16]]);
        }
        core.publish(Vec::new());
        assert_eq!(lost.total(), 2);
        assert_eq!(rx.try_iter().count(), CHANNEL_BATCHES);
    }
}
