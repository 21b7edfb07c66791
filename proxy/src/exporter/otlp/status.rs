//! gRPC status of an export attempt, and whether it may be retried.
//!
//! The rule is exporterhelper's (collector `otlpexporter.shouldRetry`): CANCELLED,
//! DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retryable;
//! RESOURCE_EXHAUSTED only when the server sent RetryInfo; everything else is permanent.

use std::time::Duration;

use base64::Engine as _;
use prost::Message;

/// The outcome of one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError {
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// Server-requested delay (RetryInfo) before the next attempt.
    pub throttle: Option<Duration>,
    /// For logs.
    pub message: String,
}

impl ExportError {
    /// A transport failure (connect, reset, timeout): always retryable.
    pub fn transport(message: impl Into<String>) -> Self {
        ExportError {
            retryable: true,
            throttle: None,
            message: message.into(),
        }
    }
}

/// Classifies a gRPC status code with the server's optional `grpc-status-details-bin`.
pub fn classify(code: u32, message: &str, details_bin: Option<&[u8]>) -> ExportError {
    let throttle = details_bin.and_then(retry_delay);
    let retryable = match code {
        1 | 4 | 10 | 11 | 14 | 15 => true,
        8 => throttle.is_some(),
        _ => false,
    };
    ExportError {
        retryable,
        throttle,
        message: format!("gRPC status {code}: {message}"),
    }
}

/// Maps a non-200 HTTP status to a gRPC code, per the gRPC HTTP/2 spec.
pub fn code_for_http_status(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// `google.rpc.Status`: the gRPC status details, also the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// `RetryInfo` and other details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`: one detail of a [`RpcStatus`].
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Any {
    /// What `value` holds.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded detail.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// Reads RetryInfo.retry_delay from a base64 `grpc-status-details-bin` value.
fn retry_delay(header: &[u8]) -> Option<Duration> {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(
            header
                .strip_suffix(b"==")
                .or_else(|| header.strip_suffix(b"="))
                .unwrap_or(header),
        )
        .ok()?;
    let status = RpcStatus::decode(raw.as_slice()).ok()?;
    let info = status
        .details
        .iter()
        .find(|d| d.type_url.ends_with("google.rpc.RetryInfo"))?;
    let d = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    positive_duration(&d)
}

/// A `google.protobuf.Duration` as Go's `AsDuration` reads it (signed nanos added to the seconds,
/// even out of their documented range), saturating; `None` when the seconds are negative (the
/// backoff is then the longer wait, as in the collector). The result may be absurdly long: the
/// queue treats it as over the retry budget, never as an `Instant` to compute.
fn positive_duration(d: &ProtoDuration) -> Option<Duration> {
    let whole = Duration::from_secs(u64::try_from(d.seconds).ok()?);
    let nanos = Duration::from_nanos(u64::from(d.nanos.unsigned_abs()));
    Some(if d.nanos >= 0 {
        whole.saturating_add(nanos)
    } else {
        whole.saturating_sub(nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_follow_the_collector() {
        for code in [1, 4, 10, 11, 14, 15] {
            assert!(classify(code, "", None).retryable, "{code}");
        }
        for code in [2, 3, 5, 7, 8, 12, 13, 16] {
            assert!(!classify(code, "", None).retryable, "{code}");
        }
        let details = RpcStatus {
            code: 8,
            message: "slow down".into(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: 2,
                        nanos: 0,
                    }),
                }
                .encode_to_vec(),
            }],
        };
        let bin = base64::engine::general_purpose::STANDARD_NO_PAD.encode(details.encode_to_vec());
        let e = classify(8, "slow down", Some(bin.as_bytes()));
        assert!(e.retryable);
        assert_eq!(e.throttle, Some(Duration::from_secs(2)));
        assert_eq!(code_for_http_status(503), 14);
    }

    fn delay(seconds: i64, nanos: i32) -> Option<Duration> {
        positive_duration(&ProtoDuration { seconds, nanos })
    }

    #[test]
    fn retry_delays_saturate_instead_of_panicking() {
        assert_eq!(delay(2, 500), Some(Duration::new(2, 500)));
        assert_eq!(delay(1 << 62, 0), Some(Duration::from_secs(1 << 62)));
        let max = Duration::from_secs(i64::MAX as u64);
        assert_eq!(
            delay(i64::MAX, i32::MAX),
            Some(max + Duration::from_nanos(i32::MAX as u64))
        );
        assert_eq!(delay(1, 1_500_000_000), Some(Duration::new(2, 500_000_000)));
        assert_eq!(delay(1, -500_000_000), Some(Duration::from_millis(500)));
        assert_eq!(delay(0, i32::MIN), Some(Duration::ZERO));
        assert_eq!(delay(-1, 0), None);
        assert_eq!(delay(i64::MIN, i32::MIN), None);
    }
}
