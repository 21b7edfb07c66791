//! One core's span aggregation: scan each request, key each span, count it.
//!
//! Single-threaded and sans-IO: the runtime hands it request bytes and takes its deltas out every
//! flush interval. A span's key is written into a reused buffer (resource key, service name, span
//! name, kind, status, dimension values as the collector renders them) and looked up in a hash
//! map; a known key costs no allocation. Labels are built once, when a key is first seen.
//! With exemplars on, the first spans of each series (up to a cap) since the last hand-off are
//! kept as [`Candidate`]s: the rest cost one length comparison.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use tailgate_proto::attributes::AnyValue;
use tailgate_proto::span::{SpanKind, StatusCode};
use tailgate_proto::view::ResourceRef;
use tailgate_proto::{ScanError, SpanView};

use super::config::{Settings, SERVICE_NAME, SPAN_KIND, SPAN_NAME, STATUS_CODE};
use crate::metrics_data::exponential::ExponentialHistogram;
use crate::metrics_data::Attributes;

/// What one series gathered on one core since its last hand-off.
#[derive(Debug, Clone)]
pub struct SeriesDelta {
    /// The series key (identical on every core for the same series).
    pub key: Arc<[u8]>,
    /// Length of the key's prefix that identifies the resource (`resource_metrics_key_attributes`
    /// values, or the whole resource).
    pub resource_key_len: usize,
    /// Its resource's attributes.
    pub resource: Attributes,
    /// Its point attributes (the dimensions).
    pub attributes: Attributes,
    /// Spans counted.
    pub calls: u64,
    /// Per-bucket duration counts (empty when the histogram is off).
    pub buckets: Vec<u64>,
    /// Sum of durations, in the histogram unit.
    pub sum: f64,
    /// The exponential duration histogram (when that is the configured histogram).
    pub exponential: Option<Box<ExponentialHistogram>>,
    /// Exemplar candidates, in arrival order (empty when exemplars are off).
    pub exemplars: Vec<Candidate>,
}

/// A span offered as an exemplar of its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The span's trace ID (never all zeros: such spans are not offered, as in the collector).
    pub trace_id: [u8; 16],
    /// The span's ID.
    pub span_id: [u8; 8],
    /// Its duration in the histogram unit.
    pub value: f64,
    /// When the core counted it: the wait for its trace's sampling decision starts here.
    pub seen: Instant,
}

/// One series on this core.
#[derive(Debug)]
struct Acc {
    key: Arc<[u8]>,
    resource_key_len: usize,
    resource: Attributes,
    attributes: Attributes,
    calls: u64,
    buckets: Box<[u64]>,
    sum: f64,
    exponential: Option<Box<ExponentialHistogram>>,
    exemplars: Vec<Candidate>,
}

/// A core's aggregation state.
#[derive(Debug)]
pub struct Aggregator {
    settings: Arc<Settings>,
    /// Key → index into `series`; bounded by `dimensions_cache_size`.
    index: HashMap<Arc<[u8]>, u32, ahash::RandomState>,
    series: Vec<Acc>,
    /// Scratch for the span key.
    key: Vec<u8>,
    /// Scratch for the current resource's key.
    resource_key: Vec<u8>,
    /// Exemplar candidates kept per series between hand-offs (0: exemplars off).
    candidates: usize,
}

/// What [`Aggregator::consume`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// Spans counted (spans of a resource without `service.name` are neither counted nor
    /// skipped: the collector ignores them too).
    pub counted: u64,
    /// Spans left out because their fields do not parse.
    pub skipped: u64,
}

/// The resource being walked: views of one resource are adjacent in a scanned request.
struct ResourceState {
    header: *const u8,
    /// `None`: no `service.name`, so the collector skips the resource's spans.
    service: Option<usize>,
    /// Rendered attributes, built when the resource's first new series needs them.
    attributes: Option<Attributes>,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(settings: Arc<Settings>) -> Self {
        let candidates = settings
            .exemplars
            .as_ref()
            .map_or(0, |x| x.candidates_per_series());
        Aggregator {
            candidates,
            settings,
            index: HashMap::default(),
            series: Vec::new(),
            key: Vec::with_capacity(256),
            resource_key: Vec::with_capacity(256),
        }
    }

