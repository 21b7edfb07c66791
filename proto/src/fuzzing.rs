//! Entry points of the fuzz targets in `proto/fuzz`, public so that `cargo test` can replay the
//! checked-in corpus on stable with the very same code (see `tests/fuzz_corpus.rs`).
//!
//! Each function must never panic on any input; the oracles inside panic only when the wire layer
//! is wrong (a disagreement with prost, or a broken invariant), which is what the fuzzer looks for.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::compression::Compression;
use crate::grpc::Deframer;

/// Decompressed output cap used by the decompression targets (small, so bombs are cheap to find).
const FUZZ_MAX_DECODED: usize = 1 << 20;

/// Scanner target: scan, split and re-frame arbitrary bytes.
///
/// Oracles: whatever prost accepts the scanner accepts with the same span count; whenever the
/// scanner accepts, the split outputs and the re-framed request hold the same number of spans, and
/// re-framing the views gives a request prost decodes to the same spans when prost decoded the
/// input.
pub fn scan(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    let oracle = ExportTraceServiceRequest::decode(data).ok();
    let views = crate::view::scan(&buf);
    let count = crate::scan::count_spans(data);
    // The counting walk is the index walk without storing anything: same count, same error.
    let mut index = crate::scan::Index::default();
    assert_eq!(
        count,
        index.build(data).map(|()| index.spans.len()),
        "count_spans and Index::build disagree"
    );
    if let Some(req) = &oracle {
        let expected: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(
            count.ok(),
            Some(expected),
            "scanner rejected what prost accepts"
        );
    }
    check_agrees(
        data,
        &count,
        views.as_ref().map(Vec::len).ok(),
        oracle.as_ref(),
    );
    let Ok(views) = views else { return };
    assert_eq!(count.ok(), Some(views.len()));
    for v in &views {
        let _ = (
            v.name(),
            v.resource().service_name(),
            v.scope().name(),
            v.attribute("http.method"),
        );
        let _ = v.attributes().count();
    }
    let parts = crate::split::split(data, 3, |s| {
        s.trace_id().first().map_or(0, |&b| usize::from(b))
    })
    .unwrap_or_default();
    let total: usize = parts
        .iter()
        .map(|p| crate::scan::count_spans(p).unwrap_or(usize::MAX))
        .sum();
    assert_eq!(total, views.len(), "split lost or invented spans");
    let re = crate::reframe::reframe(&views);
    assert_eq!(crate::scan::count_spans(&re).ok(), Some(views.len()));
    if let Some(req) = oracle {
        let again = ExportTraceServiceRequest::decode(&re[..]).ok();
        let spans = |r: &ExportTraceServiceRequest| {
            let mut v: Vec<_> = r
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .cloned()
                .collect();
            v.sort_by_key(|s| s.encode_to_vec());
            v
        };
        let again = again.map(|r| spans(&r));
        assert_eq!(again, Some(spans(&req)), "re-framed request differs");
    }
}

/// Oracles of the receivers' check ([`crate::scan::check_spans`]): it counts like
/// [`crate::scan::count_spans`] (the same structural errors), it is at least as strict as the
/// gateway's scan (what it accepts scans into as many views), and it accepts whatever prost
/// decodes with every id 0 or 16 (trace) / 0 or 8 (span) bytes long, which is what pdata accepts
/// at the depth the check looks.
fn check_agrees(
    data: &[u8],
    count: &Result<usize, crate::ScanError>,
    views: Option<usize>,
    oracle: Option<&ExportTraceServiceRequest>,
) {
    use crate::error::RequestError;
    let checked = crate::scan::check_spans(data);
    match checked {
        Ok(n) => {
            assert_eq!(count.ok(), Some(n), "check_spans and count_spans disagree");
            assert_eq!(views, Some(n), "check_spans accepted what the scan refuses");
        }
        Err(RequestError::InvalidSpan { spans, .. }) => assert_eq!(count.ok(), Some(spans)),
        Err(RequestError::Malformed(e)) => assert_eq!(count.err(), Some(e)),
    }
    // Only where prost's re-encoding is as long as the input: prost keeps the last of a repeated
    // id field where pdata checks every occurrence, and a re-encoding drops exactly such
    // duplicates (and unknown fields, defaults written out, long varints), so it comes out
    // shorter.
    if let Some(req) = oracle.filter(|r| r.encoded_len() == data.len()) {
        let ok = |id: &[u8], n: usize| id.is_empty() || id.len() == n;
        let ids_ok = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .all(|s| {
                ok(&s.trace_id, 16)
                    && ok(&s.span_id, 8)
                    && ok(&s.parent_span_id, 8)
                    && s.links
                        .iter()
                        .all(|l| ok(&l.trace_id, 16) && ok(&l.span_id, 8))
            });
        if ids_ok {
            assert!(
                checked.is_ok(),
                "check refused what pdata accepts: {checked:?}"
            );
        }
    }
}

