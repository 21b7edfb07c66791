//! A connection as a trait object, so plaintext and TLS streams share one code path.

use futures_lite::{AsyncRead, AsyncWrite};

/// Anything the receivers and exporters can speak h2 or HTTP/1.1 over.
pub trait Io: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A boxed connection (plain glommio TCP or rustls over it).
pub type BoxIo = Box<dyn Io>;
