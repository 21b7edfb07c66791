//! gRPC message framing: the 5-byte length prefix over an h2 stream.
//!
//! Each gRPC message is `flag (1 byte: 0 plain, 1 compressed) | length (4 bytes big-endian) |
//! payload`. h2 hands a receiver DATA frames whose boundaries have nothing to do with message
//! boundaries, so [`Deframer`] buffers chunks and yields whole messages. A message that lies inside
//! one chunk is returned as a slice of it (no copy); only messages spanning chunks are copied
//! once, into a buffer of exactly their length.
//!
//! The length prefix is checked against the maximum message size *before* anything is buffered
//! for it, so a peer cannot make us reserve 4 GiB with five bytes. An incomplete message is copied
//! out of the chunks it arrived in, into a buffer of exactly its size reserved when its prefix is
//! read (the one copy assembling it needs anyway): a stalled stream then holds its own bytes only,
//! not the rest of the receive buffers its chunks were cut from. [`Deframer::held`] says how much
//! that is, reservation included, for the caller to account (tailgate's receivers charge it to
//! their per-core budget of bytes in flight).

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::compression::{Compression, Encoder, DEFAULT_MAX_DECODED_SIZE};
use crate::error::{DecompressError, FrameError, FrameErrorKind};

/// Length of the gRPC message prefix.
pub const PREFIX_LEN: usize = 5;

/// One gRPC message as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Whether the payload is compressed with the stream's `grpc-encoding`.
    pub compressed: bool,
    /// The payload, without the prefix.
    pub payload: Bytes,
    /// Stream offset of the message's prefix, for error reports.
    pub at: u64,
}

impl Message {
    /// Returns the decoded payload: as is when uncompressed, else decompressed with `encoding`
    /// under `max_decoded`.
    pub fn decode(self, encoding: Compression, max_decoded: usize) -> Result<Bytes, MessageError> {
        if !self.compressed {
            return Ok(self.payload);
        }
        if encoding == Compression::Identity {
            return Err(MessageError::Frame(FrameError {
                kind: FrameErrorKind::CompressedWithoutEncoding,
                at: self.at,
            }));
        }
        let out = encoding
            .decompress(&self.payload, max_decoded)
            .map_err(MessageError::Decompress)?;
        Ok(Bytes::from(out))
    }
}

/// Why a gRPC message could not be turned into payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The framing is wrong.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The payload does not decompress within the size limit.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
}

/// Incremental parser of a gRPC message stream, fed arbitrary chunks.
#[derive(Debug)]
pub struct Deframer {
    /// The first buffered bytes when they are an incomplete message, copied out of their chunks;
    /// its capacity is the message's size once the prefix is known. Whenever
    /// [`Deframer::next_message`] returns `Ok(None)`, every buffered byte is here.
    partial: Vec<u8>,
    /// Received bytes not yet returned, after `partial`, in order. Kept as the original chunks so
    /// that a message inside one chunk can be sliced out without copying.
    chunks: VecDeque<Bytes>,
    /// Total length of `partial` and `chunks`.
    buffered: usize,
    /// Stream offset of the first buffered byte.
    offset: u64,
    /// Largest payload accepted (wire length, before decompression).
    max_message_size: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DECODED_SIZE)
    }
}