/// Logs scanner target: count, check, split and re-frame arbitrary bytes as an
/// `ExportLogsServiceRequest`.
///
/// Oracles: the counting walk and the index agree; whatever prost accepts is counted with prost's
/// record count; the receivers' check counts like the counting walk and accepts what prost
/// decodes with valid ids (when the re-encoding is as long as the input, as in [`scan`]); split
/// into 3 and re-framing keep the record count; when prost decoded the input, the re-framed
/// request decodes to the same records.
pub fn logs(data: &[u8]) {
    use crate::error::SignalError;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let oracle = ExportLogsServiceRequest::decode(data).ok();
    let count = crate::logs::count_log_records(data);
    let mut index = crate::scan::Index::default();
    assert_eq!(
        count,
        index.build(data).map(|()| index.spans.len()),
        "count_log_records and Index::build disagree"
    );
    // Records as their encodings, sorted: compared as bytes, since a damaged double can be NaN.
    let records = |r: &ExportLogsServiceRequest| {
        let mut v: Vec<Vec<u8>> = r
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(Message::encode_to_vec)
            .collect();
        v.sort();
        v
    };
    if let Some(req) = &oracle {
        assert_eq!(
            count.ok(),
            Some(records(req).len()),
            "the walk rejected what prost accepts"
        );
    }
    let checked = crate::logs::check_log_records(data);
    match checked {
        Ok(n) => assert_eq!(count.ok(), Some(n)),
        Err(SignalError::Invalid { items, .. }) => assert_eq!(count.ok(), Some(items)),
        Err(SignalError::Malformed(e)) => assert_eq!(count.err(), Some(e)),
    }
    if let Some(req) = oracle.as_ref().filter(|r| r.encoded_len() == data.len()) {
        let ok = |id: &[u8], n: usize| id.is_empty() || id.len() == n;
        if req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .all(|r| ok(&r.trace_id, 16) && ok(&r.span_id, 8))
        {
            assert!(
                checked.is_ok(),
                "check refused what pdata accepts: {checked:?}"
            );
        }
    }
    let Ok(count) = count else { return };
    let parts = crate::split::Splitter::new()
        .split_logs(data, 3, |r| {
            let svc = r.resource().service_name().map_or(0, <[u8]>::len);
            let _ = (r.scope().name(), r.attribute("k"), r.span_id());
            svc + r.trace_id().first().map_or(0, |&b| usize::from(b))
        })
        .unwrap_or_default();
    let total: usize = parts
        .iter()
        .map(|p| crate::logs::count_log_records(p).unwrap_or(usize::MAX))
        .sum();
    assert_eq!(total, count, "split lost or invented log records");
    let buf = Bytes::copy_from_slice(data);
    let Ok(items) = crate::items::items(&buf) else {
        panic!("items refused what the walk accepts")
    };
    let re = crate::reframe::reframe_items(&items);
    assert_eq!(crate::logs::count_log_records(&re).ok(), Some(count));
    if let Some(req) = oracle {
        let again = ExportLogsServiceRequest::decode(&re[..]).ok();
        assert_eq!(
            again.map(|r| records(&r)),
            Some(records(&req)),
            "re-framed request differs"
        );
    }
}

