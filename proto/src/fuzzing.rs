//! Entry points of the fuzz targets in `proto/fuzz`, public so that `cargo test` can replay the
//! checked-in corpus on stable with the very same code (see `tests/fuzz_corpus.rs`).
//!
//! Each function must never panic on any input; the oracles inside panic only when the wire layer
//! is wrong (a disagreement with prost, or a broken invariant), which is what the fuzzer looks for.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

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
