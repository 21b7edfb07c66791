//! Message compression as negotiated by `grpc-encoding` (and OTLP/HTTP `Content-Encoding`).
//!
//! Decompression is always bounded: the decoder's output is read through a limit of
//! `max_decoded + 1` bytes, so a compression bomb stops at the cap instead of allocating what it
//! claims. The input is wrapped in a counting reader so errors can say how far into the compressed
//! bytes the decoder got.

use std::io::{self, Read};

use crate::error::{DecompressError, DecompressErrorKind};

/// Largest decoded message accepted by default: 4 MiB, grpc-go's default `MaxRecvMsgSize`
/// (the collector's `max_recv_msg_size_mib` default).
pub const DEFAULT_MAX_DECODED_SIZE: usize = 4 << 20;

/// A message compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (`identity`, or no `grpc-encoding` header at all).
    #[default]
    Identity,
    /// RFC 1952 gzip; concatenated members are decoded as one stream (like Go's `gzip.Reader`).
    Gzip,
    /// Zstandard frames (one or more).
    Zstd,
    /// Snappy in its *framed* stream format, which is what the collector's gRPC snappy codec
    /// (`mostynb/go-grpc-compression`) and OTLP/HTTP in v0.115 put on the wire.
    Snappy,
}

impl Compression {
    /// Every codec, in the order advertised in `grpc-accept-encoding`.
    pub const ALL: [Compression; 4] = [
        Compression::Identity,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Snappy,
    ];

    /// Parses a `grpc-encoding` / `Content-Encoding` value (case-insensitive, surrounding
    /// whitespace ignored). `None` means the peer asked for a codec we do not support; gRPC
    /// answers that with status UNIMPLEMENTED.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        let eq = |s: &str| name.eq_ignore_ascii_case(s);
        if name.is_empty() || eq("identity") {
            Some(Compression::Identity)
        } else if eq("gzip") || eq("x-gzip") {
            Some(Compression::Gzip)
        } else if eq("zstd") {
            Some(Compression::Zstd)
        } else if eq("snappy") || eq("x-snappy-framed") {
            Some(Compression::Snappy)
        } else {
            None
        }
    }

    /// The canonical header value of this codec.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::Identity => "identity",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        }
    }

    /// Value for a `grpc-accept-encoding` header listing every supported codec.
    pub const ACCEPT_ENCODING: &'static str = "identity,gzip,zstd,snappy";

    /// Compresses `input`, appending to `out`. Writing into a `Vec` cannot fail for these codecs
    /// except on an internal codec error, which is reported as `io::Error`.
    pub fn compress_into(self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        use std::io::Write;
        match self {
            Compression::Identity => out.extend_from_slice(input),
            Compression::Gzip => gzip_into(input, out)?,
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 1)?;
                enc.write_all(input)?;
                enc.finish()?;
            }
            Compression::Snappy => {
                let mut enc = snap::write::FrameEncoder::new(out);
                enc.write_all(input)?;
                enc.flush()?;
            }
        }
        Ok(())
    }

    /// Compresses `input` into a new buffer.
    pub fn compress(self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        self.compress_into(input, &mut out)?;
        Ok(out)
    }

    /// Decompresses `input`, failing with [`DecompressErrorKind::Oversize`] as soon as the output
    /// would pass `max_decoded` bytes; memory use stays within about `2 * max_decoded` plus the
    /// codec's own window.
    pub fn decompress(self, input: &[u8], max_decoded: usize) -> Result<Vec<u8>, DecompressError> {
        let mut src = Counting {
            inner: input,
            consumed: 0,
        };
        let limit = max_decoded;
        match self {
            Compression::Identity => {
                if input.len() > limit {
                    return Err(oversize(limit));
                }
                Ok(input.to_vec())
            }
            Compression::Gzip => {
                // `bufread`: `Counting` is the buffer, so the compressed bytes are not copied
                // through a `BufReader` first.
                let mut dec = flate2::bufread::MultiGzDecoder::new(&mut src);
                let res = read_bounded(&mut dec, limit, gzip_capacity(input, limit));
                drop(dec);
                res.map_err(|kind| DecompressError {
                    kind,
                    at: src.consumed,
                })
            }
            Compression::Zstd => {
                let res = zstd_decompress(&mut src, limit, input.len());
                res.map_err(|kind| DecompressError {
                    kind,
                    at: src.consumed,
                })
            }
            Compression::Snappy => {
                let mut dec = snap::read::FrameDecoder::new(&mut src);
                let res = read_bounded(&mut dec, limit, guess_capacity(input.len(), limit));
                drop(dec);
                res.map_err(|kind| DecompressError {
                    kind,
                    at: src.consumed,
                })
            }
        }
    }
}

