//! `ExportMetricsServiceRequest` without decoding: count data points, check, and route metrics or
//! single data points.
//!
//! The envelope (`resource_metrics` 1 → `ResourceMetrics{resource 1, scope_metrics 2,
//! schema_url 3}` → `ScopeMetrics{scope 1, metrics 2, schema_url 3}`) has the trace request's field
//! numbers, so [`crate::scan`]'s walk finds the metrics and the trace splitter moves them whole
//! ([`crate::split::Splitter::split_metrics`]). Below a metric there are two more levels: the
//! metric's data (`gauge` 5, `sum` 7, `histogram` 9, `exponential_histogram` 10, `summary` 11, a
//! oneof) and its `data_points` (field 1 of each data message). The collector counts metrics in
//! data points (`otelcol_receiver_accepted_metric_points`), so counting walks those two levels; so
//! does splitting by data point ([`crate::split::Splitter::split_data_points`], the
//! loadbalancing exporter's `streamID` key), which writes each part's metric as the metric's
//! other fields, then the data message's other fields, then the chosen points.
//!
//! The oneof: prost keeps the last data field, merging it with the ones before it while they are
//! the same variant (so two `sum` fields in a row are one sum with both sets of points; a `gauge`
//! after a `sum` replaces it). Counting and the point index follow prost (the property tests'
//! oracle). The collector's gogo-generated decoder replaces on every occurrence, so a metric
//! that repeats its data field (no encoder does) counts the last field's points there.

use std::ops::Range;

use crate::attributes::{find_attribute, AnyValue, Attributes};
use crate::error::{InvalidItem, ScanError, Signal, SignalError};
use crate::scan::{walk_items, Header, Index, SpanLoc};
use crate::schema::{check_message, Fault, Schema, PACKED_FIXED64};
use crate::view::{ResourceRef, ScopeRef};
use crate::wire::{Fields, FIXED64, LEN, VARINT};

/// `Metric.name`.
const NAME: u32 = 1;
/// `Gauge/Sum/Histogram/ExponentialHistogram/Summary.data_points`.
pub(crate) const DATA_POINTS: u32 = 1;
/// `*DataPoint.exemplars` by kind, and `Exemplar` id fields.
const EXEMPLAR_TRACE_ID: u32 = 5;
const EXEMPLAR_SPAN_ID: u32 = 4;

/// The data of a metric: which member of `Metric.data` it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// `gauge` (5): `NumberDataPoint`s.
    Gauge,
    /// `sum` (7): `NumberDataPoint`s.
    Sum,
    /// `histogram` (9): `HistogramDataPoint`s.
    Histogram,
    /// `exponential_histogram` (10): `ExponentialHistogramDataPoint`s.
    ExponentialHistogram,
    /// `summary` (11): `SummaryDataPoint`s.
    Summary,
}

impl DataKind {
    /// The member for a `Metric` field number.
    pub fn from_field(number: u32) -> Option<Self> {
        Some(match number {
            5 => DataKind::Gauge,
            7 => DataKind::Sum,
            9 => DataKind::Histogram,
            10 => DataKind::ExponentialHistogram,
            11 => DataKind::Summary,
            _ => return None,
        })
    }

    /// Its field number in `Metric`.
    pub fn field(self) -> u32 {
        match self {
            DataKind::Gauge => 5,
            DataKind::Sum => 7,
            DataKind::Histogram => 9,
            DataKind::ExponentialHistogram => 10,
            DataKind::Summary => 11,
        }
    }

    /// Its field name in `metrics.proto`.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Gauge => "gauge",
            DataKind::Sum => "sum",
            DataKind::Histogram => "histogram",
            DataKind::ExponentialHistogram => "exponential_histogram",
            DataKind::Summary => "summary",
        }
    }

    /// The field number of `attributes` in this kind's data point.
    fn attributes_field(self) -> u32 {
        match self {
            DataKind::Gauge | DataKind::Sum | DataKind::Summary => 7,
            DataKind::Histogram => 9,
            DataKind::ExponentialHistogram => 1,
        }
    }

    /// The schema of the data message (`Gauge`, `Sum`, ...).
    fn data_schema(self) -> &'static Schema {
        match self {
            DataKind::Gauge => &GAUGE,
            DataKind::Sum => &SUM,
            DataKind::Histogram | DataKind::ExponentialHistogram => &HISTOGRAM,
            DataKind::Summary => &SUMMARY,
        }
    }

    /// The schema of this kind's data point, and the field number of its exemplars (0: none).
    fn point_schema(self) -> (&'static Schema, u32) {
        match self {
            DataKind::Gauge | DataKind::Sum => (&NUMBER_POINT, 5),
            DataKind::Histogram => (&HISTOGRAM_POINT, 8),
            DataKind::ExponentialHistogram => (&EXP_HISTOGRAM_POINT, 11),
            DataKind::Summary => (&SUMMARY_POINT, 0),
        }
    }
}

