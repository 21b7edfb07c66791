//! The cross-thread half of `spanmetrics`: one plain thread per connector merges what the cores
//! hand over and emits a [`MetricsBatch`] every `metrics_flush_interval` to the exporters of the
//! metrics pipelines the connector feeds.
//!
//! Cores send deltas (what each series counted since their last hand-off) over an mpsc channel,
//! so nothing on the data plane waits for this thread. Cumulative temporality keeps running totals
//! here (series idle longer than `metrics_expiration` are dropped); delta temporality emits what
//! arrived since the previous flush and forgets it, as the collector purges its state.
//!
//! Exemplars, as the collector keeps them: the first `max_per_data_point` spans of a series since
//! the previous flush, on both the calls and the duration point, stamped with the flush time and
//! forgotten after it. With `tailgate.exemplars_kept_by` the candidates first wait for their
//! trace's decision ([`super::kept`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::aggregate::{Candidate, SeriesDelta};
use super::config::Settings;
use super::kept::{CandidateDrop, KeptBatch, KeptPublisher, KeptSet, Pending, MAX_KEPT};
use super::schedule;
use crate::metrics_data::exponential::ExponentialHistogram;
use crate::metrics_data::{
    Attributes, Exemplar, ExponentialHistogramPoint, HistogramPoint, Metric, MetricData,
    MetricsBatch, MetricsConsumer, ResourceMetrics, SumPoint, Temporality,
};
use crate::telemetry::metrics::Local;

/// What a core holds to reach its connector's merger.
#[derive(Clone)]
pub struct MergerHandle {
    /// The resolved settings (cores aggregate with them).
    pub settings: Arc<Settings>,
    /// Where cores send their deltas.
    pub tx: Sender<Vec<SeriesDelta>>,
    /// The start of the flush grid cores and merger share (see [`super::schedule`]).
    pub epoch: Instant,
    /// With `tailgate.exemplars_kept_by`: where that processor's cores publish kept trace IDs.
    pub kept: Option<KeptPublisher>,
}

impl MergerHandle {
    /// The publisher for `processor`'s cores, when this connector takes exemplars only of the
    /// traces that processor keeps.
    pub fn publisher_for(&self, processor: &crate::config::ComponentId) -> Option<KeptPublisher> {
        let named = self.settings.exemplars.as_ref()?.kept_by.as_ref()?;
        (named == processor).then(|| self.kept.clone()).flatten()
    }
}

/// One merged series.
#[derive(Debug)]
struct Merged {
    resource: Attributes,
    attributes: Attributes,
    calls: u64,
    buckets: Vec<u64>,
    sum: f64,
    exponential: Option<Box<ExponentialHistogram>>,
    start_unix_nano: u64,
    updated: Instant,
    /// Exemplars since the last flush.
    exemplars: Vec<Candidate>,
}

/// Waiting for `tail_sampling` decisions (`tailgate.exemplars_kept_by`).
#[derive(Debug)]
struct KeptFilter {
    /// `decision_wait` plus the margin.
    wait: Duration,
    kept: KeptSet,
    pending: Pending,
}

/// The merge state, separate from the thread so tests drive it directly.
#[derive(Debug)]
pub struct MergeState {
    settings: Arc<Settings>,
    series: HashMap<Arc<[u8]>, Merged>,
    /// Resource key → the attributes of the first resource seen with it: the collector gives all
    /// series of a resource key those attributes (they differ from a series' own resource only
    /// with `resource_metrics_key_attributes`).
    resources: HashMap<Arc<[u8]>, Attributes>,
    last_flush_unix_nano: u64,
    /// Set when exemplars wait for a processor's decisions.
    filter: Option<KeptFilter>,
    /// Candidates that did not become exemplars, by [`CandidateDrop::ALL`] index.
    dropped: [u64; CandidateDrop::ALL.len()],
}

impl MergeState {
    /// An empty state; `now` is the connector's start time.
    pub fn new(settings: Arc<Settings>, now_unix_nano: u64) -> Self {
        MergeState {
            settings,
            series: HashMap::new(),
            resources: HashMap::new(),
            last_flush_unix_nano: now_unix_nano,
            filter: None,
            dropped: [0; CandidateDrop::ALL.len()],
        }
    }