    /// Series currently cached on this core.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series is cached.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Counts every span of `body` (one or more concatenated requests) that can be read. A span
    /// whose fields do not parse is left out and reported in [`Consumed::skipped`], so one bad
    /// span never costs the others (the receivers refuse such spans; this guards data that came
    /// another way); only a request whose structure does not walk is an error (nothing counted).
    /// When the key cache is full, everything gathered so far is moved to `spill` (for the
    /// merger) and the cache starts afresh.
    pub fn consume(
        &mut self,
        body: &Bytes,
        spill: &mut Vec<SeriesDelta>,
    ) -> Result<Consumed, ScanError> {
        let mut views = Vec::new();
        // The scan's per-span fields are not needed here: a zero-sized sink.
        let skipped =
            tailgate_proto::view::scan_with_skipping(body, &mut views, &mut Vec::new(), |_| ())?;
        let mut res = ResourceState {
            header: std::ptr::null(),
            service: None,
            attributes: None,
        };
        let mut counted = 0;
        // One clock read per request, and only when candidates are taken.
        let now = (self.candidates > 0).then(Instant::now);
        for v in &views {
            let r = v.resource();
            if r.header().as_ptr() != res.header {
                res = self.enter_resource(&r);
            }
            let Some(service_len) = res.service else {
                continue;
            };
            let index = self.index_of(v, &r, service_len, &mut res, spill);
            self.record(index, v, now);
            counted += 1;
        }
        Ok(Consumed {
            counted,
            skipped: skipped as u64,
        })
    }

    /// Hands over every series that counted something since the last call, zeroing them.
    pub fn take(&mut self) -> Vec<SeriesDelta> {
        let mut out = Vec::new();
        for a in &mut self.series {
            if a.calls == 0 {
                continue;
            }
            out.push(SeriesDelta {
                key: a.key.clone(),
                resource_key_len: a.resource_key_len,
                resource: a.resource.clone(),
                attributes: a.attributes.clone(),
                calls: a.calls,
                buckets: a.buckets.to_vec(),
                sum: a.sum,
                exponential: a.exponential.as_mut().map(|h| {
                    let fresh = ExponentialHistogram::new(h.max_size());
                    Box::new(std::mem::replace(&mut **h, fresh))
                }),
                exemplars: std::mem::take(&mut a.exemplars),
            });
            a.calls = 0;
            a.sum = 0.0;
            a.buckets.iter_mut().for_each(|b| *b = 0);
        }
        out
    }

    fn enter_resource(&mut self, r: &ResourceRef<'_>) -> ResourceState {
        self.resource_key.clear();
        let service = match r.service_name() {
            Some(s) => Some(s),
            // Present but not a string: the collector's `Str()` reads "".
            None if r.attribute(SERVICE_NAME).is_some() => Some(&[][..]),
            None => None,
        };
        match &self.settings.resource_key_attributes {
            None => put(&mut self.resource_key, r.header()),
            Some(keys) => {
                for k in keys {
                    put_value(&mut self.resource_key, r.attribute(k));
                }
            }
        }
        // The service name starts the span key, right after the resource key.
        let service_len = service.map(|s| {
            put(&mut self.resource_key, s);
            s.len()
        });
        ResourceState {
            header: r.header().as_ptr(),
            service: service_len,
            attributes: None,
        }
    }

    fn write_key(&mut self, v: &SpanView, r: &ResourceRef<'_>) {
        let keep = self.settings.keep;
        self.key.clear();
        self.key.extend_from_slice(&self.resource_key);
        if keep[1] {
            put(&mut self.key, v.name());
        }
        if keep[2] {
            self.key.push(kind_byte(v.kind()));
        }
        if keep[3] {
            self.key.push(status_byte(v.status_code()));
        }
        for (name, _) in &self.settings.dimensions {
            let value = v.attribute(name).or_else(|| r.attribute(name));
            put_value(&mut self.key, value);
        }
    }