// === schemas (opentelemetry/proto/metrics/v1/metrics.proto) ===

const METRIC: Schema = Schema {
    fields: &[
        ("", LEN),
        ("name", LEN),
        ("description", LEN),
        ("unit", LEN),
        ("", LEN),
        ("gauge", LEN),
        ("", LEN),
        ("sum", LEN),
        ("", LEN),
        ("histogram", LEN),
        ("exponential_histogram", LEN),
        ("summary", LEN),
        ("metadata", LEN),
    ],
    ids: &[],
};
const GAUGE: Schema = Schema {
    fields: &[("", LEN), ("data_points", LEN)],
    ids: &[],
};
const SUM: Schema = Schema {
    fields: &[
        ("", LEN),
        ("data_points", LEN),
        ("aggregation_temporality", VARINT),
        ("is_monotonic", VARINT),
    ],
    ids: &[],
};
/// `Histogram` and `ExponentialHistogram`.
const HISTOGRAM: Schema = Schema {
    fields: &[
        ("", LEN),
        ("data_points", LEN),
        ("aggregation_temporality", VARINT),
    ],
    ids: &[],
};
const SUMMARY: Schema = GAUGE;
const NUMBER_POINT: Schema = Schema {
    fields: &[
        ("", LEN),
        ("", LEN),
        ("start_time_unix_nano", FIXED64),
        ("time_unix_nano", FIXED64),
        ("as_double", FIXED64),
        ("exemplars", LEN),
        ("as_int", FIXED64),
        ("attributes", LEN),
        ("flags", VARINT),
    ],
    ids: &[],
};
const HISTOGRAM_POINT: Schema = Schema {
    fields: &[
        ("", LEN),
        ("", LEN),
        ("start_time_unix_nano", FIXED64),
        ("time_unix_nano", FIXED64),
        ("count", FIXED64),
        ("sum", FIXED64),
        ("bucket_counts", PACKED_FIXED64),
        ("explicit_bounds", PACKED_FIXED64),
        ("exemplars", LEN),
        ("attributes", LEN),
        ("flags", VARINT),
        ("min", FIXED64),
        ("max", FIXED64),
    ],
    ids: &[],
};
const EXP_HISTOGRAM_POINT: Schema = Schema {
    fields: &[
        ("", LEN),
        ("attributes", LEN),
        ("start_time_unix_nano", FIXED64),
        ("time_unix_nano", FIXED64),
        ("count", FIXED64),
        ("sum", FIXED64),
        ("scale", VARINT),
        ("zero_count", FIXED64),
        ("positive", LEN),
        ("negative", LEN),
        ("flags", VARINT),
        ("exemplars", LEN),
        ("min", FIXED64),
        ("max", FIXED64),
        ("zero_threshold", FIXED64),
    ],
    ids: &[],
};
const SUMMARY_POINT: Schema = Schema {
    fields: &[
        ("", LEN),
        ("", LEN),
        ("start_time_unix_nano", FIXED64),
        ("time_unix_nano", FIXED64),
        ("count", FIXED64),
        ("sum", FIXED64),
        ("quantile_values", LEN),
        ("attributes", LEN),
        ("flags", VARINT),
    ],
    ids: &[],
};
const EXEMPLAR: Schema = Schema {
    fields: &[
        ("", LEN),
        ("", LEN),
        ("time_unix_nano", FIXED64),
        ("as_double", FIXED64),
        ("span_id", LEN),
        ("trace_id", LEN),
        ("as_int", FIXED64),
        ("filtered_attributes", LEN),
    ],
    ids: &[(EXEMPLAR_TRACE_ID, 16), (EXEMPLAR_SPAN_ID, 8)],
};

// === the structural walk below a metric ===