    /// Makes candidates wait `wait` for their trace's kept decision ([`MergeState::kept`]).
    pub fn with_kept_filter(mut self, wait: Duration) -> Self {
        // A candidate reaches the merger up to one interval (and the hand-over margin) after it
        // was counted; its trace's decision may come before that, so IDs are kept that long too.
        let retention = wait + self.settings.flush_interval + super::kept::DECISION_MARGIN;
        self.filter = Some(KeptFilter {
            wait,
            kept: KeptSet::new(retention, MAX_KEPT),
            pending: Pending::default(),
        });
        self
    }

    /// Candidates dropped so far, by reason.
    pub fn dropped(&self) -> impl Iterator<Item = (CandidateDrop, u64)> + '_ {
        CandidateDrop::ALL.iter().copied().zip(self.dropped)
    }

    /// Kept IDs forgotten early because the set was full.
    pub fn kept_evicted(&self) -> u64 {
        self.filter.as_ref().map_or(0, |f| f.kept.evicted)
    }

    fn drop_candidates(&mut self, why: CandidateDrop, n: u64) {
        if let Some(i) = CandidateDrop::ALL.iter().position(|r| *r == why) {
            self.dropped[i] += n;
        }
    }

    /// Remembers trace IDs a `tail_sampling` core kept.
    pub fn kept(&mut self, ids: KeptBatch, now: Instant) {
        if let Some(f) = &mut self.filter {
            for id in ids {
                f.kept.insert(id, now);
            }
        }
    }

    /// Settles the waiting candidates whose decision is due (every one with `all`, at
    /// shutdown: those not kept by then count as `shutdown`).
    pub fn settle(&mut self, now: Instant, all: bool) {
        let Some(f) = &mut self.filter else {
            return;
        };
        f.kept.expire(now);
        let ready = f.pending.take_ready(now, all);
        let cap = self.max_exemplars();
        for w in ready {
            let kept = self
                .filter
                .as_ref()
                .is_some_and(|f| f.kept.contains(&w.candidate.trace_id));
            let why = match self.series.get_mut(&w.key) {
                _ if !kept && all && w.ready > now => CandidateDrop::Shutdown,
                _ if !kept => CandidateDrop::NotKept,
                None => CandidateDrop::NoPoint,
                Some(m) if m.exemplars.len() >= cap => CandidateDrop::MaxPerDataPoint,
                Some(m) => {
                    m.exemplars.push(w.candidate);
                    continue;
                }
            };
            self.drop_candidates(why, 1);
        }
    }

    fn max_exemplars(&self) -> usize {
        self.settings
            .exemplars
            .as_ref()
            .map_or(0, |x| x.max_per_point)
    }

    /// Adds one core's deltas.
    pub fn apply(&mut self, deltas: Vec<SeriesDelta>, now: Instant, now_unix_nano: u64) {
        let cap = self.max_exemplars();
        for mut d in deltas {
            let candidates = std::mem::take(&mut d.exemplars);
            let resources = &mut self.resources;
            let m = self.series.entry(d.key.clone()).or_insert_with(|| Merged {
                resource: resources
                    .entry(Arc::from(&d.key[..d.resource_key_len.min(d.key.len())]))
                    .or_insert(d.resource)
                    .clone(),
                attributes: d.attributes,
                calls: 0,
                buckets: vec![0; d.buckets.len()],
                sum: 0.0,
                exponential: None,
                start_unix_nano: now_unix_nano,
                updated: now,
                exemplars: Vec::new(),
            });
            if let Some(h) = d.exponential {
                match &mut m.exponential {
                    Some(mine) => mine.merge(&h),
                    None => m.exponential = Some(h),
                }
            }
            m.calls += d.calls;
            for (a, b) in m.buckets.iter_mut().zip(&d.buckets) {
                *a += b;
            }
            m.sum += d.sum;
            m.updated = now;
            if candidates.is_empty() {
                continue;
            }
            match &mut self.filter {
                Some(f) => {
                    let mut overflow = 0;
                    for c in candidates {
                        if !f.pending.push(&d.key, c, f.wait) {
                            overflow += 1;
                        }
                    }
                    self.drop_candidates(CandidateDrop::Overflow, overflow);
                }
                None => {
                    // The first ones of the interval over all cores, as one collector would keep.
                    let room = cap.saturating_sub(m.exemplars.len());
                    let over = candidates.len().saturating_sub(room);
                    m.exemplars.extend(candidates.into_iter().take(room));
                    self.drop_candidates(CandidateDrop::MaxPerDataPoint, over as u64);
                }
            }
        }
    }

    /// Drops every resource that saw no span for `exp` or longer, with all its series, as the
    /// collector's `metrics_expiration` removes whole resource entries (a series idle inside a
    /// resource that is still active stays).
    fn expire(&mut self, now: Instant, exp: Duration) {
        let mut last_seen: HashMap<Attributes, Instant> = HashMap::new();
        for m in self.series.values() {
            let t = last_seen.entry(m.resource.clone()).or_insert(m.updated);
            *t = (*t).max(m.updated);
        }
        self.series
            .retain(|_, m| now.saturating_duration_since(last_seen[&m.resource]) < exp);
        last_seen.retain(|_, t| now.saturating_duration_since(*t) < exp);
        self.resources.retain(|_, a| last_seen.contains_key(a));
    }

    /// Builds the batch of one flush and resets what the temporality says to reset.
    pub fn flush(&mut self, now: Instant, now_unix_nano: u64) -> MetricsBatch {
        if let Some(exp) = self.settings.expiration {
            self.expire(now, exp);
        }
        let temporality = self.settings.temporality;
        let window_start = self.last_flush_unix_nano;
        let mut groups: BTreeMap<Attributes, Vec<&Merged>> = BTreeMap::new();
        for m in self.series.values() {
            groups.entry(m.resource.clone()).or_default().push(m);
        }
        let name = |n: &str| {
            if self.settings.namespace.is_empty() {
                n.to_owned()
            } else {
                format!("{}.{n}", self.settings.namespace)
            }
        };
        let mut batch = MetricsBatch::default();
        for (resource, mut series) in groups {
            series.sort_by(|a, b| a.attributes.cmp(&b.attributes));
            let start = |m: &Merged| match temporality {
                Temporality::Cumulative => m.start_unix_nano,
                Temporality::Delta => window_start,
            };
            let calls = series
                .iter()
                .map(|m| SumPoint {
                    attributes: m.attributes.clone(),
                    start_unix_nano: start(m),
                    time_unix_nano: now_unix_nano,
                    value: m.calls,
                    exemplars: exemplars(m, now_unix_nano),
                })
                .collect();
            let mut metrics = vec![Metric {
                name: name("calls"),
                unit: "",
                data: MetricData::Sum {
                    temporality,
                    points: calls,
                },
            }];
            if let Some(bounds) = &self.settings.bounds {
                let points = series
                    .iter()
                    .map(|m| HistogramPoint {
                        attributes: m.attributes.clone(),
                        start_unix_nano: start(m),
                        time_unix_nano: now_unix_nano,
                        bucket_counts: m.buckets.clone(),
                        sum: m.sum,
                        count: m.calls,
                        exemplars: exemplars(m, now_unix_nano),
                    })
                    .collect();
                metrics.push(Metric {
                    name: name("duration"),
                    unit: self.settings.unit.ucum(),
                    data: MetricData::Histogram {
                        temporality,
                        bounds: bounds.clone().into(),
                        points,
                    },
                });
            }
            if self.settings.exponential_max_size.is_some() {
                let points = series
                    .iter()
                    .map(|m| ExponentialHistogramPoint {
                        attributes: m.attributes.clone(),
                        start_unix_nano: start(m),
                        time_unix_nano: now_unix_nano,
                        histogram: m.exponential.as_deref().cloned().unwrap_or_else(|| {
                            ExponentialHistogram::new(
                                self.settings.exponential_max_size.unwrap_or_default(),
                            )
                        }),
                        exemplars: exemplars(m, now_unix_nano),
                    })
                    .collect();
                metrics.push(Metric {
                    name: name("duration"),
                    unit: self.settings.unit.ucum(),
                    data: MetricData::ExponentialHistogram {
                        temporality,
                        points,
                    },
                });
            }
            batch.resources.push(ResourceMetrics { resource, metrics });
        }
        if temporality == Temporality::Delta {
            self.series.clear();
            self.resources.clear();
        } else {
            // Exemplars belong to the interval just emitted, as the collector clears them.
            for m in self.series.values_mut() {
                m.exemplars.clear();
            }
        }
        self.last_flush_unix_nano = now_unix_nano;
        batch
    }
}