/// Metrics scanner target: count, check, split (by metric and by data point) and re-frame
/// arbitrary bytes as an `ExportMetricsServiceRequest`.
///
/// Oracles: whatever prost accepts is counted with prost's metric and data point counts (prost's
/// oneof rules); the receivers' check counts like [`crate::metrics::count_data_points`] and
/// accepts what prost decodes with valid exemplar ids (re-encoding as long as the input); both
/// splits keep the data point count, the metric split the metric count; re-framing keeps both;
/// when prost decoded the input, the re-framed request decodes to the same metrics.
pub fn metrics(data: &[u8]) {
    use crate::error::SignalError;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, Metric};
    let oracle = ExportMetricsServiceRequest::decode(data).ok();
    let metrics = crate::metrics::count_metrics(data);
    let points = crate::metrics::count_data_points(data);
    let all = |r: &ExportMetricsServiceRequest| {
        let mut v: Vec<Metric> = r
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .cloned()
            .collect();
        v.sort_by_key(|s| s.encode_to_vec());
        v
    };
    // Compared as encodings: a damaged double can be NaN.
    let encoded = |ms: Vec<Metric>| ms.iter().map(Message::encode_to_vec).collect::<Vec<_>>();
    let point_count = |m: &Metric| match &m.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    };
    if let Some(req) = &oracle {
        let ms = all(req);
        assert_eq!(
            metrics.ok(),
            Some(ms.len()),
            "metric count differs from prost"
        );
        assert_eq!(
            points.ok(),
            Some(ms.iter().map(point_count).sum()),
            "data point count differs from prost"
        );
    }
    let checked = crate::metrics::check_metrics(data);
    match checked {
        Ok(n) => assert_eq!(points.ok(), Some(n)),
        Err(SignalError::Invalid { items, .. }) => assert_eq!(points.ok(), Some(items)),
        Err(SignalError::Malformed(e)) => assert_eq!(points.err(), Some(e)),
    }
    if let Some(req) = oracle.as_ref().filter(|r| r.encoded_len() == data.len()) {
        let ok = |id: &[u8], n: usize| id.is_empty() || id.len() == n;
        let ids_ok = all(req).iter().all(|m| {
            let ex: Vec<&opentelemetry_proto::tonic::metrics::v1::Exemplar> = match &m.data {
                Some(Data::Gauge(g)) => g.data_points.iter().flat_map(|p| &p.exemplars).collect(),
                Some(Data::Sum(s)) => s.data_points.iter().flat_map(|p| &p.exemplars).collect(),
                Some(Data::Histogram(h)) => {
                    h.data_points.iter().flat_map(|p| &p.exemplars).collect()
                }
                Some(Data::ExponentialHistogram(e)) => {
                    e.data_points.iter().flat_map(|p| &p.exemplars).collect()
                }
                _ => Vec::new(),
            };
            ex.iter().all(|e| ok(&e.trace_id, 16) && ok(&e.span_id, 8))
        });
        if ids_ok {
            assert!(
                checked.is_ok(),
                "check refused what pdata accepts: {checked:?}"
            );
        }
    }
    let Ok(metrics) = metrics else { return };
    let mut splitter = crate::split::Splitter::new();
    if let Ok(parts) = splitter.split_metrics(data, 3, |m| {
        let _ = (m.resource().attribute("k"), m.scope().version());
        m.name().len() + m.resource().service_name().map_or(0, <[u8]>::len)
    }) {
        let total: usize = parts
            .iter()
            .map(|p| crate::metrics::count_metrics(p).unwrap_or(usize::MAX))
            .sum();
        assert_eq!(total, metrics, "the metric split lost or invented metrics");
        if let Ok(points) = points {
            let total: usize = parts
                .iter()
                .map(|p| crate::metrics::count_data_points(p).unwrap_or(usize::MAX))
                .sum();
            assert_eq!(total, points, "the metric split lost or invented points");
        }
    }
    let by_point = splitter.split_data_points(data, 3, |p| {
        let _ = (p.attribute("k"), p.kind(), p.metric_index());
        p.attributes().count() + p.bytes().len()
    });
    match (by_point, points) {
        (Ok(parts), Ok(points)) => {
            let total: usize = parts
                .iter()
                .map(|p| crate::metrics::count_data_points(p).unwrap_or(usize::MAX))
                .sum();
            assert_eq!(total, points, "the point split lost or invented points");
        }
        // Both refuse, not always with the same error: the split walks the whole envelope before
        // entering metrics, the count enters each metric as it goes.
        (Err(_), Err(_)) => {}
        (by_point, points) => panic!("point split {by_point:?}, count {points:?}"),
    }
    let buf = Bytes::copy_from_slice(data);
    let Ok(items) = crate::items::items(&buf) else {
        panic!("items refused what the walk accepts")
    };
    let re = crate::reframe::reframe_items(&items);
    assert_eq!(crate::metrics::count_metrics(&re).ok(), Some(metrics));
    if let Some(req) = oracle {
        let again = ExportMetricsServiceRequest::decode(&re[..]).ok();
        assert_eq!(
            again.map(|r| encoded(all(&r))),
            Some(encoded(all(&req))),
            "re-framed request differs"
        );
    }
}