/// Walks the Metric at `buf[start..end]`: each data field (checked to be length-delimited) goes
/// to `data(kind, replaces, field_start, value_start, end)`, where `replaces` says that it
/// supersedes the data fields before it (another variant: prost drops them); every other field
/// to `other(number, field_start, end)`. Offsets are absolute.
#[inline]
pub(crate) fn walk_metric(
    buf: &[u8],
    start: usize,
    end: usize,
    mut data: impl FnMut(DataKind, bool, usize, usize, usize) -> Result<(), ScanError>,
    mut other: impl FnMut(u32, usize, usize),
) -> Result<(), ScanError> {
    let mut current: Option<DataKind> = None;
    let mut fields = Fields::new(&buf[start..end], start);
    while let Some(f) = fields.next_field()? {
        match DataKind::from_field(f.number) {
            Some(kind) => {
                f.expect(LEN, start)?;
                let replaces = current.is_some_and(|c| c != kind);
                current = Some(kind);
                data(
                    kind,
                    replaces,
                    start + f.start,
                    start + f.value_start,
                    start + f.end,
                )?;
            }
            None => other(f.number, start + f.start, start + f.end),
        }
    }
    Ok(())
}

/// Walks a data message (`Gauge`, `Sum`, ...) at `buf[start..end]`: each `data_points` field
/// (checked to be length-delimited) goes to `point(field_start, value_start, end)`, every other
/// field to `other(number, field_start, end)`.
#[inline]
pub(crate) fn walk_data(
    buf: &[u8],
    start: usize,
    end: usize,
    mut point: impl FnMut(usize, usize, usize),
    mut other: impl FnMut(u32, usize, usize),
) -> Result<(), ScanError> {
    let mut fields = Fields::new(&buf[start..end], start);
    while let Some(f) = fields.next_field()? {
        if f.number == DATA_POINTS {
            f.expect(LEN, start)?;
            point(start + f.start, start + f.value_start, start + f.end);
        } else {
            other(f.number, start + f.start, start + f.end);
        }
    }
    Ok(())
}

/// The data points prost finds in the Metric at `buf[start..end]`.
fn metric_points(buf: &[u8], start: usize, end: usize) -> Result<usize, ScanError> {
    let mut points = 0;
    walk_metric(
        buf,
        start,
        end,
        |_, replaces, _, s, e| {
            if replaces {
                points = 0;
            }
            walk_data(buf, s, e, |_, _, _| points += 1, |_, _, _| {})
        },
        |_, _, _| {},
    )?;
    Ok(points)
}

