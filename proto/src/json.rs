//! OTLP/HTTP request bodies: protobuf as is, JSON converted to protobuf.
//!
//! JSON is transcoded in one streaming pass ([`transcode`]): serde_json tokenizes, a schema table
//! ([`schema`]) maps keys to protobuf fields, and the bytes are written straight into the output.
//! No `serde_json::Value` tree or prost structs are built, and the work is bounded by a
//! [`JsonBudget`] derived from the body's size, so a small compressed body of millions of empty
//! objects is refused after a few milliseconds instead of costing gigabytes (issue 17).
//!
//! Measured on `proto/benches/json.rs` (1000 spans, 8 attributes each): see `docs/proto.md`.

pub(crate) mod schema;
pub(crate) mod transcode;

use bytes::Bytes;

pub use transcode::{JsonBudget, BYTES_PER_OBJECT};

use crate::compression::Compression;
use crate::error::{BodyError, JsonError, JsonErrorKind};

/// Format of an OTLP/HTTP body, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl BodyFormat {
    /// Parses a `Content-Type` value (parameters such as `; charset=utf-8` are ignored).
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Some(BodyFormat::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(BodyFormat::Json)
        } else {
            None
        }
    }
}

/// Converts an OTLP/JSON `ExportTraceServiceRequest` to its protobuf encoding, within the
/// budget of its size ([`JsonBudget::for_text`]).
///
/// Syntax errors carry their byte offset; schema errors (wrong types, bad hex ids, missing
/// required keys) are reported at offset 0, as they were when the text went through a value tree
/// first; budget errors carry the offset where the budget ran out.
pub fn json_to_protobuf(json: &[u8]) -> Result<Vec<u8>, JsonError> {
    json_to_protobuf_within(json, JsonBudget::for_text(json.len()))
}

/// [`json_to_protobuf`] with an explicit budget.
pub fn json_to_protobuf_within(json: &[u8], budget: JsonBudget) -> Result<Vec<u8>, JsonError> {
    transcode::transcode(json, budget).map_err(|f| {
        let e = &f.error;
        let at = byte_offset(json, e.line(), e.column());
        if f.over_budget {
            JsonError {
                kind: JsonErrorKind::OverBudget,
                at,
            }
        } else if e.classify() == serde_json::error::Category::Data {
            JsonError {
                kind: JsonErrorKind::Syntax,
                at: 0,
            }
        } else {
            JsonError {
                kind: JsonErrorKind::Syntax,
                at,
            }
        }
    })
}

