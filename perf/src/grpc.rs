//! gRPC pieces shared by the sink and the sender: status codes, message framing, compression.
//!
//! A gRPC message on the wire is a 5-byte prefix (compressed flag, big-endian length) and the
//! message. `grpc-encoding` names the compression of flagged messages.

use std::fmt;
use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};

/// The gRPC path of the OTLP trace export method.
pub const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC status code (`grpc-status` trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct GrpcStatus(pub u32);

impl GrpcStatus {
    /// Success.
    pub const OK: GrpcStatus = GrpcStatus(0);
    /// The call was cancelled.
    pub const CANCELLED: GrpcStatus = GrpcStatus(1);
    /// Unknown error.
    pub const UNKNOWN: GrpcStatus = GrpcStatus(2);
    /// The request is malformed; the OTLP exporter does not retry it.
    pub const INVALID_ARGUMENT: GrpcStatus = GrpcStatus(3);
    /// The deadline passed.
    pub const DEADLINE_EXCEEDED: GrpcStatus = GrpcStatus(4);
    /// Over a limit (memory, message size); retryable in OTLP when it carries retry info.
    pub const RESOURCE_EXHAUSTED: GrpcStatus = GrpcStatus(8);
    /// The method is not served here.
    pub const UNIMPLEMENTED: GrpcStatus = GrpcStatus(12);
    /// Internal error.
    pub const INTERNAL: GrpcStatus = GrpcStatus(13);
    /// The server cannot serve now; OTLP exporters retry it.
    pub const UNAVAILABLE: GrpcStatus = GrpcStatus(14);

    const NAMES: [(&'static str, GrpcStatus); 9] = [
        ("ok", Self::OK),
        ("cancelled", Self::CANCELLED),
        ("unknown", Self::UNKNOWN),
        ("invalid_argument", Self::INVALID_ARGUMENT),
        ("deadline_exceeded", Self::DEADLINE_EXCEEDED),
        ("resource_exhausted", Self::RESOURCE_EXHAUSTED),
        ("unimplemented", Self::UNIMPLEMENTED),
        ("internal", Self::INTERNAL),
        ("unavailable", Self::UNAVAILABLE),
    ];

    /// Parses a status by snake-case name (`unavailable`) or number (`14`).
    pub fn parse(s: &str) -> Option<GrpcStatus> {
        if let Ok(n) = s.parse::<u32>() {
            return Some(GrpcStatus(n));
        }
        let s = s.to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|&(_, code)| code)
    }

    /// The HTTP status an OTLP/HTTP server answers for this gRPC status.
    pub fn to_http(self) -> u16 {
        match self {
            Self::OK => 200,
            Self::INVALID_ARGUMENT => 400,
            Self::RESOURCE_EXHAUSTED => 429,
            Self::UNIMPLEMENTED => 404,
            Self::UNAVAILABLE => 503,
            Self::DEADLINE_EXCEEDED => 504,
            _ => 500,
        }
    }
}

impl fmt::Display for GrpcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::NAMES.iter().find(|(_, c)| c == self) {
            Some((name, _)) => write!(f, "{name}({})", self.0),
            None => write!(f, "status({})", self.0),
        }
    }
}

/// Compression of gRPC messages (`grpc-encoding`) or HTTP bodies (`content-encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip (flate2, level 1: the sender must not become the bottleneck).
    Gzip,
    /// zstd (level 1).
    Zstd,
}

/// A body that could not be decompressed or deframed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The compression named in the headers is not one we decode.
    #[error("unsupported encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The decompressor failed.
    #[error("cannot decompress: {0}")]
    Decompress(String),
    /// A message, compressed or not, is larger than the limit.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body ends inside a frame.
    #[error("body ends inside a gRPC frame")]
    Truncated,
    /// A flagged message arrived without a `grpc-encoding`.
    #[error("compressed message without grpc-encoding")]
    MissingEncoding,
}