/// Counts the metrics of an `ExportMetricsServiceRequest` with the structural walk of
/// [`crate::scan`] (metrics not entered), allocating nothing.
pub fn count_metrics(buf: &[u8]) -> Result<usize, ScanError> {
    let mut n = 0;
    walk_items(buf, |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Counts the data points of an `ExportMetricsServiceRequest` (the collector's unit for metrics:
/// `otelcol_receiver_accepted_metric_points`), walking each metric's data field and data message
/// (data points themselves are not entered). Allocates nothing.
pub fn count_data_points(buf: &[u8]) -> Result<usize, ScanError> {
    let mut n = 0;
    walk_items(buf, |at| {
        n += metric_points(buf, at.start, at.end)?;
        Ok(())
    })?;
    Ok(n)
}

/// What the receivers run on every metrics request: [`count_data_points`]'s walk and, in the same
/// pass, every metric checked as pdata checks it when it unmarshals: the wire type of every known
/// field of the metric, its data message, each data point and each exemplar, and exemplar ids (0
/// or 16 bytes for `trace_id`, 0 or 8 for `span_id`). Returns the data point count, or the first
/// bad metric with the count ([`SignalError::Invalid`]). Not entered: attribute values, quantiles,
/// exponential histogram buckets, and string contents.
pub fn check_metrics(buf: &[u8]) -> Result<usize, SignalError> {
    let mut n = 0;
    let mut first: Option<InvalidItem> = None;
    walk_items(buf, |at| {
        n += metric_points(buf, at.start, at.end)?;
        if first.is_none() {
            let mut path = Path::default();
            if let Err(f) = check_metric(&buf[at.start..at.end], at.start, &mut path) {
                first = Some(InvalidItem {
                    signal: Signal::Metrics,
                    resource: at.resource,
                    scope: at.scope,
                    item: at.item,
                    data: path.data,
                    exemplar: path.exemplar,
                    field: f.field,
                    problem: f.problem,
                    at: f.at,
                });
            }
        }
        Ok(())
    })?;
    match first {
        None => Ok(n),
        Some(first) => Err(SignalError::Invalid { first, items: n }),
    }
}

/// Where below a metric the check is, for the error's path: kept up to date as the check
/// descends, so it says where a fault lies when one stops it.
#[derive(Debug, Default)]
struct Path {
    /// The data field and the data point.
    data: Option<(&'static str, Option<u32>)>,
    /// The exemplar.
    exemplar: Option<u32>,
}

/// Checks one Metric message found at absolute offset `base`.
fn check_metric(metric: &[u8], base: usize, path: &mut Path) -> Result<(), Fault> {
    check_message(metric, base, &METRIC, |f| {
        let Some(kind) = DataKind::from_field(f.number) else {
            return Ok(());
        };
        path.data = Some((kind.name(), None));
        check_data(
            kind,
            &metric[f.value_start..f.end],
            base + f.value_start,
            path,
        )?;
        path.data = None;
        Ok(())
    })
}

/// Checks one data message of `kind` found at absolute offset `base`: its fields, each data point
/// and each exemplar.
fn check_data(kind: DataKind, msg: &[u8], base: usize, path: &mut Path) -> Result<(), Fault> {
    let (point_schema, exemplars) = kind.point_schema();
    let mut point = 0u32;
    check_message(msg, base, kind.data_schema(), |f| {
        if f.number != DATA_POINTS {
            return Ok(());
        }
        path.data = Some((kind.name(), Some(point)));
        let pmsg = &msg[f.value_start..f.end];
        let pbase = base + f.value_start;
        let mut e = 0u32;
        check_message(pmsg, pbase, point_schema, |pf| {
            if exemplars == 0 || pf.number != exemplars {
                return Ok(());
            }
            path.exemplar = Some(e);
            let ex = &pmsg[pf.value_start..pf.end];
            check_message(ex, pbase + pf.value_start, &EXEMPLAR, |_| Ok(()))?;
            path.exemplar = None;
            e += 1;
            Ok(())
        })?;
        path.data = Some((kind.name(), None));
        point += 1;
        Ok(())
    })
}

// === routing views ===

/// One metric inside a request, borrowed, with its resource and scope: what
/// [`crate::split::Splitter::split_metrics`] hands the routing function.
#[derive(Debug, Clone, Copy)]
pub struct MetricRef<'a> {
    bytes: &'a [u8],
    base: usize,
    resource: ResourceRef<'a>,
    scope: ScopeRef<'a>,
    resource_index: u32,
    scope_index: u32,
}

impl<'a> MetricRef<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        base: usize,
        (resource, resource_index): (ResourceRef<'a>, u32),
        (scope, scope_index): (ScopeRef<'a>, u32),
    ) -> Self {
        Self {
            bytes,
            base,
            resource,
            scope,
            resource_index,
            scope_index,
        }
    }

    /// The encoded Metric message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The metric's name (empty if absent or unreadable).
    ///
    /// Routing hot path: encoders write field 1 first, so a short name there is taken without a
    /// walk. As [`crate::SpanRef::trace_id`], a metric repeating its name (never written by an
    /// encoder) is routed by the first occurrence, where decoders keep the last.
    #[inline]
    pub fn name(&self) -> &'a [u8] {
        let b = self.bytes;
        if let [0x0a, len, rest @ ..] = b {
            if let Some(name) = rest.get(..usize::from(*len)).filter(|_| *len < 0x80) {
                return name;
            }
        }
        let mut fields = Fields::new(b, self.base);
        while let Ok(Some(f)) = fields.next_field() {
            if f.number == NAME && f.wire_type == LEN {
                return f.payload(b);
            }
        }
        &[]
    }

    /// The metric's resource.
    pub fn resource(&self) -> ResourceRef<'a> {
        self.resource
    }

    /// The metric's instrumentation scope.
    pub fn scope(&self) -> ScopeRef<'a> {
        self.scope
    }

    /// Index of the metric's resource in the request (metrics with the same index share it).
    pub fn resource_index(&self) -> u32 {
        self.resource_index
    }

    /// Index of the metric's scope among all the request's scopes.
    pub fn scope_index(&self) -> u32 {
        self.scope_index
    }
}

/// One data point inside a request, borrowed, with its metric: what
/// [`crate::split::Splitter::split_data_points`] hands the routing function.
#[derive(Debug, Clone, Copy)]
pub struct DataPointRef<'a> {
    metric: MetricRef<'a>,
    kind: DataKind,
    bytes: &'a [u8],
    base: usize,
    index: u32,
}

impl<'a> DataPointRef<'a> {
    /// The encoded data point message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The metric the point belongs to.
    pub fn metric(&self) -> MetricRef<'a> {
        self.metric
    }

    /// The kind of its metric's data.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// Index of the metric among all the request's metrics: points with the same index share the
    /// metric, so a key computed from it can be cached by it.
    pub fn metric_index(&self) -> u32 {
        self.index
    }

    /// The point's first attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        find_attribute(
            self.bytes,
            self.base,
            self.kind.attributes_field(),
            key.as_bytes(),
        )
    }

    /// The point's attributes, in wire order (a stream is metric identity + these).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.bytes, self.base, self.kind.attributes_field())
    }
}

