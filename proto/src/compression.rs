//! Message compression as negotiated by `grpc-encoding` (and OTLP/HTTP `Content-Encoding`).
//!
//! Decompression is always bounded: the decoder's output is read through a limit of
//! `max_decoded + 1` bytes, so a compression bomb stops at the cap instead of allocating what it
//! claims. The input is wrapped in a counting reader so errors can say how far into the compressed
//! bytes the decoder got.

use std::io::{self, Read};

use crate::error::{DecompressError, DecompressErrorKind, LevelError};

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

    /// Compresses `input` at the codec's fast level ([`Level::Fast`]), appending to `out`.
    /// Writing into a `Vec` cannot fail for these codecs except on an internal codec error, which
    /// is reported as `io::Error`.
    pub fn compress_into(self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        Encoder::fast(self).compress_into(input, out)
    }

    /// Compresses `input` at the codec's fast level into a new buffer.
    pub fn compress(self, input: &[u8]) -> io::Result<Vec<u8>> {
        Encoder::fast(self).compress(input)
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

/// How hard an encoder works. Levels are on each codec's own scale; [`Encoder::new`] checks
/// that the codec has the level. Mapping the collector's `compression_params.level` onto these is
/// the config's business (its rules are the collector's, not a codec's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// The codec's fast level, tailgate's default: deflate level 1 for gzip (and zlib), zstd
    /// level 1; identity and snappy have only this one. Measured on the realistic corpus
    /// (docs/perf.md): gzip 1 on zlib-rs gives ratio 4.58 at ~780 ns per span.
    #[default]
    Fast,
    /// A numbered level: deflate 0 (stored) to 9, zstd 1 to 22.
    Numbered(i32),
    /// Deflate with Huffman coding only, no string matching (zlib's `Z_HUFFMAN_ONLY`, Go's
    /// `flate.HuffmanOnly`, the collector's level -2): gzip and zlib only.
    HuffmanOnly,
}

/// The deflate level [`Level::Fast`] means.
const DEFLATE_FAST: i32 = 1;
/// The zstd level [`Level::Fast`] means.
const ZSTD_FAST: i32 = 1;
/// zstd's numbered levels offered (libzstd's negative "fast" levels are not).
const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;
/// deflate's numbered levels.
const DEFLATE_LEVELS: std::ops::RangeInclusive<i32> = 0..=9;

/// What a deflate encoder runs: a numbered level, or Huffman coding alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeflateLevel {
    Numbered(u32),
    HuffmanOnly,
}

impl DeflateLevel {
    /// The deflate setting of `level`, if deflate has it.
    /// [`DeflateLevel::of`], a level deflate lacks as an `InvalidInput` error naming `codec`.
    fn checked(codec: &'static str, level: Level) -> io::Result<DeflateLevel> {
        DeflateLevel::of(level)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, LevelError { codec, level }))
    }

    fn of(level: Level) -> Option<DeflateLevel> {
        match level {
            Level::Fast => Some(DeflateLevel::Numbered(DEFLATE_FAST.unsigned_abs())),
            Level::Numbered(n) if DEFLATE_LEVELS.contains(&n) => {
                Some(DeflateLevel::Numbered(n.unsigned_abs()))
            }
            Level::Numbered(_) => None,
            Level::HuffmanOnly => Some(DeflateLevel::HuffmanOnly),
        }
    }
}

/// A codec with its level, checked together: what an exporter compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Encoder {
    codec: Compression,
    level: Level,
}

impl From<Compression> for Encoder {
    fn from(codec: Compression) -> Encoder {
        Encoder::fast(codec)
    }
}

impl Encoder {
    /// `codec` at its fast level (tailgate's default).
    pub const fn fast(codec: Compression) -> Encoder {
        Encoder {
            codec,
            level: Level::Fast,
        }
    }

    /// `codec` at `level`, if the codec has that level: gzip takes deflate's 0-9 and
    /// Huffman-only, zstd 1-22, identity and snappy only [`Level::Fast`].
    pub fn new(codec: Compression, level: Level) -> Result<Encoder, LevelError> {
        let ok = match codec {
            Compression::Gzip => DeflateLevel::of(level).is_some(),
            Compression::Zstd => match level {
                Level::Fast => true,
                Level::Numbered(n) => ZSTD_LEVELS.contains(&n),
                Level::HuffmanOnly => false,
            },
            Compression::Identity | Compression::Snappy => level == Level::Fast,
        };
        if ok {
            Ok(Encoder { codec, level })
        } else {
            Err(LevelError {
                codec: codec.name(),
                level,
            })
        }
    }