/// serde_json reports 1-based line and column; turn them into a byte offset.
fn byte_offset(text: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// Decodes an OTLP/HTTP trace request body into protobuf bytes: undoes `Content-Encoding`
/// (bounded by `max_decoded`), converts JSON, and checks the structure of protobuf bodies.
pub fn decode_body(
    body: Bytes,
    content_encoding: Option<&str>,
    format: BodyFormat,
    max_decoded: usize,
) -> Result<Bytes, BodyError> {
    let codec = match content_encoding {
        None => Compression::Identity,
        Some(name) => Compression::from_name(name).ok_or(BodyError::UnsupportedEncoding)?,
    };
    let raw = match codec {
        Compression::Identity if body.len() > max_decoded => {
            return Err(BodyError::Oversize { at: max_decoded });
        }
        Compression::Identity => body,
        c => {
            let raw = c.decompress(&body, max_decoded)?;
            // The compressed bytes are not needed while the JSON is transcoded.
            drop(body);
            Bytes::from(raw)
        }
    };
    match format {
        BodyFormat::Protobuf => {
            crate::scan::count_spans(&raw)?;
            Ok(raw)
        }
        BodyFormat::Json => Ok(Bytes::from(json_to_protobuf(&raw)?)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::DecompressErrorKind;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    const BODY: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
      "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
      "spanId":"eee19b7ec3c1b174","name":"GET /cart","kind":2,"startTimeUnixNano":"1544712660000000000",
      "endTimeUnixNano":1544712661000000000,"attributes":[{"key":"n","value":{"intValue":"42"}}],
      "status":{"code":2}}]}]}]}"#;

    #[test]
    fn json_converts_to_the_same_request_as_prost() {
        let pb = json_to_protobuf(BODY.as_bytes()).unwrap();
        let req = ExportTraceServiceRequest::decode(&pb[..]).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        let views = crate::view::scan(&Bytes::from(pb)).unwrap();
        assert_eq!(views[0].resource().service_name(), Some(&b"cart"[..]));
        assert_eq!(
            views[0].attribute("n"),
            Some(crate::attributes::AnyValue::Int(42))
        );
    }

    #[test]
    fn bad_json_reports_an_offset() {
        let err = json_to_protobuf(b"{\n  \"resourceSpans\": [ { ,").unwrap_err();
        assert_eq!(
            err,
            JsonError {
                kind: JsonErrorKind::Syntax,
                at: 25
            }
        );
        let err = json_to_protobuf(br#"{"resourceSpans": [ { "resource": 7 } ]}"#).unwrap_err();
        assert_eq!(
            err,
            JsonError {
                kind: JsonErrorKind::Syntax,
                at: 0
            }
        );
        let err = json_to_protobuf(
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::Syntax);
    }

    #[test]
    fn bodies_are_decoded_and_capped() {
        let z = Bytes::from(Compression::Gzip.compress(BODY.as_bytes()).unwrap());
        let pb = decode_body(z.clone(), Some("gzip"), BodyFormat::Json, 1 << 20).unwrap();
        assert_eq!(crate::scan::count_spans(&pb).unwrap(), 1);
        let err = decode_body(z, Some("gzip"), BodyFormat::Json, 100).unwrap_err();
        assert!(matches!(err, BodyError::Decompress(e) if e.kind == DecompressErrorKind::Oversize));
        let err =
            decode_body(Bytes::from_static(b"{}"), Some("br"), BodyFormat::Json, 100).unwrap_err();
        assert_eq!(err, BodyError::UnsupportedEncoding);
        let err = decode_body(
            Bytes::from_static(&[0x0a, 5]),
            None,
            BodyFormat::Protobuf,
            100,
        )
        .unwrap_err();
        assert!(matches!(err, BodyError::Scan(_)));
        let err = decode_body(Bytes::from_static(b"{}"), None, BodyFormat::Json, 1).unwrap_err();
        assert_eq!(err, BodyError::Oversize { at: 1 });
        assert_eq!(
            BodyFormat::from_content_type("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("application/x-protobuf"),
            Some(BodyFormat::Protobuf)
        );
        assert_eq!(BodyFormat::from_content_type("text/plain"), None);
    }

    /// Issue 17's bomb: `{"resourceSpans":[{},{},…]}` with 6.5 M empty elements, 19.5 MiB of
    /// JSON that gzip -9 packs into about 19 KiB.
    fn bomb() -> Vec<u8> {
        let mut json = b"{\"resourceSpans\":[".to_vec();
        json.extend_from_slice(&b"{},".repeat(6_500_000));
        json.extend_from_slice(b"{}]}");
        json
    }

    #[test]
    fn the_empty_object_bomb_is_refused_early() {
        let json = bomb();
        let err = json_to_protobuf(&json).unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::OverBudget);
        // Refused when the object budget (one per 8 bytes) ran out, three eighths of the way in.
        let objects = json.len() / BYTES_PER_OBJECT;
        assert!(err.at < objects * 3 + 100, "{err:?}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &json).unwrap();
        let z = Bytes::from(gz.finish().unwrap());
        assert!(z.len() < 32 << 10, "{} bytes", z.len());
        let err = decode_body(z.clone(), Some("gzip"), BodyFormat::Json, 20 << 20).unwrap_err();
        assert!(matches!(err, BodyError::Json(e) if e.kind == JsonErrorKind::OverBudget));
        // With a smaller body limit the inflation stops at the limit, before any JSON is read.
        let err = decode_body(z, Some("gzip"), BodyFormat::Json, 1 << 20).unwrap_err();
        assert!(matches!(err, BodyError::Decompress(e) if e.kind == DecompressErrorKind::Oversize));
    }

    #[test]
    fn a_body_at_the_object_budget_is_accepted() {
        // One span per 8 bytes of JSON is legitimate if dense: the budget counts, it does not guess.
        let n = 1000;
        let mut json = b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[".to_vec();
        json.extend_from_slice(&b"{\"name\":\"s\"},".repeat(n));
        json.extend_from_slice(b"{}]}]}]}");
        let pb = json_to_protobuf(&json).unwrap();
        assert_eq!(crate::scan::count_spans(&pb).unwrap(), n + 1);
    }
}