// === the data point index, for splitting by data point ===

/// One metric of the request, below its envelope.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricLoc {
    /// Its fields other than the data prost keeps (data fields it drops are left out).
    pub header: Range<u32>,
    /// Its data messages, as a range of [`PointIndex::groups`].
    pub groups: Range<u32>,
}

/// One data message (`sum`, ...) prost keeps of a metric.
#[derive(Debug, Clone)]
pub(crate) struct GroupLoc {
    /// Its kind (the field to write it as).
    pub kind: DataKind,
    /// Its fields other than `data_points`.
    pub header: Range<u32>,
    /// Its points, as a range of [`PointIndex::points`].
    pub points: Range<u32>,
}

/// Where every metric's data and data points lie. Headers are ranges of one flat vector (a metric
/// has two, and there are many metrics: no vector per header).
#[derive(Debug, Clone, Default)]
pub(crate) struct PointIndex {
    /// One per metric of the [`Index`], in its order.
    pub metrics: Vec<MetricLoc>,
    /// Data messages, grouped by metric.
    pub groups: Vec<GroupLoc>,
    /// Data points, grouped by data message.
    pub points: Vec<SpanLoc>,
    /// Header ranges of metrics and groups.
    pub ranges: Vec<Range<u32>>,
    /// Scratch for one metric's and one data message's header while they are walked (their
    /// fields interleave, so each is gathered apart, then appended to `ranges`): kept to reuse
    /// their allocations.
    metric_header: Header,
    group_header: Header,
}

impl PointIndex {
    /// Walks every metric of `index` (built from `buf`).
    pub fn build(&mut self, buf: &[u8], index: &Index) -> Result<(), ScanError> {
        self.metrics.clear();
        self.groups.clear();
        self.points.clear();
        self.ranges.clear();
        for loc in &index.spans {
            self.metric(buf, loc.start as usize, loc.end as usize)?;
        }
        Ok(())
    }

    fn metric(&mut self, buf: &[u8], start: usize, end: usize) -> Result<(), ScanError> {
        let first_group = self.groups.len();
        let first_point = self.points.len();
        let (groups, points, ranges) = (&mut self.groups, &mut self.points, &mut self.ranges);
        let (header, gheader) = (&mut self.metric_header, &mut self.group_header);
        header.clear();
        walk_metric(
            buf,
            start,
            end,
            |kind, replaces, _, s, e| {
                if replaces {
                    groups.truncate(first_group);
                    points.truncate(first_point);
                }
                gheader.clear();
                let p0 = points.len() as u32;
                walk_data(
                    buf,
                    s,
                    e,
                    |field, ps, pe| {
                        points.push(SpanLoc {
                            field: field as u32,
                            start: ps as u32,
                            end: pe as u32,
                        })
                    },
                    |n, a, b| gheader.push_field(n, a, b),
                )?;
                let r0 = ranges.len() as u32;
                ranges.extend_from_slice(&gheader.ranges);
                groups.push(GroupLoc {
                    kind,
                    header: r0..ranges.len() as u32,
                    points: p0..points.len() as u32,
                });
                Ok(())
            },
            |n, a, b| header.push_field(n, a, b),
        )?;
        let r0 = self.ranges.len() as u32;
        self.ranges.extend_from_slice(&self.metric_header.ranges);
        self.metrics.push(MetricLoc {
            header: r0..self.ranges.len() as u32,
            groups: first_group as u32..self.groups.len() as u32,
        });
        Ok(())
    }

    /// Encoded length of the header ranges `r`.
    pub fn header_len(&self, r: &Range<u32>) -> usize {
        self.ranges[r.start as usize..r.end as usize]
            .iter()
            .map(|r| (r.end - r.start) as usize)
            .sum()
    }

    /// Appends the header ranges `r` (bytes of `buf`) to `out`.
    pub fn write_header(&self, buf: &[u8], r: &Range<u32>, out: &mut Vec<u8>) {
        for r in &self.ranges[r.start as usize..r.end as usize] {
            out.extend_from_slice(&buf[r.start as usize..r.end as usize]);
        }
    }

    /// The routing view of point `p` of group `g` of metric `m`.
    pub fn point_ref<'a>(
        &self,
        buf: &'a [u8],
        metric: MetricRef<'a>,
        m: usize,
        g: usize,
        p: usize,
    ) -> DataPointRef<'a> {
        let loc = self.points[p];
        let (s, e) = (loc.start as usize, loc.end as usize);
        DataPointRef {
            metric,
            kind: self.groups[g].kind,
            bytes: &buf[s..e],
            base: s,
            index: m as u32,
        }
    }
}