    fn index_of(
        &mut self,
        v: &SpanView,
        r: &ResourceRef<'_>,
        service_len: usize,
        res: &mut ResourceState,
        spill: &mut Vec<SeriesDelta>,
    ) -> usize {
        self.write_key(v, r);
        if let Some(&i) = self.index.get(&self.key[..]) {
            return i as usize;
        }
        if self.series.len() >= self.settings.cache_size {
            spill.extend(self.take());
            self.index.clear();
            self.series.clear();
        }
        let resource = res
            .attributes
            .get_or_insert_with(|| resource_attributes(r))
            .clone();
        let service_start = self.resource_key.len() - service_len;
        let service = String::from_utf8_lossy(&self.resource_key[service_start..]).into_owned();
        let attributes = self.labels(v, r, service);
        let key: Arc<[u8]> = Arc::from(&self.key[..]);
        let width = self.settings.bounds.as_ref().map_or(0, |b| b.len() + 1);
        let i = self.series.len();
        self.series.push(Acc {
            key: key.clone(),
            // The resource key ends where the length-prefixed service name starts.
            resource_key_len: service_start.saturating_sub(4),
            resource,
            attributes,
            calls: 0,
            buckets: vec![0; width].into_boxed_slice(),
            sum: 0.0,
            exponential: self
                .settings
                .exponential_max_size
                .map(|m| Box::new(ExponentialHistogram::new(m))),
            exemplars: Vec::new(),
        });
        self.index.insert(key, i as u32);
        i
    }

    fn labels(&self, v: &SpanView, r: &ResourceRef<'_>, service: String) -> Attributes {
        let keep = self.settings.keep;
        let mut out: Vec<(String, String)> = Vec::with_capacity(4 + self.settings.dimensions.len());
        if keep[0] {
            out.push((SERVICE_NAME.to_owned(), service));
        }
        if keep[1] {
            out.push((
                SPAN_NAME.to_owned(),
                String::from_utf8_lossy(v.name()).into_owned(),
            ));
        }
        if keep[2] {
            out.push((SPAN_KIND.to_owned(), kind_text(v.kind()).to_owned()));
        }
        if keep[3] {
            out.push((
                STATUS_CODE.to_owned(),
                status_text(v.status_code()).to_owned(),
            ));
        }
        for (name, default) in &self.settings.dimensions {
            match v.attribute(name).or_else(|| r.attribute(name)) {
                Some(value) => out.push((name.clone(), value_text(&value))),
                None => {
                    if let Some(d) = default {
                        out.push((name.clone(), d.clone()));
                    }
                }
            }
        }
        out.into()
    }

    fn record(&mut self, index: usize, v: &SpanView, now: Option<Instant>) {
        let acc = &mut self.series[index];
        acc.calls += 1;
        // An end before the start counts as 0, as in the collector.
        let (start, end) = (v.start_time_unix_nano(), v.end_time_unix_nano());
        let nanos = end.saturating_sub(start);
        let value = nanos as f64 / self.settings.unit.nanos();
        if acc.exemplars.len() < self.candidates {
            offer(&mut acc.exemplars, v, value, now);
        }
        if let Some(h) = &mut acc.exponential {
            h.record(value);
            return;
        }
        let Some(bounds) = &self.settings.bounds else {
            return;
        };
        // First bound >= value: bounds are inclusive upper limits, as in the collector.
        let b = bounds.partition_point(|b| *b < value);
        acc.buckets[b] += 1;
        acc.sum += value;
    }
}

/// Keeps `v` as an exemplar candidate unless its trace ID is empty (the collector's check).
fn offer(to: &mut Vec<Candidate>, v: &SpanView, value: f64, now: Option<Instant>) {
    let trace_id = v.trace_id();
    if trace_id == [0; 16] {
        return;
    }
    to.push(Candidate {
        trace_id,
        span_id: v.span_id(),
        value,
        seen: now.unwrap_or_else(Instant::now),
    });
}

/// Appends a length-prefixed field to a key, so adjacent fields cannot run into each other.
fn put(key: &mut Vec<u8>, bytes: &[u8]) {
    key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    key.extend_from_slice(bytes);
}