    /// The codec (what `grpc-encoding` names).
    pub const fn codec(self) -> Compression {
        self.codec
    }

    /// The level.
    pub const fn level(self) -> Level {
        self.level
    }

    /// Compresses `input`, appending to `out`. Writing into a `Vec` cannot fail for these codecs
    /// except on an internal codec error, which is reported as `io::Error`.
    pub fn compress_into(self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        use std::io::Write;
        match self.codec {
            Compression::Identity => out.extend_from_slice(input),
            Compression::Gzip => deflate_into(input, out, self.deflate_level()?, Wrapper::Gzip)?,
            Compression::Zstd => {
                let (level, pledge) = match self.level {
                    Level::Numbered(n) => (n, true),
                    Level::Fast | Level::HuffmanOnly => (ZSTD_FAST, false),
                };
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                // From level 3 up zstd picks a window of 2-128 MiB unless told the size, and
                // decoders bound the window they accept by the size they accept (ours at twice
                // the limit, at least 1 MiB): stating the size shrinks the window to the message.
                // The fast level's window is 512 KiB, under every such bound, and stays the
                // encoder measured in docs/perf.md.
                if pledge {
                    enc.set_pledged_src_size(u64::try_from(input.len()).ok())?;
                }
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

    fn deflate_level(self) -> io::Result<DeflateLevel> {
        // `new` checked the level; a level it refused cannot reach here.
        DeflateLevel::checked(self.codec.name(), self.level)
    }
}

/// Compresses `input` as a zlib stream (RFC 1950) at `level`, appending to `out`: OTLP/HTTP's
/// `Content-Encoding: zlib` and `deflate`, which the receivers do not accept, so it is no
/// [`Compression`]. Levels as gzip's; another level is an `InvalidInput` error.
pub fn zlib_into(input: &[u8], level: Level, out: &mut Vec<u8>) -> io::Result<()> {
    deflate_into(
        input,
        out,
        DeflateLevel::checked("zlib", level)?,
        Wrapper::Zlib,
    )
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

/// The header and trailer around a deflate stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrapper {
    /// RFC 1952 (CRC-32, size).
    Gzip,
    /// RFC 1950 (Adler-32).
    Zlib,
}

/// One-shot deflate (default level 1, `Compression::fast()`): the whole message is in memory, so
/// one deflate call with `Finish` writes the member (zlib-rs adds header and trailer) straight
/// into `out`, with no stream wrapper in between. flate2 runs on zlib-rs (workspace
/// `Cargo.toml`): on the realistic corpus it compresses in about half miniz_oxide's time at the
/// same ratio (docs/perf.md, "Codecs on the realistic corpus"). flate2 has no way to choose a
/// strategy, so Huffman-only goes to zlib-rs directly (the same library underneath).
fn deflate_into(
    input: &[u8],
    out: &mut Vec<u8>,
    level: DeflateLevel,
    wrapper: Wrapper,
) -> io::Result<()> {
    let level = match level {
        DeflateLevel::Numbered(n) => n,
        DeflateLevel::HuffmanOnly => return huffman_only_into(input, out, wrapper),
    };
    let level = flate2::Compression::new(level);
    let mut enc = match wrapper {
        Wrapper::Gzip => flate2::Compress::new_gzip(level, 15),
        Wrapper::Zlib => flate2::Compress::new(level, true),
    };
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

/// Deflate with Huffman coding only, through zlib-rs's one-shot `compress_slice` into a buffer of
/// the worst-case size (zeroed first: a rarely chosen setting, so the memset is not worth an
/// `unsafe` block over spare capacity).
fn huffman_only_into(input: &[u8], out: &mut Vec<u8>, wrapper: Wrapper) -> io::Result<()> {
    let config = zlib_rs::DeflateConfig {
        // Any level but 0 (which stores, whatever the strategy).
        level: 1,
        strategy: zlib_rs::Strategy::HuffmanOnly,
        // 15-bit window; +16 asks for the gzip wrapper, as in zlib's `deflateInit2`.
        window_bits: match wrapper {
            Wrapper::Gzip => 15 + 16,
            Wrapper::Zlib => 15,
        },
        ..zlib_rs::DeflateConfig::default()
    };
    let start = out.len();
    // compress_bound counts the zlib wrapper (6 bytes); gzip's is 18.
    out.resize(start + zlib_rs::compress_bound(input.len()) + 12, 0);
    let (written, rc) = zlib_rs::compress_slice(&mut out[start..], input, config);
    let written = written.len();
    if rc != zlib_rs::ReturnCode::Ok {
        out.truncate(start);
        return Err(io::Error::other(format!("deflate failed: {rc:?}")));
    }
    out.truncate(start + written);
    Ok(())
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
    fn every_level_round_trips() {
        let data = sample();
        let mut levels = vec![Level::Fast, Level::HuffmanOnly];
        levels.extend((-3..=23).map(Level::Numbered));
        let mut accepted = 0;
        for codec in Compression::ALL {
            for level in levels.iter().copied() {
                let Ok(enc) = Encoder::new(codec, level) else {
                    continue;
                };
                accepted += 1;
                assert_eq!((enc.codec(), enc.level()), (codec, level));
                let mut z = b"head".to_vec();
                enc.compress_into(&data, &mut z).unwrap();
                assert_eq!(&z[..4], b"head");
                let back = codec
                    .decompress(&z[4..], data.len())
                    .unwrap_or_else(|e| panic!("{codec:?} {level:?}: {e}"));
                assert_eq!(back, data, "{codec:?} {level:?}");
            }
        }
        // identity, snappy: Fast; gzip: Fast, Huffman-only, 0-9; zstd: Fast, 1-22.
        assert_eq!(accepted, 1 + 1 + 12 + 23, "levels accepted");
    }

    #[test]
    fn levels_a_codec_lacks_are_refused() {
        for (codec, level) in [
            (Compression::Gzip, Level::Numbered(10)),
            (Compression::Gzip, Level::Numbered(-1)),
            (Compression::Zstd, Level::Numbered(0)),
            (Compression::Zstd, Level::Numbered(23)),
            (Compression::Zstd, Level::HuffmanOnly),
            (Compression::Snappy, Level::Numbered(1)),
            (Compression::Identity, Level::HuffmanOnly),
        ] {
            let err = Encoder::new(codec, level).unwrap_err();
            assert_eq!((err.codec, err.level), (codec.name(), level));
        }
        let err = zlib_into(b"x", Level::Numbered(11), &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn levels_change_the_output() {
        // Text with repeats: string matching pays off, so Huffman-only is larger than level 1,
        // and level 9 no larger; a level that did nothing would leave these equal.
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("span-{} service-{} ", i % 97, i % 13).into_bytes())
            .collect();
        let size = |level| {
            Encoder::new(Compression::Gzip, level)
                .unwrap()
                .compress(&text)
                .unwrap()
                .len()
        };
        let (fast, one, nine, huff, stored) = (
            size(Level::Fast),
            size(Level::Numbered(1)),
            size(Level::Numbered(9)),
            size(Level::HuffmanOnly),
            size(Level::Numbered(0)),
        );
        assert_eq!(fast, one, "Fast is level 1");
        assert!(
            nine < one && one < huff && huff < stored,
            "{nine} {one} {huff} {stored}"
        );
        let zsize = |n| {
            Encoder::new(Compression::Zstd, Level::Numbered(n))
                .unwrap()
                .compress(&text)
                .unwrap()
                .len()
        };
        assert!(zsize(19) < zsize(1), "{} {}", zsize(19), zsize(1));
    }

    #[test]
    fn zlib_streams_decode_at_every_level() {
        use std::io::Read;
        let data = sample();
        let mut levels = vec![Level::Fast, Level::HuffmanOnly];
        levels.extend((0..=9).map(Level::Numbered));
        for level in levels {
            let mut z = b"head".to_vec();
            zlib_into(&data, level, &mut z).unwrap();
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&z[4..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{level:?}");
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