/// gRPC deframer target: the first byte picks a chunk size, the rest is the stream. Every
/// chunking must yield the same messages as feeding the stream whole.
pub fn grpc_deframer(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let whole = deframe(stream, stream.len().max(1));
    let pieces = deframe(stream, chunk);
    assert_eq!(whole, pieces, "chunking changed the messages");
}

fn deframe(stream: &[u8], chunk: usize) -> (Vec<(bool, Bytes)>, Option<crate::error::FrameError>) {
    let mut d = Deframer::new(1 << 16);
    let mut out = Vec::new();
    for c in stream.chunks(chunk) {
        d.push(Bytes::copy_from_slice(c));
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= 1 << 16);
                    let _ = m.clone().decode(Compression::Gzip, FUZZ_MAX_DECODED);
                    out.push((m.compressed, m.payload));
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    let end = d.finish().err();
    (out, end)
}

fn decompress(codec: Compression, data: &[u8]) {
    match codec.decompress(data, FUZZ_MAX_DECODED) {
        Ok(out) => assert!(out.len() <= FUZZ_MAX_DECODED),
        Err(e) => assert!(e.at <= data.len()),
    }
}

/// gzip decompressor target.
pub fn gzip(data: &[u8]) {
    decompress(Compression::Gzip, data);
}

/// zstd decompressor target.
pub fn zstd(data: &[u8]) {
    decompress(Compression::Zstd, data);
}

/// snappy (framed) decompressor target.
pub fn snappy(data: &[u8]) {
    decompress(Compression::Snappy, data);
}

/// JSON target: transcode arbitrary bytes as OTLP/JSON.
///
/// Oracles: no panic; output within the budget and decodable by prost; and against the previous
/// decoder (value tree + opentelemetry-proto serde + prost, [`value_tree_json_to_protobuf`]):
/// whatever it accepted, the streaming decoder accepts with the same request, once the text is
/// put in the form the value tree saw (keys deduplicated and sorted). Allowed differences, all
/// documented in `json::transcode`: a message given as a JSON array, the budget, and keys in the
/// proto spelling (which the old decoder ignored).
pub fn json(data: &[u8]) {
    let budget = crate::json::JsonBudget::for_text(data.len());
    if let Ok(pb) = crate::json::transcode::transcode(data, budget) {
        assert!(pb.len() <= budget.max_output, "output past the budget");
        assert!(
            ExportTraceServiceRequest::decode(&pb[..]).is_ok(),
            "transcoded protobuf does not decode"
        );
    }
    let Ok(old) = value_tree_json_to_protobuf(data) else {
        return;
    };
    let Ok(tree) = serde_json::from_slice::<serde_json::Value>(data) else {
        return; // cannot happen: the old decoder parsed it
    };
    if has_proto_name_key(&tree) {
        return;
    }
    let Ok(canonical) = serde_json::to_vec(&tree) else {
        return;
    };
    match crate::json::transcode::transcode(&canonical, budget) {
        Ok(new) => assert_eq!(
            ExportTraceServiceRequest::decode(&new[..]).ok(),
            ExportTraceServiceRequest::decode(&old[..]).ok(),
            "the streaming decoder disagrees with the value-tree decoder"
        ),
        Err(f) => assert!(
            f.over_budget
                || f.error
                    .to_string()
                    .starts_with(crate::json::transcode::POSITIONAL),
            "the streaming decoder refused what the value-tree decoder accepted: {}",
            f.error
        ),
    }
}