/// A series' exemplars as emitted: stamped with the flush time, as the collector does.
fn exemplars(m: &Merged, now_unix_nano: u64) -> Vec<Exemplar> {
    m.exemplars
        .iter()
        .map(|c| Exemplar {
            trace_id: c.trace_id,
            span_id: c.span_id,
            value: c.value,
            time_unix_nano: now_unix_nano,
        })
        .collect()
}

/// Wall-clock now in Unix nanoseconds.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What a merger waiting for `tailgate.exemplars_kept_by` decisions needs.
pub struct KeptWiring {
    /// `decision_wait` of the processor plus [`super::kept::DECISION_MARGIN`].
    pub wait: Duration,
    /// Where the processor's cores publish (cloned into the [`MergerHandle`]).
    pub publisher: KeptPublisher,
    /// What the merger reads.
    pub rx: Receiver<KeptBatch>,
}

/// The merger's own counters (it is their only writer).
pub struct MergerMetrics {
    /// `tailgate_connector_spanmetrics_exemplars_dropped_total{connector,reason}`, by
    /// [`CandidateDrop::ALL`] index.
    pub dropped: Vec<Local>,
    /// `tailgate_connector_spanmetrics_kept_decisions_lost_total{connector,reason="evicted"}`.
    pub evicted: Local,
}