fn oversize(limit: usize) -> DecompressError {
    DecompressError {
        kind: DecompressErrorKind::Oversize,
        at: limit,
    }
}

/// The zstd decoder allocates its window up front from the frame header, so the header alone could
/// ask for 128 MiB. Cap the window at twice the output limit (at least 1 MiB): no legitimate frame
/// whose content fits the limit needs more, and encoders at ordinary levels use at most 8 MiB.
fn zstd_decompress(
    src: &mut Counting<'_>,
    limit: usize,
    input_len: usize,
) -> Result<Vec<u8>, DecompressErrorKind> {
    let window_log = (usize::BITS - limit.max(1).leading_zeros()).clamp(20, 27);
    let mut dec =
        zstd::stream::read::Decoder::new(src).map_err(|_| DecompressErrorKind::Corrupt)?;
    dec.window_log_max(window_log)
        .map_err(|_| DecompressErrorKind::Corrupt)?;
    read_bounded(&mut dec, limit, guess_capacity(input_len, limit))
}

/// One-shot gzip at level 1 (`Compression::fast()`): the whole message is in memory, so one
/// deflate call with `Finish` writes the member (zlib-rs adds header and CRC) straight into `out`,
/// with no stream wrapper in between. flate2 runs on zlib-rs (workspace `Cargo.toml`): on the
/// realistic corpus it compresses in about half miniz_oxide's time at the same ratio
/// (docs/perf.md, "Codecs on the realistic corpus").
fn gzip_into(input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let mut enc = flate2::Compress::new_gzip(flate2::Compression::fast(), 15);
    // Real spans compress 4-5x: a quarter of the input usually suffices; grow if not.
    out.reserve(input.len() / 4 + 64);
    loop {
        let (read, written) = (enc.total_in(), enc.total_out());
        let rest = usize::try_from(read)
            .ok()
            .and_then(|n| input.get(n..))
            .unwrap_or_default();
        let status = enc
            .compress_vec(rest, out, flate2::FlushCompress::Finish)
            .map_err(io::Error::other)?;
        if status == flate2::Status::StreamEnd {
            return Ok(());
        }
        if (read, written) == (enc.total_in(), enc.total_out()) && out.len() < out.capacity() {
            return Err(io::Error::other("deflate made no progress"));
        }
        out.reserve(rest.len() / 2 + 1024);
    }
}

/// Output capacity for a gzip message: the size its trailer states (of the last member, mod 2^32),
/// so a typical message decodes without reallocating. The trailer is untrusted: the hint is capped
/// by the limit and by deflate's largest ratio (1032:1), and is only a capacity.
fn gzip_capacity(input: &[u8], limit: usize) -> usize {
    let stated = input
        .last_chunk::<4>()
        .map_or(0, |t| u32::from_le_bytes(*t) as usize);
    if stated == 0 || input.len() < 18 {
        return guess_capacity(input.len(), limit);
    }
    stated
        .min(input.len().saturating_mul(1032))
        .min(limit.max(64))
}

/// A plausible output size when the stream states none: 4x the input, within 64 bytes..limit.
fn guess_capacity(input_len: usize, limit: usize) -> usize {
    input_len.saturating_mul(4).clamp(64, limit.max(64))
}

/// Reads `reader` to its end, refusing to produce more than `limit` bytes, into a buffer of
/// `capacity` to start with (`read_to_end` grows it when needed).
fn read_bounded<R: Read>(
    reader: &mut R,
    limit: usize,
    capacity: usize,
) -> Result<Vec<u8>, DecompressErrorKind> {
    let mut out = Vec::with_capacity(capacity);
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    match reader.take(cap).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(DecompressErrorKind::Oversize),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(DecompressErrorKind::Truncated),
        Err(e) if is_zstd_truncation(&e) => Err(DecompressErrorKind::Truncated),
        Err(_) => Err(DecompressErrorKind::Corrupt),
    }
}

/// The zstd stream decoder reports a frame cut short as a generic error with this message.
fn is_zstd_truncation(e: &io::Error) -> bool {
    e.to_string().contains("incomplete frame")
}

/// A reader over a byte slice that remembers how much has been consumed, for error offsets.
struct Counting<'a> {
    inner: &'a [u8],
    consumed: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n;
        Ok(n)
    }
}

