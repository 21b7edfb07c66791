//! Per-core counters summed when scraped, rendered in Prometheus text with the collector's names.
//!
//! Each series owns one cache-line-padded slot per core. Only the owning core writes its slot
//! (a relaxed load + store, no lock prefix); the scraper sums every slot. Series are registered at
//! start-up, so the registry's mutex is never touched on the data path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One slot per core, each on its own cache line so cores never share a line.
#[derive(Debug)]
struct PerCore {
    slots: Box<[Padded]>,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

impl PerCore {
    fn new(cores: usize) -> Self {
        PerCore {
            slots: (0..cores.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    fn sum(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// Whether a series only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Up and down (summed across cores).
    Gauge,
}

#[derive(Debug)]
struct Series {
    name: String,
    help: &'static str,
    kind: Kind,
    labels: Vec<(String, String)>,
    values: Arc<PerCore>,
}

/// A histogram family registered as bucket counters.
#[derive(Debug)]
struct HistogramSeries {
    name: String,
    help: &'static str,
    labels: Vec<(String, String)>,
    bounds: Vec<f64>,
    buckets: Vec<Arc<PerCore>>,
    sum: Arc<PerCore>,
    count: Arc<PerCore>,
}

/// All series of the process.
#[derive(Debug)]
pub struct Registry {
    cores: usize,
    series: Mutex<Vec<Series>>,
    histograms: Mutex<Vec<HistogramSeries>>,
    /// `(label, aggregate)` pairs [`Registry::render`] folds with [`Registry::fold_unused`].
    scrape_folds: Mutex<Vec<(String, String)>>,
}

/// A handle to one series' slots; [`Metric::local`] picks a core's slot.
#[derive(Debug, Clone)]
pub struct Metric {
    values: Arc<PerCore>,
}

/// A core's slot of one series: the only writer of that slot.
#[derive(Debug, Clone)]
pub struct Local {
    values: Arc<PerCore>,
    core: usize,
}

impl Local {
    /// Adds `n` (counters and gauges).
    pub fn add(&self, n: u64) {
        let slot = &self.values.slots[self.core].0;
        // Single writer per slot: load + store avoids a locked read-modify-write.
        slot.store(
            slot.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Subtracts `n` (gauges).
    pub fn sub(&self, n: u64) {
        let slot = &self.values.slots[self.core].0;
        slot.store(
            slot.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    /// Sets this core's value (gauges).
    pub fn set(&self, v: u64) {
        self.values.slots[self.core].0.store(v, Ordering::Relaxed);
    }
}

impl Metric {
    /// The slot of `core`.
    pub fn local(&self, core: usize) -> Local {
        Local {
            values: self.values.clone(),
            core: core.min(self.values.slots.len() - 1),
        }
    }

    /// The sum over cores (tests and shutdown reports).
    pub fn total(&self) -> u64 {
        self.values.sum()
    }
}

/// A histogram handle.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    buckets: Vec<Arc<PerCore>>,
    sum: Arc<PerCore>,
    count: Arc<PerCore>,
}

impl Histogram {
    /// Records `v` on `core`.
    pub fn observe(&self, core: usize, v: u64) {
        let i = self
            .bounds
            .iter()
            .position(|b| (v as f64) <= *b)
            .unwrap_or(self.bounds.len());
        Metric {
            values: self.buckets[i].clone(),
        }
        .local(core)
        .add(1);
        Metric {
            values: self.sum.clone(),
        }
        .local(core)
        .add(v);
        Metric {
            values: self.count.clone(),
        }
        .local(core)
        .add(1);
    }
}

impl Histogram {
    /// Adds pre-bucketed observations on `core`: `buckets[i]` for bound `i` (the last is +Inf),
    /// plus their sum and count (for engines that keep their own histograms).
    pub fn add_counts(&self, core: usize, buckets: &[u64], sum: u64, count: u64) {
        for (slot, n) in self.buckets.iter().zip(buckets) {
            if *n > 0 {
                Metric {
                    values: slot.clone(),
                }
                .local(core)
                .add(*n);
            }
        }
        for (values, n) in [(&self.sum, sum), (&self.count, count)] {
            Metric {
                values: values.clone(),
            }
            .local(core)
            .add(n);
        }
    }
}

impl Registry {
    /// A registry for `cores` cores.
    pub fn new(cores: usize) -> Arc<Registry> {
        Arc::new(Registry {
            cores: cores.max(1),
            series: Mutex::new(Vec::new()),
            histograms: Mutex::new(Vec::new()),
            scrape_folds: Mutex::new(Vec::new()),
        })
    }

    /// Registers (or finds) a series.
    pub fn register(
        &self,
        name: &str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
    ) -> Metric {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.iter().find(|s| s.name == name && s.labels == labels) {
            return Metric {
                values: s.values.clone(),
            };
        }
        let values = Arc::new(PerCore::new(self.cores));
        all.push(Series {
            name: name.to_owned(),
            help,
            kind,
            labels,
            values: values.clone(),
        });
        Metric { values }
    }

    /// Registers a histogram with upper bounds `bounds`.
    pub fn histogram(
        &self,
        name: &str,
        help: &'static str,
        labels: &[(&str, &str)],
        bounds: &[f64],
    ) -> Histogram {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut all = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = all.iter().find(|h| h.name == name && h.labels == labels) {
            return Histogram {
                bounds: h.bounds.clone().into(),
                buckets: h.buckets.clone(),
                sum: h.sum.clone(),
                count: h.count.clone(),
            };
        }
        let buckets: Vec<Arc<PerCore>> = (0..=bounds.len())
            .map(|_| Arc::new(PerCore::new(self.cores)))
            .collect();
        let sum = Arc::new(PerCore::new(self.cores));
        let count = Arc::new(PerCore::new(self.cores));
        all.push(HistogramSeries {
            name: name.to_owned(),
            help,
            labels,
            bounds: bounds.to_vec(),
            buckets: buckets.clone(),
            sum: sum.clone(),
            count: count.clone(),
        });
        Histogram {
            bounds: bounds.into(),
            buckets,
            sum,
            count,
        }
    }

    /// Retires the series whose `label` is set (to anything but `aggregate`) and that no handle
    /// uses any more (only the registry holds their slots, so nothing can write them again):
    /// counters and histograms are folded into the same series with `label` = `aggregate` (so
    /// sums over `label` stay correct and every remaining series stays monotone); gauges are
    /// dropped. Returns how many series were retired. Taken only on membership changes.
    pub fn fold_unused(&self, label: &str, aggregate: &str) -> usize {
        let retire =
            |labels: &[(String, String)]| labels.iter().any(|(k, v)| k == label && v != aggregate);
        let folded = |labels: &[(String, String)]| -> Vec<(String, String)> {
            labels
                .iter()
                .map(|(k, v)| {
                    let v = if k == label { aggregate } else { v.as_str() };
                    (k.clone(), v.to_owned())
                })
                .collect()
        };
        let mut retired = 0;
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let (gone, kept): (Vec<Series>, Vec<Series>) = std::mem::take(&mut *all)
            .into_iter()
            .partition(|s| retire(&s.labels) && Arc::strong_count(&s.values) == 1);
        *all = kept;
        for s in gone {
            retired += 1;
            if s.kind == Kind::Gauge {
                continue;
            }
            let labels = folded(&s.labels);
            let target = match all.iter().find(|t| t.name == s.name && t.labels == labels) {
                Some(t) => t.values.clone(),
                None => {
                    let values = Arc::new(PerCore::new(self.cores));
                    all.push(Series {
                        name: s.name.clone(),
                        help: s.help,
                        kind: s.kind,
                        labels,
                        values: values.clone(),
                    });
                    values
                }
            };
            target.slots[0]
                .0
                .fetch_add(s.values.sum(), Ordering::Relaxed);
        }
        drop(all);
        let mut hs = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let unused = |h: &HistogramSeries| {
            Arc::strong_count(&h.sum) == 1
                && Arc::strong_count(&h.count) == 1
                && h.buckets.iter().all(|b| Arc::strong_count(b) == 1)
        };
        let (gone, kept): (Vec<HistogramSeries>, Vec<HistogramSeries>) = std::mem::take(&mut *hs)
            .into_iter()
            .partition(|h| retire(&h.labels) && unused(h));
        *hs = kept;
        for h in gone {
            retired += 1;
            let labels = folded(&h.labels);
            let pos = hs
                .iter()
                .position(|t| t.name == h.name && t.labels == labels && t.bounds == h.bounds);
            let target = match pos {
                Some(i) => &hs[i],
                None => {
                    hs.push(HistogramSeries {
                        name: h.name.clone(),
                        help: h.help,
                        labels,
                        bounds: h.bounds.clone(),
                        buckets: (0..h.buckets.len())
                            .map(|_| Arc::new(PerCore::new(self.cores)))
                            .collect(),
                        sum: Arc::new(PerCore::new(self.cores)),
                        count: Arc::new(PerCore::new(self.cores)),
                    });
                    &hs[hs.len() - 1]
                }
            };
            for (t, b) in target.buckets.iter().zip(&h.buckets) {
                t.slots[0].0.fetch_add(b.sum(), Ordering::Relaxed);
            }
            target.sum.slots[0]
                .0
                .fetch_add(h.sum.sum(), Ordering::Relaxed);
            target.count.slots[0]
                .0
                .fetch_add(h.count.sum(), Ordering::Relaxed);
        }
        retired
    }

    /// Makes every [`Registry::render`] first run [`Registry::fold_unused`] with these
    /// arguments, so series whose last handle went away after the last explicit fold (e.g. a
    /// removed backend that finished draining after the last membership change) are still folded.
    pub fn fold_on_scrape(&self, label: &str, aggregate: &str) {
        let mut folds = self.scrape_folds.lock().unwrap_or_else(|p| p.into_inner());
        if !folds.iter().any(|(l, a)| l == label && a == aggregate) {
            folds.push((label.to_owned(), aggregate.to_owned()));
        }
    }

    /// Every counter series of the family `name`: its labels and its sum over cores (shutdown
    /// reports; never on the data path).
    pub fn counters(&self, name: &str) -> Vec<(Vec<(String, String)>, u64)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .iter()
            .filter(|s| s.name == name && s.kind == Kind::Counter)
            .map(|s| (s.labels.clone(), s.values.sum()))
            .collect()
    }

    /// Prometheus text exposition format 0.0.4 (after the folds asked for with
    /// [`Registry::fold_on_scrape`]).
    pub fn render(&self) -> String {
        let folds = self
            .scrape_folds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (label, aggregate) in &folds {
            self.fold_unused(label, aggregate);
        }
        let mut out = String::new();
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        // Families must be contiguous in the exposition format; registration order interleaves them.
        let mut sorted: Vec<&Series> = series.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut last = "";
        for s in sorted {
            if s.name != last {
                let kind = match s.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                };
                let _ = writeln!(
                    out,
                    "# HELP {} {}\n# TYPE {} {}",
                    s.name, s.help, s.name, kind
                );
                last = &s.name;
            }
            let _ = writeln!(
                out,
                "{}{} {}",
                s.name,
                labels(&s.labels, None),
                s.values.sum() as i64
            );
        }
        drop(series);
        let hs = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        for h in hs.iter() {
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} histogram",
                h.name, h.help, h.name
            );
            let mut cumulative = 0;
            for (i, b) in h.buckets.iter().enumerate() {
                cumulative += b.sum();
                let le = h.bounds.get(i).map_or("+Inf".to_owned(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "{}_bucket{} {}",
                    h.name,
                    labels(&h.labels, Some(&le)),
                    cumulative
                );
            }
            let _ = writeln!(
                out,
                "{}_sum{} {}",
                h.name,
                labels(&h.labels, None),
                h.sum.sum()
            );
            let _ = writeln!(
                out,
                "{}_count{} {}",
                h.name,
                labels(&h.labels, None),
                h.count.sum()
            );
        }
        out
    }
}

fn labels(l: &[(String, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cores_and_renders_collector_names() {
        let r = Registry::new(2);
        let m = r.register(
            "otelcol_receiver_accepted_spans_total",
            "Spans accepted.",
            Kind::Counter,
            &[("receiver", "otlp"), ("transport", "grpc")],
        );
        m.local(0).add(3);
        m.local(1).add(4);
        let h = r.histogram(
            "otelcol_processor_batch_batch_send_size",
            "Batch sizes.",
            &[("processor", "batch")],
            &[10.0, 100.0],
        );
        h.observe(0, 5);
        h.observe(1, 50);
        h.observe(1, 500);
        let text = r.render();
        assert!(
            text.contains(
                "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 7\n"
            ),
            "{text}"
        );
        assert!(text.contains("otelcol_processor_batch_batch_send_size_bucket{processor=\"batch\",le=\"100\"} 2\n"), "{text}");
        assert!(text.contains("otelcol_processor_batch_batch_send_size_bucket{processor=\"batch\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(
            text.contains("otelcol_processor_batch_batch_send_size_sum{processor=\"batch\"} 555\n"),
            "{text}"
        );
    }

    #[test]
    fn folds_unused_series_into_the_aggregate() {
        let r = Registry::new(2);
        let a = r.register("c_total", "c", Kind::Counter, &[("endpoint", "a")]);
        let b = r.register("c_total", "c", Kind::Counter, &[("endpoint", "b")]);
        let g = r.register("g", "g", Kind::Gauge, &[("endpoint", "a")]);
        let h = r.histogram("h", "h", &[("endpoint", "a")], &[10.0]);
        a.local(1).add(3);
        b.local(0).add(4);
        g.local(0).set(9);
        h.observe(1, 5);
        assert_eq!(r.fold_unused("endpoint", "_removed"), 0, "all in use");
        drop((a, g, h));
        assert_eq!(r.fold_unused("endpoint", "_removed"), 3);
        let text = r.render();
        assert!(
            text.contains("c_total{endpoint=\"_removed\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("c_total{endpoint=\"b\"} 4\n"), "{text}");
        assert!(!text.contains("endpoint=\"a\""), "{text}");
        assert!(
            text.contains("h_count{endpoint=\"_removed\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("g{"), "{text}");
        let again = r.register("c_total", "c", Kind::Counter, &[("endpoint", "a")]);
        again.local(0).add(2);
        drop(again);
        r.fold_unused("endpoint", "_removed");
        assert!(r.render().contains("c_total{endpoint=\"_removed\"} 5\n"));
    }

    #[test]
    fn scrapes_fold_series_whose_last_handle_went_away_later() {
        let r = Registry::new(1);
        r.fold_on_scrape("endpoint", "_removed");
        r.fold_on_scrape("endpoint", "_removed");
        let a = r.register("c_total", "c", Kind::Counter, &[("endpoint", "a")]);
        a.local(0).add(7);
        assert!(r.render().contains("c_total{endpoint=\"a\"} 7\n"), "in use");
        drop(a);
        let text = r.render();
        assert!(
            text.contains("c_total{endpoint=\"_removed\"} 7\n"),
            "{text}"
        );
        assert!(!text.contains("endpoint=\"a\""), "{text}");
    }
}