/// Appends a dimension value to a key. Scalars are written as the collector renders them
/// (`Value.AsString`), so an int 200 and a string "200" share a series there and here.
fn put_value(key: &mut Vec<u8>, value: Option<AnyValue<'_>>) {
    let start = key.len();
    key.extend_from_slice(&[1, 0, 0, 0, 0]);
    match value {
        None => key[start] = 0,
        Some(AnyValue::String(s)) => key.extend_from_slice(s),
        Some(AnyValue::Int(i)) => {
            let _ = write!(key, "{i}");
        }
        Some(AnyValue::Bool(b)) => key.extend_from_slice(if b { b"true" } else { b"false" }),
        Some(AnyValue::Double(d)) => {
            let _ = write!(key, "{d}");
        }
        Some(AnyValue::Empty) => {}
        Some(AnyValue::Bytes(b) | AnyValue::Array(b) | AnyValue::KvList(b)) => {
            key[start] = 2;
            key.extend_from_slice(b);
        }
    }
    let len = (key.len() - start - 5) as u32;
    key[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
}

fn kind_byte(k: SpanKind) -> u8 {
    match k {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
        SpanKind::Other(_) => 255,
    }
}

fn status_byte(s: StatusCode) -> u8 {
    match s {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
        StatusCode::Other(_) => 255,
    }
}

/// The collector's `traceutil.SpanKindStr`.
fn kind_text(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
        SpanKind::Other(_) => "",
    }
}

/// The collector's `traceutil.StatusCodeStr`.
fn status_text(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
        StatusCode::Other(_) => "",
    }
}

fn resource_attributes(r: &ResourceRef<'_>) -> Attributes {
    let out: Vec<(String, String)> = r
        .attributes()
        .filter_map(Result::ok)
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_text(&v)))
        .collect();
    out.into()
}

/// A value as the collector's `pcommon.Value.AsString` renders it.
pub fn value_text(v: &AnyValue<'_>) -> String {
    match v {
        AnyValue::Empty => String::new(),
        AnyValue::String(s) => String::from_utf8_lossy(s).into_owned(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        AnyValue::Array(b) => {
            use opentelemetry_proto::tonic::common::v1::ArrayValue;
            ArrayValue::decode(*b)
                .map(|a| serde_json::Value::Array(a.values.iter().map(json).collect()).to_string())
                .unwrap_or_default()
        }
        AnyValue::KvList(b) => {
            use opentelemetry_proto::tonic::common::v1::KeyValueList;
            KeyValueList::decode(*b)
                .map(|l| kvlist_json(&l.values).to_string())
                .unwrap_or_default()
        }
    }
}

fn kvlist_json(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        kvs.iter()
            .map(|kv| {
                let v = kv.value.as_ref().map_or(serde_json::Value::Null, json);
                (kv.key.clone(), v)
            })
            .collect(),
    )
}

