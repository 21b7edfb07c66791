//! The cross-thread half of `spanmetrics`: one plain thread per connector merges what the cores
//! hand over and emits a [`MetricsBatch`] every `metrics_flush_interval` to the exporters of the
//! metrics pipelines the connector feeds.
//!
//! Cores send deltas (what each series counted since their last hand-off) over an mpsc channel,
//! so nothing on the data plane waits for this thread. Cumulative temporality keeps running totals
//! here (series idle longer than `metrics_expiration` are dropped); delta temporality emits what
//! arrived since the previous flush and forgets it, as the collector purges its state.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::aggregate::SeriesDelta;
use super::config::Settings;
use super::schedule;
use crate::metrics_data::exponential::ExponentialHistogram;
use crate::metrics_data::{
    Attributes, ExponentialHistogramPoint, HistogramPoint, Metric, MetricData, MetricsBatch,
    MetricsConsumer, ResourceMetrics, SumPoint, Temporality,
};

/// What a core holds to reach its connector's merger.
#[derive(Clone)]
pub struct MergerHandle {
    /// The resolved settings (cores aggregate with them).
    pub settings: Arc<Settings>,
    /// Where cores send their deltas.
    pub tx: Sender<Vec<SeriesDelta>>,
    /// The start of the flush grid cores and merger share (see [`super::schedule`]).
    pub epoch: Instant,
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
}

impl MergeState {
    /// An empty state; `now` is the connector's start time.
    pub fn new(settings: Arc<Settings>, now_unix_nano: u64) -> Self {
        MergeState {
            settings,
            series: HashMap::new(),
            resources: HashMap::new(),
            last_flush_unix_nano: now_unix_nano,
        }
    }

    /// Adds one core's deltas.
    pub fn apply(&mut self, deltas: Vec<SeriesDelta>, now: Instant, now_unix_nano: u64) {
        for d in deltas {
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
        }
        self.last_flush_unix_nano = now_unix_nano;
        batch
    }
}

/// Wall-clock now in Unix nanoseconds.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Starts the merger thread of one connector; it flushes at every point of the grid
/// `epoch + k·flush_interval` (cores hand over just before, [`super::schedule`]) and once more
/// when `stop` is set (after the cores have handed over their last deltas).
pub fn start(
    name: String,
    settings: Arc<Settings>,
    consumers: Vec<Arc<dyn MetricsConsumer>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<MergerHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let state = MergeState::new(settings.clone(), unix_nanos());
    let epoch = Instant::now();
    std::thread::Builder::new()
        .name(format!("tailgate-{name}"))
        .spawn(move || run(state, rx, consumers, stop, epoch))?;
    Ok(MergerHandle {
        settings,
        tx,
        epoch,
    })
}

fn run(
    mut state: MergeState,
    rx: Receiver<Vec<SeriesDelta>>,
    consumers: Vec<Arc<dyn MetricsConsumer>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) {
    let interval = state.settings.flush_interval;
    let mut next = schedule::next_flush(epoch, interval, Instant::now());
    let emit = |state: &mut MergeState| {
        let batch = state.flush(Instant::now(), unix_nanos());
        if !batch.resources.is_empty() {
            for c in &consumers {
                c.consume(&batch);
            }
        }
    };
    loop {
        // Wake at least every 200 ms to notice `stop`.
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok(d) => state.apply(d, Instant::now(), unix_nanos()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                emit(&mut state);
                return;
            }
        }
        if stop.load(Ordering::Relaxed) {
            while let Ok(d) = rx.try_recv() {
                state.apply(d, Instant::now(), unix_nanos());
            }
            emit(&mut state);
            return;
        }
        if Instant::now() >= next {
            // The cores handed over a margin ago; take everything queued before flushing.
            while let Ok(d) = rx.try_recv() {
                state.apply(d, Instant::now(), unix_nanos());
            }
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
}