impl Deframer {
    /// A deframer refusing messages whose wire length exceeds `max_message_size`.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            partial: Vec::new(),
            chunks: VecDeque::new(),
            buffered: 0,
            offset: 0,
            max_message_size,
        }
    }

    /// Appends a chunk of the stream (an h2 DATA frame).
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.buffered += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Memory the deframer holds for bytes not yet returned: the incomplete message's buffer
    /// (its whole reserved size) plus chunks not yet looked at.
    pub fn held(&self) -> usize {
        self.partial.capacity() + (self.buffered - self.partial.len())
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed. After an error the
    /// stream is unusable (the peer broke the framing); the caller resets it.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.partial.is_empty() {
            if let Some(m) = self.whole_in_chunks()? {
                return Ok(Some(m));
            }
            if self.buffered == 0 {
                return Ok(None);
            }
        }
        self.assemble()
    }

    /// Checks a prefix: (compressed, payload length).
    fn parse_prefix(&self, prefix: [u8; PREFIX_LEN]) -> Result<(bool, usize), FrameError> {
        let at = self.offset;
        let compressed = match prefix[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(FrameError {
                    kind: FrameErrorKind::BadFlag,
                    at,
                })
            }
        };
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > self.max_message_size {
            return Err(FrameError {
                kind: FrameErrorKind::Oversize,
                at,
            });
        }
        Ok((compressed, len))
    }

    /// The next message when it lies whole in `chunks` (sliced when inside one chunk); `Ok(None)`
    /// when it is incomplete, leaving the chunks as they are.
    fn whole_in_chunks(&mut self) -> Result<Option<Message>, FrameError> {
        let Some(prefix) = self.peek_prefix() else {
            return Ok(None);
        };
        let at = self.offset;
        let (compressed, len) = self.parse_prefix(prefix)?;
        if self.buffered < PREFIX_LEN + len {
            return Ok(None);
        }
        self.advance(PREFIX_LEN);
        let payload = self.take(len);
        Ok(Some(Message {
            compressed,
            payload,
            at,
        }))
    }

    /// Moves buffered bytes from `chunks` into `partial`: the prefix first, then (the size now
    /// known, and reserved exactly) up to the message's end. Returns the message once whole.
    fn assemble(&mut self) -> Result<Option<Message>, FrameError> {
        if self.partial.len() < PREFIX_LEN {
            self.partial.reserve_exact(PREFIX_LEN - self.partial.len());
            self.move_into_partial(PREFIX_LEN);
            if self.partial.len() < PREFIX_LEN {
                return Ok(None);
            }
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&self.partial[..PREFIX_LEN]);
        let (compressed, len) = self.parse_prefix(prefix)?;
        let total = PREFIX_LEN + len;
        self.partial.reserve_exact(total - self.partial.len());
        self.move_into_partial(total);
        if self.partial.len() < total {
            return Ok(None);
        }
        let whole = Bytes::from(std::mem::take(&mut self.partial));
        let at = self.offset;
        self.buffered -= total;
        self.offset += total as u64;
        Ok(Some(Message {
            compressed,
            payload: whole.slice(PREFIX_LEN..),
            at,
        }))
    }

    /// Copies bytes from the front of `chunks` to the end of `partial` until it holds `upto`.
    fn move_into_partial(&mut self, upto: usize) {
        while self.partial.len() < upto {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let k = front.len().min(upto - self.partial.len());
            self.partial.extend_from_slice(&front[..k]);
            front.advance(k);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }

    /// Checks the stream ended on a message boundary (call at end of stream).
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffered == 0 {
            Ok(())
        } else {
            Err(FrameError {
                kind: FrameErrorKind::Truncated,
                at: self.offset,
            })
        }
    }

    /// Copies the first five buffered bytes out, if there are five.
    fn peek_prefix(&self) -> Option<[u8; PREFIX_LEN]> {
        if self.buffered < PREFIX_LEN {
            return None;
        }
        let mut prefix = [0u8; PREFIX_LEN];
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = chunk.len().min(PREFIX_LEN - filled);
            prefix[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == PREFIX_LEN {
                break;
            }
        }
        Some(prefix)
    }

    /// Drops `n` buffered bytes (`n <= buffered`).
    fn advance(&mut self, mut n: usize) {
        self.buffered -= n;
        self.offset += n as u64;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Removes and returns the next `n` bytes (`n <= buffered`): a slice when they lie in one
    /// chunk, else one copy.
    fn take(&mut self, n: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= n {
                let out = front.split_to(n);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.buffered -= n;
                self.offset += n as u64;
                return out;
            }
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let k = front.len().min(n - out.len());
            out.extend_from_slice(&front[..k]);
            front.advance(k);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        self.buffered -= out.len();
        self.offset += out.len() as u64;
        out.freeze()
    }
}

/// The 5-byte prefix of a message of `len` bytes.
pub fn prefix(compressed: bool, len: u32) -> [u8; PREFIX_LEN] {
    let l = len.to_be_bytes();
    [u8::from(compressed), l[0], l[1], l[2], l[3]]
}

/// Appends one framed message to `out`. Payloads are limited to `u32::MAX` bytes by the format;
/// a longer payload is refused with `None`.
pub fn write_message(out: &mut BytesMut, compressed: bool, payload: &[u8]) -> Option<()> {
    let len = u32::try_from(payload.len()).ok()?;
    out.reserve(PREFIX_LEN + payload.len());
    out.put_slice(&prefix(compressed, len));
    out.put_slice(payload);
    Some(())
}

