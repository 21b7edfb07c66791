//! Outcome of an OTLP/HTTP export: otlphttpexporter's (v0.115.0) retry rule and its
//! `partial_success` reading.
//!
//! - 2xx: delivered; a `partial_success` in the body is logged and its rejected spans counted.
//! - 429, 502, 503, 504: retryable. On 429 and 503 a `Retry-After` of whole seconds asks for
//!   that delay (the retry waits the longer of it and the backoff, or gives up when that ends
//!   after `max_elapsed_time`); an HTTP-date is ignored, as the collector ignores it. Seconds
//!   beyond `u64` saturate (the collector's `strconv.Atoi` fails past `i64` and falls back to the
//!   backoff, which would let a backend bypass the retry budget by adding a digit).
//! - Any other status (400, 401, 404, 413, 500, ...): permanent, the spans are dropped and counted.
//! - Transport failures (connect, reset, timeout) are retryable.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::exporter::otlp::status::{ExportError, RpcStatus};

/// Whether the collector retries a request answered with `status`.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// The failure for a non-2xx answer; `body` is the start of the response body (a
/// `google.rpc.Status` per the OTLP spec, quoted in the message when it decodes).
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ExportError {
    let retryable = is_retryable(status);
    let throttle = match status.as_u16() {
        429 | 503 => retry_after(headers),
        _ => None,
    };
    let detail = status_message(body)
        .map(|m| format!(", message: {m}"))
        .unwrap_or_default();
    ExportError {
        retryable,
        throttle,
        message: format!("HTTP status {status}{detail}"),
    }
}

/// `Retry-After` as whole seconds (what the collector reads; dates are ignored), saturating.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let digits = v.strip_prefix('+').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(digits.parse().unwrap_or(u64::MAX)))
}

fn status_message(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let s = RpcStatus::decode(body).ok()?;
    (!s.message.is_empty()).then_some(s.message)
}

/// Spans a 2xx answer says were rejected (`partial_success.rejected_spans`) and its message;
/// `None` when the body is empty, not an `ExportTraceServiceResponse`, or has no partial success.
pub fn partial_success(content_type: Option<&str>, body: &[u8]) -> Option<(u64, String)> {
    if body.is_empty() {
        return None;
    }
    let media = content_type?.split(';').next()?.trim();
    let (rejected, message) = if media.eq_ignore_ascii_case("application/json") {
        json_partial_success(body)?
    } else if media.eq_ignore_ascii_case("application/x-protobuf") {
        let p = ExportTraceServiceResponse::decode(body)
            .ok()?
            .partial_success?;
        (
            u64::try_from(p.rejected_spans).unwrap_or(0),
            p.error_message,
        )
    } else {
        return None;
    };
    (rejected != 0 || !message.is_empty()).then_some((rejected, message))
}

/// OTLP/JSON carries int64 as a string or a number, so the fields are read by hand.
fn json_partial_success(body: &[u8]) -> Option<(u64, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let p = v
        .get("partialSuccess")
        .or_else(|| v.get("partial_success"))?;
    let rejected = match p.get("rejectedSpans").or_else(|| p.get("rejected_spans")) {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(n) => n.as_u64().unwrap_or(0),
        None => 0,
    };
    let message = p
        .get("errorMessage")
        .or_else(|| p.get("error_message"))
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_owned();
    Some((rejected, message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn retryable_statuses_follow_otlphttpexporter() {
        for s in [429, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 413, 500, 501] {
            assert!(!is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn retry_after_counts_on_429_and_503_only() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        let e = classify(StatusCode::SERVICE_UNAVAILABLE, &h, b"");
        assert_eq!(
            (e.retryable, e.throttle),
            (true, Some(Duration::from_secs(3)))
        );
        let e = classify(StatusCode::BAD_GATEWAY, &h, b"");
        assert_eq!((e.retryable, e.throttle), (true, None));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b"").throttle,
            None
        );
        // A date far in the future is ignored too (bounded: no delay is derived from it).
        h.insert(
            "retry-after",
            "Fri, 31 Dec 9999 23:59:59 GMT".parse().unwrap(),
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b"").throttle,
            None
        );
        let body = RpcStatus {
            code: 3,
            message: "bad span".into(),
            details: Vec::new(),
        }
        .encode_to_vec();
        let e = classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &body);
        assert!(!e.retryable);
        assert!(e.message.contains("bad span"), "{}", e.message);
    }

    #[test]
    fn huge_retry_after_saturates() {
        let throttle = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("retry-after", v.parse().unwrap());
            classify(StatusCode::SERVICE_UNAVAILABLE, &h, b"").throttle
        };
        let max = Some(Duration::from_secs(u64::MAX));
        assert_eq!(throttle("18446744073709551615"), max);
        assert_eq!(throttle("99999999999999999999999999"), max);
        assert_eq!(throttle(" +86400 "), Some(Duration::from_secs(86_400)));
        assert_eq!(throttle("-1"), None);
        assert_eq!(throttle("1.5"), None);
        assert_eq!(throttle(""), None);
    }

    #[test]
    fn partial_success_is_read_from_proto_and_json() {
        let r = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "too old".into(),
            }),
        };
        let got = partial_success(Some("application/x-protobuf"), &r.encode_to_vec());
        assert_eq!(got, Some((7, "too old".into())));
        let json = br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"x"}}"#;
        assert_eq!(
            partial_success(Some("application/json"), json),
            Some((2, "x".into()))
        );
        let json = br#"{"partialSuccess":{"rejectedSpans":5}}"#;
        assert_eq!(
            partial_success(Some("application/json"), json),
            Some((5, String::new()))
        );
        assert_eq!(partial_success(Some("application/x-protobuf"), b""), None);
        let ok = ExportTraceServiceResponse::default().encode_to_vec();
        assert_eq!(partial_success(Some("application/x-protobuf"), &ok), None);
    }
}