impl MergerMetrics {
    fn publish(&self, state: &MergeState) {
        for (l, (_, n)) in self.dropped.iter().zip(state.dropped()) {
            l.set(n);
        }
        self.evicted.set(state.kept_evicted());
    }
}

/// Starts the merger thread of one connector; it flushes at every point of the grid
/// `epoch + k·flush_interval` (cores hand over just before, [`super::schedule`]) and once more
/// when `stop` is set (after the cores have handed over their last deltas).
pub fn start(
    name: String,
    settings: Arc<Settings>,
    consumers: Vec<Arc<dyn MetricsConsumer>>,
    stop: Arc<AtomicBool>,
    kept: Option<KeptWiring>,
    metrics: MergerMetrics,
) -> std::io::Result<MergerHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut state = MergeState::new(settings.clone(), unix_nanos());
    let (publisher, kept_rx) = match kept {
        Some(k) => {
            state = state.with_kept_filter(k.wait);
            (Some(k.publisher), Some(k.rx))
        }
        None => (None, None),
    };
    let epoch = Instant::now();
    let inputs = Inputs { rx, kept: kept_rx };
    std::thread::Builder::new()
        .name(format!("tailgate-{name}"))
        .spawn(move || run(state, inputs, consumers, stop, epoch, metrics))?;
    Ok(MergerHandle {
        settings,
        tx,
        epoch,
        kept: publisher,
    })
}

/// What the merger thread reads.
struct Inputs {
    rx: Receiver<Vec<SeriesDelta>>,
    kept: Option<Receiver<KeptBatch>>,
}

impl Inputs {
    /// Applies everything queued: deltas, then kept IDs.
    fn drain(&self, state: &mut MergeState) {
        while let Ok(d) = self.rx.try_recv() {
            state.apply(d, Instant::now(), unix_nanos());
        }
        self.drain_kept(state);
    }