/// Frames `payload` for sending: compresses it with `encoding` (unless identity; a bare
/// [`Compression`] means its fast level) and prefixes it.
pub fn encode_message(payload: &[u8], encoding: impl Into<Encoder>) -> std::io::Result<Bytes> {
    let encoding = encoding.into();
    let mut out = BytesMut::new();
    let ok = if encoding.codec() == Compression::Identity {
        write_message(&mut out, false, payload)
    } else {
        let z = encoding.compress(payload)?;
        write_message(&mut out, true, &z)
    };
    match ok {
        Some(()) => Ok(out.freeze()),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "message over 4 GiB",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::DecompressErrorKind;

    fn stream(messages: &[(&[u8], bool)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for (m, c) in messages {
            write_message(&mut out, *c, m).unwrap();
        }
        out.to_vec()
    }

    fn drain(d: &mut Deframer) -> Vec<Message> {
        let mut v = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            v.push(m);
        }
        v
    }

    #[test]
    fn every_chunking_yields_the_same_messages() {
        let msgs: [(&[u8], bool); 4] = [
            (b"hello", false),
            (b"", false),
            (b"world!!", true),
            (&[9; 300], false),
        ];
        let wire = stream(&msgs);
        for chunk in 1..=wire.len() {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(Bytes::copy_from_slice(c));
                got.extend(drain(&mut d));
            }
            d.finish().unwrap();
            assert_eq!(got.len(), msgs.len(), "chunk {chunk}");
            for (g, (m, c)) in got.iter().zip(msgs.iter()) {
                assert_eq!((&g.payload[..], g.compressed), (*m, *c));
            }
            assert_eq!(got[1].at, 10);
        }
    }

    #[test]
    fn message_inside_one_chunk_is_not_copied() {
        let wire = Bytes::from(stream(&[(b"abcdef", false)]));
        let mut d = Deframer::default();
        d.push(wire.clone());
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(m.payload.as_ptr(), wire[5..].as_ptr());
    }

    #[test]
    fn an_incomplete_message_is_copied_out_of_its_chunk_into_a_buffer_of_its_size() {
        let wire = Bytes::from(stream(&[(&[7; 1000], false), (b"next", true)]));
        let mut d = Deframer::default();
        // A stalled stream's first 300 bytes: the receive buffer they came in is not kept.
        let first = wire.slice(..300);
        d.push(first.clone());
        assert!(d.next_message().unwrap().is_none());
        drop(first);
        assert!(wire.is_unique(), "the deframer still pins the chunk");
        assert_eq!((d.buffered(), d.held()), (300, 1005));
        // The prefix split across chunks too.
        let mut e = Deframer::default();
        e.push(wire.slice(..3));
        assert!(e.next_message().unwrap().is_none());
        assert_eq!(e.held(), 5);
        e.push(wire.slice(3..10));
        assert!(e.next_message().unwrap().is_none());
        assert_eq!(e.held(), 1005);
        // The rest, with the next message behind it: both come out, the first in one buffer.
        d.push(wire.slice(300..));
        let m = d.next_message().unwrap().unwrap();
        assert_eq!((m.payload.len(), m.at), (1000, 0));
        assert!(m.payload.iter().all(|b| *b == 7));
        let n = d.next_message().unwrap().unwrap();
        assert_eq!(
            (&n.payload[..], n.compressed, n.at),
            (&b"next"[..], true, 1005)
        );
        assert!(d.next_message().unwrap().is_none());
        assert_eq!((d.buffered(), d.held()), (0, 0));
        d.finish().unwrap();
    }

    #[test]
    fn bad_flag_oversize_and_truncation_are_errors() {
        let mut d = Deframer::default();
        d.push(Bytes::from_static(&[2, 0, 0, 0, 0]));
        assert_eq!(d.next_message().unwrap_err().kind, FrameErrorKind::BadFlag);

        let mut d = Deframer::new(10);
        d.push(Bytes::from(stream(&[(b"ok", false)])));
        d.push(Bytes::from_static(&[0, 0, 0, 0, 11]));
        assert!(d.next_message().unwrap().is_some());
        let err = d.next_message().unwrap_err();
        assert_eq!((err.kind, err.at), (FrameErrorKind::Oversize, 7));

        let mut d = Deframer::default();
        d.push(Bytes::from_static(&[0, 0, 0, 0, 3, 1]));
        assert!(d.next_message().unwrap().is_none());
        assert_eq!(d.finish().unwrap_err().kind, FrameErrorKind::Truncated);
    }

    #[test]
    fn decode_handles_compression() {
        let payload = vec![42u8; 5000];
        for c in Compression::ALL {
            let framed = encode_message(&payload, c).unwrap();
            let mut d = Deframer::default();
            d.push(framed);
            let m = d.next_message().unwrap().unwrap();
            assert_eq!(m.compressed, c != Compression::Identity);
            assert_eq!(m.clone().decode(c, 5000).unwrap(), payload);
            if c != Compression::Identity {
                let err = m.decode(c, 4999).unwrap_err();
                assert!(
                    matches!(err, MessageError::Decompress(e) if e.kind == DecompressErrorKind::Oversize)
                );
            }
        }
        let m = Message {
            compressed: true,
            payload: Bytes::new(),
            at: 3,
        };
        assert_eq!(
            m.decode(Compression::Identity, 10).unwrap_err(),
            MessageError::Frame(FrameError {
                kind: FrameErrorKind::CompressedWithoutEncoding,
                at: 3
            })
        );
    }

    #[test]
    fn prefix_layout() {
        assert_eq!(prefix(true, 0x0102_0304), [1, 1, 2, 3, 4]);
    }
}
