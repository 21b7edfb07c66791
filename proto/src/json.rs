//! OTLP/HTTP request bodies: protobuf as is, JSON converted to protobuf.
//!
//! JSON goes through `opentelemetry-proto`'s serde support (hex trace/span ids, enum values as
//! integers, 64-bit integers as strings or numbers, lowerCamelCase keys per the OTLP spec), then
//! prost encodes the protobuf bytes the rest of the pipeline scans. This is not the hot path: OTLP
//! clients overwhelmingly send protobuf.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

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

/// Converts an OTLP/JSON `ExportTraceServiceRequest` to its protobuf encoding.
///
/// The text is parsed once into a `serde_json::Value` (syntax errors carry their byte offset),
/// 64-bit timestamps given as JSON numbers are turned into the string form opentelemetry-proto
/// 0.31 insists on (the OTLP spec allows both), then the value is mapped onto the prost types.
/// Schema errors (wrong types, bad hex ids) are reported at offset 0: the value tree has no
/// positions.
pub fn json_to_protobuf(json: &[u8]) -> Result<Vec<u8>, JsonError> {
    let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|e| JsonError {
        kind: JsonErrorKind::Syntax,
        at: byte_offset(json, e.line(), e.column()),
    })?;
    stringify_u64_fields(&mut value);
    let req: ExportTraceServiceRequest = serde_json::from_value(value).map_err(|_| JsonError {
        kind: JsonErrorKind::Syntax,
        at: 0,
    })?;
    Ok(req.encode_to_vec())
}

/// The `fixed64` fields of the trace schema, which OTLP/JSON may carry as numbers or strings.
const U64_KEYS: [&str; 3] = ["startTimeUnixNano", "endTimeUnixNano", "timeUnixNano"];

/// Rewrites numeric values of [`U64_KEYS`] as strings, everywhere in the tree. Iterative, so a
/// deeply nested body cannot overflow the stack here (serde_json itself limits nesting to 128).
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
        c => Bytes::from(c.decompress(&body, max_decoded)?),
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
}