impl io::BufRead for Counting<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.inner)
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.inner.len());
        self.inner = &self.inner[amt..];
        self.consumed += amt;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_name(c.name()), Some(c));
        }
        assert_eq!(Compression::from_name(" GZIP "), Some(Compression::Gzip));
        assert_eq!(Compression::from_name(""), Some(Compression::Identity));
        assert_eq!(Compression::from_name("br"), None);
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for c in Compression::ALL {
            let z = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&z, data.len()).unwrap(), data, "{c:?}");
            assert_eq!(c.decompress(&[], 10).unwrap_or_default().len(), 0, "{c:?}");
        }
    }

    #[test]
    fn oversize_is_refused_while_decoding() {
        // 64 MiB of zeros compress to a few KiB: a small bomb.
        let zeros = vec![0u8; 64 << 20];
        for c in Compression::ALL {
            let z = c.compress(&zeros).unwrap();
            let err = c.decompress(&z, DEFAULT_MAX_DECODED_SIZE).unwrap_err();
            assert_eq!(err.kind, DecompressErrorKind::Oversize, "{c:?}");
        }
        // Exactly at the limit is fine.
        let data = vec![7u8; 1000];
        for c in Compression::ALL {
            let z = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&z, 1000).unwrap().len(), 1000);
            assert_eq!(
                c.decompress(&z, 999).unwrap_err().kind,
                DecompressErrorKind::Oversize
            );
        }
    }

    #[test]
    fn truncated_streams_are_reported() {
        let data = sample();
        for c in [Compression::Gzip, Compression::Zstd] {
            let z = c.compress(&data).unwrap();
            let err = c.decompress(&z[..z.len() / 2], usize::MAX).unwrap_err();
            assert_eq!(err.kind, DecompressErrorKind::Truncated, "{c:?}");
            assert!(err.at <= z.len() / 2);
        }
        // A snappy stream cut between chunks is a valid shorter stream; cut inside a chunk is not.
        let z = Compression::Snappy.compress(&data).unwrap();
        assert!(Compression::Snappy
            .decompress(&z[..z.len() - 3], usize::MAX)
            .is_err());
    }

    #[test]
    fn corrupt_streams_are_reported() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::Snappy] {
            let err = c
                .decompress(b"definitely not compressed", 1 << 20)
                .unwrap_err();
            assert_eq!(err.kind, DecompressErrorKind::Corrupt, "{c:?}");
        }
        let mut z = Compression::Gzip.compress(&sample()).unwrap();
        let n = z.len();
        z[n - 6] ^= 0xff; // CRC
        let err = Compression::Gzip.decompress(&z, usize::MAX).unwrap_err();
        assert_eq!(err.kind, DecompressErrorKind::Corrupt);
        assert!(err.at > n / 2, "offset {} should be near the end", err.at);
    }

    #[test]
    fn gzip_one_shot_appends_and_grows() {
        // Incompressible input makes the first output reservation too small.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for data in [noise, sample(), Vec::new()] {
            let mut out = b"head".to_vec();
            Compression::Gzip.compress_into(&data, &mut out).unwrap();
            assert_eq!(&out[..4], b"head");
            let back = Compression::Gzip.decompress(&out[4..], usize::MAX).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn gzip_members_are_concatenated() {
        let (a, b) = (sample(), b"second member".to_vec());
        let mut z = Compression::Gzip.compress(&a).unwrap();
        z.extend(Compression::Gzip.compress(&b).unwrap());
        let back = Compression::Gzip.decompress(&z, usize::MAX).unwrap();
        assert_eq!(back.len(), a.len() + b.len());
        assert_eq!(&back[a.len()..], b.as_slice());
        // The trailer states the last member's size only: the buffer grows past the hint.
        assert_eq!(
            Compression::Gzip.decompress(&z, a.len()).unwrap_err().kind,
            DecompressErrorKind::Oversize
        );
    }

    #[test]
    fn a_lying_gzip_trailer_changes_nothing() {
        let data = sample();
        let mut z = Compression::Gzip.compress(&data).unwrap();
        let n = z.len();
        for stated in [0u32, 1, u32::MAX] {
            z[n - 4..].copy_from_slice(&stated.to_le_bytes());
            let err = Compression::Gzip.decompress(&z, 1 << 20).unwrap_err();
            assert_eq!(err.kind, DecompressErrorKind::Corrupt, "ISIZE {stated}");
        }
    }

    #[test]
    fn identity_respects_the_limit() {
        assert_eq!(
            Compression::Identity
                .decompress(&[1, 2, 3], 2)
                .unwrap_err()
                .kind,
            DecompressErrorKind::Oversize
        );
    }
}