    fn drain_kept(&self, state: &mut MergeState) {
        let Some(kept) = &self.kept else {
            return;
        };
        loop {
            match kept.try_recv() {
                Ok(ids) => state.kept(ids, Instant::now()),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }
}

fn run(
    mut state: MergeState,
    inputs: Inputs,
    consumers: Vec<Arc<dyn MetricsConsumer>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    metrics: MergerMetrics,
) {
    let interval = state.settings.flush_interval;
    let mut next = schedule::next_flush(epoch, interval, Instant::now());
    let emit = |state: &mut MergeState| {
        let batch = state.flush(Instant::now(), unix_nanos());
        metrics.publish(state);
        if !batch.resources.is_empty() {
            for c in &consumers {
                c.consume(&batch);
            }
        }
    };
    let last = |state: &mut MergeState| {
        inputs.drain(state);
        // Nothing is decided after this: what still waits is settled as it stands.
        state.settle(Instant::now(), true);
        emit(state);
    };
    loop {
        // Wake at least every 200 ms to notice `stop` (and settle waiting candidates).
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match inputs.rx.recv_timeout(wait) {
            Ok(d) => state.apply(d, Instant::now(), unix_nanos()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                last(&mut state);
                return;
            }
        }
        inputs.drain_kept(&mut state);
        state.settle(Instant::now(), false);
        if stop.load(Ordering::Relaxed) {
            last(&mut state);
            return;
        }
        if Instant::now() >= next {
            // The cores handed over a margin ago; take everything queued before flushing.
            inputs.drain(&mut state);
            state.settle(Instant::now(), false);
            emit(&mut state);
            // A flush that overran skips to the next grid point rather than flushing twice.
            next = schedule::next_flush(epoch, interval, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::error::ConfigErrors;
    use crate::connector::spanmetrics::config::SpanMetricsConfig;

    fn settings(yaml: &str) -> Arc<Settings> {
        let c: SpanMetricsConfig = serde_yaml::from_str(yaml).unwrap();
        let s = c.resolve("x", &mut ConfigErrors::default(), &mut Vec::new());
        Arc::new(s)
    }

    fn delta(key: &[u8], calls: u64) -> SeriesDelta {
        SeriesDelta {
            key: key.into(),
            resource_key_len: 0,
            resource: vec![("service.name".to_owned(), "a".to_owned())].into(),
            attributes: vec![(
                "span.name".to_owned(),
                String::from_utf8_lossy(key).into_owned(),
            )]
            .into(),
            calls,
            buckets: vec![calls, 0],
            sum: calls as f64,
            exponential: None,
            exemplars: Vec::new(),
        }
    }

    fn calls(b: &MetricsBatch) -> Vec<u64> {
        b.resources
            .iter()
            .flat_map(|r| &r.metrics)
            .filter_map(|m| match &m.data {
                MetricData::Sum { points, .. } => Some(points.iter().map(|p| p.value)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn cumulative_keeps_totals_and_delta_forgets() {
        let t = Instant::now();
        let mut c = MergeState::new(settings("histogram: {explicit: {buckets: [1s]}}"), 0);
        c.apply(vec![delta(b"x", 2)], t, 1);
        c.apply(vec![delta(b"x", 3)], t, 1);
        assert_eq!(calls(&c.flush(t, 2)), vec![5]);
        c.apply(vec![delta(b"x", 1)], t, 3);
        let b = c.flush(t, 4);
        assert_eq!(calls(&b), vec![6]);
        assert_eq!(
            b.resources[0].metrics[1].name,
            "traces.span.metrics.duration"
        );

        let mut d = MergeState::new(
            settings("aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA"),
            0,
        );
        d.apply(vec![delta(b"x", 2), delta(b"y", 1)], t, 1);
        d.apply(vec![delta(b"x", 3)], t, 1);
        assert_eq!(calls(&d.flush(t, 2)), vec![5, 1]);
        d.apply(vec![delta(b"x", 1)], t, 3);
        let b = d.flush(t, 4);
        assert_eq!(calls(&b), vec![1]);
        let MetricData::Sum {
            points,
            temporality,
        } = &b.resources[0].metrics[0].data
        else {
            panic!("sum")
        };
        assert_eq!(*temporality, Temporality::Delta);
        assert_eq!(
            points[0].start_unix_nano, 2,
            "delta window starts at the last flush"
        );
    }

    #[test]
    fn series_of_one_resource_key_share_the_first_resource_seen() {
        let t = Instant::now();
        let mut c = MergeState::new(settings("{}"), 0);
        let mut a = delta(b"rk-a", 1);
        a.resource_key_len = 2;
        let mut b = delta(b"rk-b", 1);
        b.resource_key_len = 2;
        b.resource = vec![("service.name".to_owned(), "other pod".to_owned())].into();
        c.apply(vec![a, b], t, 1);
        let batch = c.flush(t, 2);
        assert_eq!(batch.resources.len(), 1, "one resource key, one group");
        assert_eq!(calls(&batch), vec![1, 1]);
        assert_eq!(batch.resources[0].resource[0].1, "a");
    }

    #[test]
    fn idle_resources_expire_with_all_their_series() {
        let t = Instant::now();
        let mut c = MergeState::new(settings("metrics_expiration: 1s"), 0);
        c.apply(vec![delta(b"x", 2), delta(b"y", 1)], t, 1);
        assert_eq!(
            calls(&c.flush(t + Duration::from_millis(500), 2)),
            vec![2, 1]
        );
        // `y` is idle but its resource is not: it stays, as in the collector.
        c.apply(vec![delta(b"x", 1)], t + Duration::from_millis(900), 3);
        assert_eq!(
            calls(&c.flush(t + Duration::from_millis(1500), 4)),
            vec![3, 1]
        );
        // Exactly the expiration after the last span: gone (the collector compares with >=).
        assert!(c
            .flush(t + Duration::from_millis(1900), 5)
            .resources
            .is_empty());
    }

    fn candidate(trace: u8, value: f64, seen: Instant) -> Candidate {
        Candidate {
            trace_id: [trace; 16],
            span_id: [trace; 8],
            value,
            seen,
        }
    }

    fn with_candidates(key: &[u8], cs: Vec<Candidate>) -> SeriesDelta {
        let mut d = delta(key, cs.len() as u64);
        d.exemplars = cs;
        d
    }

    /// (trace ID byte, value, time) of every exemplar, calls first then duration.
    fn exemplar_list(b: &MetricsBatch) -> Vec<(String, u8, f64, u64)> {
        let mut out = Vec::new();
        for m in b.resources.iter().flat_map(|r| &r.metrics) {
            let lists: Vec<&Vec<Exemplar>> = match &m.data {
                MetricData::Sum { points, .. } => points.iter().map(|p| &p.exemplars).collect(),
                MetricData::Histogram { points, .. } => {
                    points.iter().map(|p| &p.exemplars).collect()
                }
                MetricData::ExponentialHistogram { points, .. } => {
                    points.iter().map(|p| &p.exemplars).collect()
                }
            };
            for e in lists.into_iter().flatten() {
                assert_eq!(e.span_id, [e.trace_id[0]; 8]);
                out.push((m.name.clone(), e.trace_id[0], e.value, e.time_unix_nano));
            }
        }
        out
    }

    fn dropped(c: &MergeState, why: CandidateDrop) -> u64 {
        c.dropped().find(|(r, _)| *r == why).map_or(0, |(_, n)| n)
    }

    #[test]
    fn exemplars_are_the_first_of_the_interval_on_both_metrics_then_cleared() {
        let t = Instant::now();
        let mut c = MergeState::new(
            settings("exemplars: {enabled: true, max_per_data_point: 2}"),
            0,
        );
        // Two cores hand over: the first two candidates in arrival order win.
        c.apply(
            vec![with_candidates(b"x", vec![candidate(1, 5.0, t)])],
            t,
            1,
        );
        c.apply(
            vec![with_candidates(
                b"x",
                vec![candidate(2, 7.5, t), candidate(3, 9.0, t)],
            )],
            t,
            1,
        );
        let b = c.flush(t, 42);
        let calls = "traces.span.metrics.calls".to_owned();
        let duration = "traces.span.metrics.duration".to_owned();
        assert_eq!(
            exemplar_list(&b),
            vec![
                (calls.clone(), 1, 5.0, 42),
                (calls, 2, 7.5, 42),
                (duration.clone(), 1, 5.0, 42),
                (duration, 2, 7.5, 42),
            ],
            "stamped with the flush time, as the collector does"
        );
        assert_eq!(dropped(&c, CandidateDrop::MaxPerDataPoint), 1);
        // Cumulative: the counts stay, the exemplars belonged to the interval.
        let b = c.flush(t, 43);
        assert_eq!(calls_of(&b), vec![3]);
        assert!(exemplar_list(&b).is_empty());
    }

    fn calls_of(b: &MetricsBatch) -> Vec<u64> {
        calls(b)
    }

    #[test]
    fn exponential_points_carry_exemplars_too() {
        let t = Instant::now();
        let mut c = MergeState::new(
            settings("exemplars: {enabled: true}\nhistogram: {exponential: {}}"),
            0,
        );
        let mut d = with_candidates(b"x", vec![candidate(4, 3.0, t)]);
        d.buckets.clear();
        c.apply(vec![d], t, 1);
        let names: Vec<String> = exemplar_list(&c.flush(t, 2))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(
            names,
            vec!["traces.span.metrics.calls", "traces.span.metrics.duration"]
        );
    }

    #[test]
    fn kept_by_attaches_only_kept_traces_after_the_wait() {
        let t = Instant::now();
        let wait = Duration::from_secs(5);
        let mut c = MergeState::new(
            settings("exemplars: {enabled: true, max_per_data_point: 1}\ntailgate: {exemplars_kept_by: tail_sampling}"),
            0,
        )
        .with_kept_filter(wait);
        c.apply(
            vec![with_candidates(
                b"x",
                vec![
                    candidate(1, 1.0, t),
                    candidate(2, 2.0, t),
                    candidate(3, 3.0, t),
                ],
            )],
            t,
            1,
        );
        // Trace 2's decision arrives before the candidate is due, trace 3's too, trace 1 never.
        c.kept(vec![[2; 16], [3; 16]], t + Duration::from_secs(1));
        c.settle(t + wait - Duration::from_millis(1), false);
        assert!(
            exemplar_list(&c.flush(t + Duration::from_secs(4), 2)).is_empty(),
            "nothing before the wait"
        );
        c.settle(t + wait, false);
        let b = c.flush(t + wait, 3);
        let got: Vec<u8> = exemplar_list(&b).iter().map(|e| e.1).collect();
        assert_eq!(got, vec![2, 2], "kept, first one, on calls and duration");
        assert_eq!(dropped(&c, CandidateDrop::NotKept), 1);
        assert_eq!(dropped(&c, CandidateDrop::MaxPerDataPoint), 1);
    }

    #[test]
    fn kept_by_counts_what_could_not_be_placed() {
        let t = Instant::now();
        let wait = Duration::from_secs(1);
        let mut c = MergeState::new(
            settings("exemplars: {enabled: true}\naggregation_temporality: AGGREGATION_TEMPORALITY_DELTA\ntailgate: {exemplars_kept_by: tail_sampling}"),
            0,
        )
        .with_kept_filter(wait);
        c.apply(
            vec![with_candidates(b"x", vec![candidate(1, 1.0, t)])],
            t,
            1,
        );
        c.kept(vec![[1; 16]], t);
        // Delta: the series was emitted and forgotten before its candidate was due.
        c.flush(t, 2);
        c.settle(t + wait, false);
        assert_eq!(dropped(&c, CandidateDrop::NoPoint), 1);
        // Shutdown settles what still waits: kept ones are placed, the others counted.
        c.apply(
            vec![with_candidates(
                b"y",
                vec![candidate(1, 1.0, t + wait), candidate(9, 1.0, t + wait)],
            )],
            t + wait,
            3,
        );
        c.settle(t + wait, true);
        assert_eq!(exemplar_list(&c.flush(t + wait, 4)).len(), 2);
        assert_eq!(dropped(&c, CandidateDrop::Shutdown), 1);
    }
}
