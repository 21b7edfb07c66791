//! A connection as a trait object, so plaintext and TLS streams share one code path, and the
//! adapter h2 and hyper (tokio I/O traits) read it through.
//!
//! [`Unzeroed`] replaces `tokio_util::compat` on the receive path: compat initialises the whole
//! spare capacity of the reader's buffer before every read, and h2 reserves a whole DATA frame
//! (up to 1 MiB) as soon as its header is in, so a 200 KB request body was zeroed two to three
//! times over while it arrived. `Unzeroed` lets the connection write into that memory as it is,
//! which is the second `unsafe` in `proxy` (the first is mimalloc's FFI in `telemetry::process`).
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// Anything the receivers and exporters can speak h2 or HTTP/1.1 over.
pub trait Io: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A boxed connection (plain glommio TCP or rustls over it).
pub type BoxIo = Box<dyn Io>;

/// tokio's `AsyncRead` + `AsyncWrite` over a futures-io connection whose reads only *write* into
/// the buffer they are given (recv(2) for glommio's `TcpStream`, a copy out of the plaintext
/// buffer for rustls), so the buffer need not be zeroed first.
pub struct Unzeroed<T> {
    inner: T,
}

impl<T> Unzeroed<T> {
    /// Wraps `inner`; its `poll_read` must never read the slice it is given, only write to it
    /// (true of glommio's `TcpStream`, futures-rustls streams and the receivers' `Watched`).
    pub fn new(inner: T) -> Unzeroed<T> {
        Unzeroed { inner }
    }
}

impl<T: AsyncRead + Unpin> tokio::io::AsyncRead for Unzeroed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `unfilled_mut` gives the spare capacity, possibly uninitialised; nothing here
        // de-initialises it. It is viewed as `[u8]` only for the inner reader, which (per `new`'s
        // contract) writes into it and never reads it, as tokio's own `PollEvented` does for mio.
        let unfilled = unsafe { &mut *(buf.unfilled_mut() as *mut [MaybeUninit<u8>] as *mut [u8]) };
        let room = unfilled.len();
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, unfilled))?;
        // A reader claiming more than it was given would otherwise make `assume_init` lie.
        let n = n.min(room);
        // SAFETY: the reader wrote the first `n` bytes of the unfilled part.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> tokio::io::AsyncWrite for Unzeroed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A reader that returns its bytes in pieces and, when asked, claims more than it got room for.
    struct Pieces {
        data: Vec<u8>,
        piece: usize,
        overclaim: bool,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.piece.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data.drain(..n);
            Poll::Ready(Ok(if self.overclaim && n > 0 {
                buf.len() + 1
            } else {
                n
            }))
        }
    }

    #[test]
    fn reads_everything_into_uninitialised_buffers() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut r = Unzeroed::new(Pieces {
            data: data.clone(),
            piece: 4093,
            overclaim: false,
        });
        let mut got = bytes::BytesMut::with_capacity(10);
        futures_lite::future::block_on(async {
            while r.read_buf(&mut got).await.unwrap() > 0 {
                got.reserve(65_536);
            }
        });
        assert_eq!(&got[..], &data[..]);
    }

    #[test]
    fn a_reader_claiming_too_much_fills_no_more_than_it_was_given() {
        let mut r = Unzeroed::new(Pieces {
            data: vec![1; 10],
            piece: 4,
            overclaim: true,
        });
        let mut buf = [0u8; 4];
        let n = futures_lite::future::block_on(r.read(&mut buf)).unwrap();
        assert_eq!(n, 4);
    }
}