impl Compression {
    /// The header value that names this compression (`identity` for none).
    pub fn header_value(self) -> &'static str {
        match self {
            Compression::None => "identity",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses a `grpc-encoding` / `content-encoding` value; `None` means unsupported.
    pub fn from_header(value: &str) -> Option<Compression> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Parses a CLI value (`none`, `gzip`, `zstd`).
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            other => Self::from_header(other),
        }
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                use std::io::Write;
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 4),
                    flate2::Compression::fast(),
                );
                // Writing into a Vec cannot fail.
                let _ = enc.write_all(data);
                enc.finish().unwrap_or_default()
            }
            Compression::Zstd => zstd::bulk::compress(data, 1).unwrap_or_default(),
        }
    }

    /// Decompresses `data`, refusing output larger than `limit` bytes (a zip bomb stops there).
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
        let reader: Box<dyn Read + '_> = match self {
            Compression::None => return Ok(data.to_vec()),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(data)
                    .map_err(|e| FrameError::Decompress(e.to_string()))?,
            ),
        };
        let mut out = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| FrameError::Decompress(e.to_string()))?;
        if out.len() > limit {
            return Err(FrameError::TooLarge { limit });
        }
        Ok(out)
    }
}

/// Frames one message: 5-byte prefix, then the (maybe compressed) message.
pub fn encode_frame(message: &[u8], compression: Compression) -> Bytes {
    let (flag, payload) = match compression {
        Compression::None => (0u8, None),
        c => (1u8, Some(c.compress(message))),
    };
    let payload: &[u8] = payload.as_deref().unwrap_or(message);
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(flag);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
    buf.freeze()
}

/// Splits a unary gRPC body into its messages, decompressing flagged ones with `encoding`.
///
/// `limit` caps every message before and after decompression.
pub fn decode_frames(
    mut body: Bytes,
    encoding: Option<Compression>,
    limit: usize,
) -> Result<Vec<Bytes>, FrameError> {
    let mut out = Vec::with_capacity(1);
    while !body.is_empty() {
        if body.len() < 5 {
            return Err(FrameError::Truncated);
        }
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if len > limit {
            return Err(FrameError::TooLarge { limit });
        }
        if body.len() - 5 < len {
            return Err(FrameError::Truncated);
        }
        let payload = body.slice(5..5 + len);
        body = body.slice(5 + len..);
        let message = match (flag, encoding) {
            (0, _) => payload,
            (_, Some(c)) => Bytes::from(c.decompress(&payload, limit)?),
            (_, None) => return Err(FrameError::MissingEncoding),
        };
        out.push(message);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_every_compression() {
        let msg = b"hello hello hello hello".repeat(10);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let framed = encode_frame(&msg, c);
            assert_eq!(framed[0], u8::from(c != Compression::None));
            let out = decode_frames(framed, Some(c), 1 << 20).unwrap();
            assert_eq!(out, vec![Bytes::from(msg.clone())]);
        }
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let framed = encode_frame(b"abcdef", Compression::None);
        let cut = framed.slice(..framed.len() - 1);
        assert_eq!(decode_frames(cut, None, 100), Err(FrameError::Truncated));
        assert_eq!(
            decode_frames(Bytes::from_static(&[0, 0]), None, 100),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let big = vec![0u8; 1 << 20];
        let framed = encode_frame(&big, Compression::Gzip);
        // zlib-rs's level 1 uses fixed Huffman codes: 1 MiB of zeros takes ~10 KB (miniz ~5 KB).
        assert!(framed.len() < 16_000, "{} bytes", framed.len());
        assert_eq!(
            decode_frames(framed, Some(Compression::Gzip), 1000),
            Err(FrameError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn compressed_flag_without_encoding_is_an_error() {
        let framed = encode_frame(b"x", Compression::Gzip);
        assert_eq!(
            decode_frames(framed, None, 100),
            Err(FrameError::MissingEncoding)
        );
    }

    #[test]
    fn status_names_parse_and_print() {
        assert_eq!(
            GrpcStatus::parse("unavailable"),
            Some(GrpcStatus::UNAVAILABLE)
        );
        assert_eq!(GrpcStatus::parse("8"), Some(GrpcStatus::RESOURCE_EXHAUSTED));
        assert_eq!(GrpcStatus::parse("nope"), None);
        assert_eq!(GrpcStatus::UNAVAILABLE.to_string(), "unavailable(14)");
        assert_eq!(GrpcStatus::UNAVAILABLE.to_http(), 503);
    }
}