/// Whether any object key in `v` is the proto spelling of a field (`resource_spans`).
fn has_proto_name_key(v: &serde_json::Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if map
                    .keys()
                    .any(|k| crate::json::schema::is_proto_name_alias(k))
                {
                    return true;
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    false
}

/// The OTLP/JSON decoder tailgate used before the streaming one, kept as the fuzz and property
/// test oracle: the text parsed into a `serde_json::Value`, numeric timestamps rewritten as the
/// strings opentelemetry-proto 0.31 insists on, the tree mapped onto the prost types with their
/// serde support, then encoded. Memory is tens of times the text; never use it on input paths.
pub fn value_tree_json_to_protobuf(json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(json)?;
    stringify_u64_fields(&mut value);
    let req: ExportTraceServiceRequest = serde_json::from_value(value)?;
    Ok(req.encode_to_vec())
}

/// The `fixed64` fields of the trace schema, which OTLP/JSON may carry as numbers or strings.
const U64_KEYS: [&str; 3] = ["startTimeUnixNano", "endTimeUnixNano", "timeUnixNano"];

/// Rewrites numeric values of [`U64_KEYS`] as strings, everywhere in the tree.
fn stringify_u64_fields(root: &mut serde_json::Value) {
    use serde_json::Value;
    let mut stack = vec![root];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if let Value::Number(n) = child {
                        if U64_KEYS.contains(&k.as_str()) {
                            *child = Value::String(n.to_string());
                            continue;
                        }
                    }
                    stack.push(child);
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Control-message target: the first byte picks how the rest is read. Even: the rest is a whole
/// body, given to [`crate::control::parse`]. Odd: the rest is a payload, wrapped in a body by
/// [`crate::control::encode_payload`] so the entry readers see arbitrary bytes directly.
///
/// Oracles: no panic; error offsets within the body; whatever parses, prost decodes (when it
/// decodes at all: prost also checks UTF-8 in fields the parser ignores) as one `ResourceSpans`
/// without spans whose only `tailgate.control` attribute holds the same bytes; entries that read
/// without error re-encode to the same payload; a body built by `encode_payload` always parses.
pub fn control(data: &[u8]) {
    use crate::control::{self, Claim, Decision, Redirect};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let wrapped;
    let body = if mode & 1 == 0 {
        rest
    } else {
        let mut out = Vec::new();
        control::encode_payload(rest, &mut out);
        wrapped = out;
        &wrapped[..]
    };
    let payload = match control::parse(body) {
        Ok(p) => p,
        Err(e) => {
            assert!(mode & 1 == 0, "a wrapped payload did not parse: {e}");
            assert!(control_error_at(e) <= body.len(), "{e} past the body");
            return;
        }
    };
    if let Ok(req) = ExportTraceServiceRequest::decode(body) {
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        assert!(rs.scope_spans.is_empty(), "a control request holds spans");
        let values: Vec<_> = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == control::ATTRIBUTE)
            .map(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
            .collect();
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        assert_eq!(
            values,
            vec![Some(Value::BytesValue(payload.bytes().to_vec()))]
        );
    }
    let bytes = payload.bytes();
    reencodes::<Claim>(&payload, bytes);
    reencodes::<Decision>(&payload, bytes);
    reencodes::<Redirect<'_>>(&payload, bytes);
    for kind in crate::hop::Kind::ALL {
        if let Err(e) = payload.read(kind) {
            assert!(control_error_at(e) <= body.len(), "{e} past the body");
        }
    }
}

/// Entries read as `E` that parse without error encode back to the bytes they came from.
fn reencodes<'a, E: crate::control::Entry<'a>>(
    payload: &crate::control::ControlPayload<'a>,
    bytes: &[u8],
) {
    let mut out = Vec::new();
    let mut end = 0;
    for e in payload.entries::<E>() {
        let Ok(e) = e else { break };
        e.put(&mut out);
        end += e.wire_len();
    }
    assert_eq!(&out[..], &bytes[..end], "an entry re-encodes differently");
}

/// The offset a control error reports (0 for those without one).
fn control_error_at(e: crate::error::ControlError) -> usize {
    use crate::error::ControlError as E;
    match e {
        E::Malformed(s) => s.at,
        E::NoResource { at }
        | E::SeveralResources { at }
        | E::HoldsSpans { at }
        | E::NoAttribute { at }
        | E::DuplicateAttribute { at }
        | E::NotBytes { at }
        | E::Truncated { at, .. }
        | E::BadState { at, .. }
        | E::BadKept { at, .. }
        | E::BadHolderLength { at, .. }
        | E::BadHolder { at }
        | E::NotEmpty { at, .. } => at,
        E::NotControl { .. } => 0,
    }
}

/// Hop-header target: the input as a `tailgate-hop` value and as a `tailgate-table` value.
///
/// Oracles: no panic; a parsed header validates, stays within the length limit and writes back
/// to a value that parses to the same header; a parsed table hash formats back to itself.
pub fn hop(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = crate::hop::HopHeader::parse(s) {
        assert_eq!(h.validate(), Ok(()));
        let again = h.to_header_value();
        assert!(again.len() <= s.len(), "the written header grew");
        assert_eq!(crate::hop::HopHeader::parse(&again), Ok(h));
    }
    if let Ok(t) = crate::hop::parse_table(s) {
        assert_eq!(crate::hop::parse_table(&crate::hop::format_table(t)), Ok(t));
    }
}

/// The fixed edit program of the `rewrite` fuzz target: what the agent's and gateway's
/// processors do (set, delete, drop spans and events at every level).
struct FuzzProgram;

/// Span names this program drops (a filter by name).
const FUZZ_DROP_PREFIX: &[u8] = b"drop";
/// Span event names this program drops.
const FUZZ_DROP_EVENT: &[u8] = b"exception";

impl crate::rewrite::TraceVisitor for FuzzProgram {
    fn resource(
        &mut self,
        _: &crate::rewrite::ResourceCtx<'_>,
        edits: &mut crate::rewrite::AttrEdits,
    ) -> crate::rewrite::Verdict {
        edits.set(
            "tailgate.rewritten",
            crate::attributes::AnyValue::Bool(true),
        );
        edits.delete("secret");
        crate::rewrite::Verdict::Keep
    }

    fn scope(
        &mut self,
        _: &crate::rewrite::ScopeCtx<'_>,
        edits: &mut crate::rewrite::AttrEdits,
    ) -> crate::rewrite::Verdict {
        edits.set("scope.seen", crate::attributes::AnyValue::Int(1));
        crate::rewrite::Verdict::Keep
    }

    fn span(
        &mut self,
        span: &crate::rewrite::SpanCtx<'_>,
        edits: &mut crate::rewrite::AttrEdits,
    ) -> crate::rewrite::Verdict {
        if span.name().starts_with(FUZZ_DROP_PREFIX) {
            return crate::rewrite::Verdict::Drop;
        }
        edits.delete("http.method");
        edits.delete("password");
        if span.attribute("n").is_some() {
            edits.set_str("n", "redacted");
        }
        crate::rewrite::Verdict::Keep
    }

    fn visits_events(&self) -> bool {
        true
    }

    fn event(
        &mut self,
        event: &crate::rewrite::EventCtx<'_>,
        edits: &mut crate::rewrite::AttrEdits,
    ) -> crate::rewrite::Verdict {
        if event.name() == FUZZ_DROP_EVENT {
            return crate::rewrite::Verdict::Drop;
        }
        edits.set("e", crate::attributes::AnyValue::Double(0.5));
        crate::rewrite::Verdict::Keep
    }
}

/// A visitor that edits nothing but looks at every level.
struct FuzzIdentity;

impl crate::rewrite::TraceVisitor for FuzzIdentity {
    fn visits_events(&self) -> bool {
        true
    }
}

/// Output cap of the rewrite target (the program adds a few bytes per message; a larger output
/// must fail with `TooLarge`, not grow).
const FUZZ_MAX_REWRITE: usize = 1 << 20;

/// Rewrite target: rewrite arbitrary bytes with a fixed edit program ([`crate::rewrite`]).
///
/// Oracles: a visitor that edits nothing returns the input byte for byte (or the error the
/// program run gets, as both walk the same structure); the output never exceeds the cap; when
/// prost decodes the input the rewrite succeeds (or refuses an id of a length pdata refuses),
/// prost decodes the output, it holds `items_out` spans and the program's effects (no span named
/// `drop…`, no deleted key, every resource marked); and rewriting the output again changes nothing
/// (the program is idempotent, so a second pass must return its input byte for byte).
pub fn rewrite(data: &[u8]) {
    use crate::error::{RewriteError, ScanErrorKind};
    use crate::rewrite::{Prune, Rewriter};

    let mut rewriter = Rewriter::new()
        .with_prune(Prune::AllEmpty)
        .with_max_output(FUZZ_MAX_REWRITE);
    let mut out = Vec::new();
    let result = rewriter.rewrite_traces(data, &mut FuzzProgram, &mut out);
    if let Err(RewriteError::TooLarge { len, limit }) = result {
        assert!(len > limit && limit == FUZZ_MAX_REWRITE);
        // The check runs after each span, so the overshoot is at most one span's rewrite.
        assert!(len <= limit + data.len() + 4096, "output ran past the cap");
        return;
    }
    assert!(out.len() <= FUZZ_MAX_REWRITE);

    let mut identity = Rewriter::new().with_prune(Prune::Never);
    let mut same = Vec::new();
    match identity.rewrite_traces(data, &mut FuzzIdentity, &mut same) {
        Ok(stats) => {
            assert!(!stats.changed, "a pass with no edits reported a change");
            assert_eq!(same, data, "a pass with no edits changed the bytes");
        }
        Err(RewriteError::Malformed(_)) => {}
        Err(e) => panic!("identity pass failed with {e:?}"),
    }

    let oracle = ExportTraceServiceRequest::decode(data).ok();
    let stats = match (result, &oracle) {
        (Ok(stats), _) => stats,
        (Err(RewriteError::Malformed(e)), Some(_)) => {
            assert_eq!(
                e.kind,
                ScanErrorKind::BadIdLength,
                "rewrite refused what prost decodes: {e:?}"
            );
            return;
        }
        (Err(_), _) => return,
    };
    if oracle.is_none() {
        return;
    }
    let Ok(req) = ExportTraceServiceRequest::decode(&out[..]) else {
        panic!("prost cannot decode the rewritten request");
    };
    check_program(&req, stats.items_out);
    let mut again = Vec::new();
    match rewriter.rewrite_traces(&out, &mut FuzzProgram, &mut again) {
        Ok(s) => {
            assert!(!s.changed, "the program is not idempotent");
            assert_eq!(again, out, "a second pass changed the bytes");
        }
        Err(e) => panic!("the rewritten request does not rewrite: {e:?}"),
    }
}

/// The effects of [`FuzzProgram`] on a decoded output holding `spans` spans.
fn check_program(req: &ExportTraceServiceRequest, spans: usize) {
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
    let has = |attrs: &[KeyValue], key: &str| attrs.iter().any(|kv| kv.key == key);
    let value = |attrs: &[KeyValue], key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.clone())
    };
    let mut n = 0;
    for rs in &req.resource_spans {
        assert!(!rs.scope_spans.is_empty(), "an empty resource was kept");
        let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        assert_eq!(
            value(attrs, "tailgate.rewritten"),
            Some(Value::BoolValue(true))
        );
        assert!(!has(attrs, "secret"));
        for ss in &rs.scope_spans {
            assert!(!ss.spans.is_empty(), "an empty scope was kept");
            let attrs = ss.scope.as_ref().map_or(&[][..], |s| &s.attributes);
            assert_eq!(value(attrs, "scope.seen"), Some(Value::IntValue(1)));
            for span in &ss.spans {
                n += 1;
                assert!(!span.name.as_bytes().starts_with(FUZZ_DROP_PREFIX));
                assert!(
                    !has(&span.attributes, "http.method") && !has(&span.attributes, "password")
                );
                if has(&span.attributes, "n") {
                    assert_eq!(
                        value(&span.attributes, "n"),
                        Some(Value::StringValue("redacted".into()))
                    );
                }
                for e in &span.events {
                    assert_ne!(e.name.as_bytes(), FUZZ_DROP_EVENT);
                    assert_eq!(value(&e.attributes, "e"), Some(Value::DoubleValue(0.5)));
                }
            }
        }
    }
    assert_eq!(n, spans, "items_out is not the output's span count");
}