fn json(v: &opentelemetry_proto::tonic::common::v1::AnyValue) -> serde_json::Value {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match &v.value {
        None => serde_json::Value::Null,
        Some(V::StringValue(s)) => s.clone().into(),
        Some(V::BoolValue(b)) => (*b).into(),
        Some(V::IntValue(i)) => (*i).into(),
        Some(V::DoubleValue(d)) => (*d).into(),
        Some(V::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Some(V::ArrayValue(a)) => serde_json::Value::Array(a.values.iter().map(json).collect()),
        Some(V::KvlistValue(l)) => kvlist_json(&l.values),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::error::ConfigErrors;
    use crate::connector::spanmetrics::config::SpanMetricsConfig;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue as PAny, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(PAny { value: Some(v) }),
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn span(name: &str, kind: i32, error: bool, ms: u64, attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.into(),
            kind,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + ms * 1_000_000,
            attributes: attrs,
            status: error.then(|| Status {
                code: status::StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn request(resources: Vec<(Vec<KeyValue>, Vec<Span>)>) -> Bytes {
        let req = ExportTraceServiceRequest {
            resource_spans: resources
                .into_iter()
                .map(|(attrs, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: attrs,
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        Bytes::from(prost::Message::encode_to_vec(&req))
    }

    fn settings(yaml: &str) -> Arc<Settings> {
        let c: SpanMetricsConfig = serde_yaml::from_str(yaml).unwrap();
        let mut e = ConfigErrors::default();
        let s = c.resolve("x", &mut e, &mut Vec::new());
        assert!(e.is_empty(), "{e}");
        Arc::new(s)
    }

    fn label<'a>(d: &'a SeriesDelta, k: &str) -> Option<&'a str> {
        d.attributes
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn counts_per_key_with_buckets_and_dimensions() {
        let set = settings(
            "histogram: {explicit: {buckets: [100ms, 1s]}}
dimensions: [{name: http.method}, {name: region, default: none}, {name: code}]",
        );
        let mut a = Aggregator::new(set);
        let body = request(vec![
            (
                vec![kv("service.name", s("api")), kv("region", s("eu"))],
                vec![
                    span("GET /", 2, false, 50, vec![kv("http.method", s("GET"))]),
                    span("GET /", 2, false, 100, vec![kv("http.method", s("GET"))]),
                    span("GET /", 2, true, 1500, vec![kv("http.method", s("GET"))]),
                    span(
                        "q",
                        3,
                        false,
                        300,
                        vec![kv("code", any_value::Value::IntValue(200))],
                    ),
                ],
            ),
            // No service.name: skipped, as the collector does.
            (
                vec![kv("host", s("h"))],
                vec![span("x", 1, false, 1, vec![])],
            ),
            (
                vec![kv("service.name", s("db"))],
                vec![span("q", 3, false, 3000, vec![])],
            ),
        ]);
        let mut spill = Vec::new();
        assert_eq!(a.consume(&body, &mut spill).unwrap().counted, 5);
        assert_eq!(a.consume(&body, &mut spill).unwrap().counted, 5);
        assert!(spill.is_empty());
        let mut d = a.take();
        d.sort_by(|x, y| x.attributes.cmp(&y.attributes));
        assert_eq!(d.len(), 4);
        let ok = d
            .iter()
            .find(|x| {
                label(x, STATUS_CODE) == Some("STATUS_CODE_UNSET")
                    && label(x, SPAN_NAME) == Some("GET /")
            })
            .unwrap();
        assert_eq!(ok.calls, 4);
        assert_eq!(ok.buckets, vec![4, 0, 0]);
        assert_eq!(ok.sum, 300.0);
        assert_eq!(label(ok, SPAN_KIND), Some("SPAN_KIND_SERVER"));
        assert_eq!(label(ok, "http.method"), Some("GET"));
        assert_eq!(
            label(ok, "region"),
            Some("eu"),
            "resource attribute fallback"
        );
        assert_eq!(label(ok, "code"), None, "absent without default: left out");
        let err = d
            .iter()
            .find(|x| label(x, STATUS_CODE) == Some("STATUS_CODE_ERROR"))
            .unwrap();
        assert_eq!((err.calls, err.buckets.clone()), (2, vec![0, 0, 2]));
        let q = d
            .iter()
            .find(|x| label(x, SERVICE_NAME) == Some("api") && label(x, SPAN_NAME) == Some("q"))
            .unwrap();
        assert_eq!(label(q, "code"), Some("200"));
        assert_eq!(q.buckets, vec![0, 2, 0]);
        let db = d
            .iter()
            .find(|x| label(x, SERVICE_NAME) == Some("db"))
            .unwrap();
        assert_eq!(label(db, "region"), Some("none"), "default value");
        assert_eq!(
            &db.resource[..],
            &[("service.name".to_owned(), "db".to_owned())]
        );
        // Taken deltas are zeroed.
        assert!(a.take().is_empty());
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn a_bad_span_is_left_out_and_the_others_counted() {
        let mut a = Aggregator::new(settings("{}"));
        let mut bad = span("bad", 2, false, 5, vec![]);
        bad.trace_id = vec![7; 8]; // not 16 bytes: the span's fields do not parse
        let good = || span("good", 2, false, 5, vec![]);
        let body = request(vec![(
            vec![kv("service.name", s("api"))],
            vec![good(), bad, good()],
        )]);
        assert!(
            tailgate_proto::scan(&body).is_err(),
            "the strict scan fails"
        );
        let done = a.consume(&body, &mut Vec::new()).unwrap();
        assert_eq!(
            done,
            Consumed {
                counted: 2,
                skipped: 1
            }
        );
        let d = a.take();
        assert_eq!(d.len(), 1);
        assert_eq!((label(&d[0], SPAN_NAME), d[0].calls), (Some("good"), 2));
        // A request that does not walk at all is still an error.
        assert!(a
            .consume(&body.slice(..body.len() - 3), &mut Vec::new())
            .is_err());
    }

    #[test]
    fn a_full_key_cache_spills_to_the_merger() {
        let mut a = Aggregator::new(settings("dimensions_cache_size: 2"));
        let body = request(vec![(
            vec![kv("service.name", s("api"))],
            (0..5)
                .map(|i| span(&format!("op{i}"), 2, false, 1, vec![]))
                .collect(),
        )]);
        let mut spill = Vec::new();
        a.consume(&body, &mut spill).unwrap();
        assert!(a.len() <= 2);
        let total: u64 = spill.iter().chain(a.take().iter()).map(|d| d.calls).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn exponential_histograms_per_series_and_fresh_after_take() {
        let mut a = Aggregator::new(settings("histogram: {exponential: {max_size: 10}}"));
        let body = request(vec![(
            vec![kv("service.name", s("api"))],
            vec![
                span("a", 2, false, 3, vec![]),
                span("a", 2, false, 0, vec![]),
                span("a", 2, false, 300, vec![]),
            ],
        )]);
        a.consume(&body, &mut Vec::new()).unwrap();
        let d = a.take();
        assert_eq!((d.len(), d[0].calls), (1, 3));
        assert!(d[0].buckets.is_empty());
        let h = d[0].exponential.as_ref().unwrap();
        assert_eq!((h.count(), h.zero_count(), h.sum()), (3, 1, 303.0));
        assert_eq!(h.min_max(), Some((0.0, 300.0)));
        assert!(h.positive().counts.len() <= 10);
        // 3 and 300 are 6.6 octaves apart: 10 buckets allow scale 0 (indexes 1..=8), not 1 (3..=16).
        assert_eq!(h.scale(), 0);
        a.consume(&body, &mut Vec::new()).unwrap();
        let again = a.take();
        assert_eq!(
            again[0].exponential.as_deref(),
            Some(&**h),
            "taken state starts afresh"
        );
    }

    #[test]
    fn exemplar_candidates_are_the_first_spans_of_each_series_up_to_the_cap() {
        let mut a = Aggregator::new(settings(
            "exemplars: {enabled: true, max_per_data_point: 2}",
        ));
        let mut spans: Vec<Span> = (0..4u8)
            .map(|i| {
                let mut s = span("a", 2, false, 10 + u64::from(i), vec![]);
                s.trace_id = vec![i + 1; 16];
                s.span_id = vec![i + 10; 8];
                s
            })
            .collect();
        // An empty trace ID is never offered (the collector checks `TraceID().IsEmpty()`).
        spans[0].trace_id = vec![0; 16];
        spans.push(span("b", 2, false, 7, vec![]));
        let body = request(vec![(vec![kv("service.name", s("api"))], spans)]);
        a.consume(&body, &mut Vec::new()).unwrap();
        let mut d = a.take();
        d.sort_by(|x, y| x.attributes.cmp(&y.attributes));
        let ids: Vec<([u8; 16], [u8; 8], f64)> = d[0]
            .exemplars
            .iter()
            .map(|c| (c.trace_id, c.span_id, c.value))
            .collect();
        assert_eq!(
            ids,
            vec![([2; 16], [11; 8], 11.0), ([3; 16], [12; 8], 12.0)]
        );
        assert_eq!(d[1].exemplars.len(), 1);
        assert_eq!(d[1].exemplars[0].value, 7.0);
        // Taken with the deltas: the next interval offers afresh.
        a.consume(&body, &mut Vec::new()).unwrap();
        assert_eq!(a.take()[0].exemplars.len(), 2);
        // Off: nothing is offered.
        let mut off = Aggregator::new(settings("{}"));
        off.consume(&body, &mut Vec::new()).unwrap();
        assert!(off.take().iter().all(|d| d.exemplars.is_empty()));
    }

    #[test]
    fn excluded_dimensions_merge_series() {
        let mut a = Aggregator::new(settings("exclude_dimensions: [status.code, span.name]"));
        let body = request(vec![(
            vec![kv("service.name", s("api"))],
            vec![
                span("a", 2, true, 1, vec![]),
                span("b", 2, false, 1, vec![]),
            ],
        )]);
        a.consume(&body, &mut Vec::new()).unwrap();
        let d = a.take();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].calls, 2);
        assert_eq!(label(&d[0], STATUS_CODE), None);
    }
}
