//! The one way exporters open a connection: resolve the host off the core ([`Resolver`]),
//! connect TCP (no Nagle, `TCP_USER_TIMEOUT`, TCP keepalive), and run the TLS handshake when the exporter has
//! client TLS. The `otlp` client, the `otlphttp` client and the loadbalancing backends (through
//! `otlp`) all dial here.

use std::net::SocketAddr;
use std::time::Duration;

use glommio::net::TcpStream;

use crate::exporter::otlp::status::ExportError;
use crate::exporter::resolve::Resolver;
use crate::runtime::io::BoxIo;
use crate::tls::ClientSetup;

/// `TCP_USER_TIMEOUT` of an exporter without a keepalive timeout: how long sent data may stay
/// unacknowledged before the kernel drops the connection. Linux's default is the retransmission
/// limit (`tcp_retries2`, about 15 minutes), during which a blackholed backend fails every export.
pub const DEFAULT_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// TCP keepalive of exporter sockets, as Go's `net.Dialer` sets it for the collector's exporters
/// (grpc-go and net/http dial through it): probes after 15 s idle, every 15 s, 9 of them. It ends
/// an idle connection to a host that vanished; a peer whose kernel still answers needs the h2
/// keepalive or the export timeouts (see `otlp::client`).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_PROBES: u32 = 9;

/// How one exporter dials: where its names are resolved and the `TCP_USER_TIMEOUT` of its sockets.
#[derive(Clone)]
pub struct Dialer {
    resolver: Resolver,
    /// Set on every socket; grpc-go sets the keepalive `timeout` when keepalive is on.
    user_timeout: Duration,
}

impl Dialer {
    /// A dialer over the process's resolver thread.
    pub fn new(user_timeout: Duration) -> Dialer {
        Dialer::with_resolver(Resolver::system(), user_timeout)
    }

    /// A dialer over `resolver` (tests give a slow or fake one).
    pub fn with_resolver(resolver: Resolver, user_timeout: Duration) -> Dialer {
        Dialer {
            resolver,
            user_timeout,
        }
    }

    /// Connects to `host:port`, with TLS when `tls` is given; returns the stream and the address
    /// dialled. Every failure is a transport error (retryable).
    pub async fn dial(
        &self,
        host: &str,
        port: u16,
        tls: Option<&ClientSetup>,
    ) -> Result<(BoxIo, SocketAddr), ExportError> {
        let addr = self
            .resolver
            .resolve(host, port)
            .await
            .map_err(|e| ExportError::transport(e.to_string()))?;
        let tcp = self.connect(addr).await?;
        let io: BoxIo = match tls {
            None => Box::new(tcp),
            Some((config, name)) => Box::new(
                futures_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        ExportError::transport(format!("TLS handshake with {addr} ({name:?}): {e}"))
                    })?,
            ),
        };
        Ok((io, addr))
    }

    /// A TCP connection to `addr` with the exporter's socket options.
    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, ExportError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ExportError::transport(format!("connect {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let socket = socket2_glommio::SockRef::from(&tcp);
        let keepalive = socket2_glommio::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE)
            .with_interval(TCP_KEEPALIVE)
            .with_retries(TCP_KEEPALIVE_PROBES);
        let set = socket
            .set_tcp_user_timeout(Some(self.user_timeout))
            .and_then(|()| socket.set_tcp_keepalive(&keepalive));
        if let Err(e) = set {
            // Only an old kernel refuses these; the connection still works, it is just slower
            // to give up on a blackholed peer.
            tracing::debug!("socket options of the connection to {addr}: {e}");
        }
        Ok(tcp)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::runtime::on_test_executor;

    #[test]
    fn exporter_sockets_carry_tcp_user_timeout_and_keepalive() {
        // The kernel completes the handshake from the listen backlog: no accept needed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        on_test_executor(async move {
            let dialer = Dialer::new(Duration::from_millis(7_500));
            let tcp = dialer.connect(addr).await.unwrap();
            let socket = socket2_glommio::SockRef::from(&tcp);
            assert_eq!(
                socket.tcp_user_timeout().unwrap(),
                Some(Duration::from_millis(7_500))
            );
            assert!(socket.nodelay().unwrap());
            assert!(socket.keepalive().unwrap());
            assert_eq!(socket.keepalive_time().unwrap(), TCP_KEEPALIVE);
            assert_eq!(socket.keepalive_interval().unwrap(), TCP_KEEPALIVE);
            assert_eq!(socket.keepalive_retries().unwrap(), TCP_KEEPALIVE_PROBES);
        });
    }

    #[test]
    fn names_are_dialled_through_the_resolver() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        on_test_executor(async move {
            let (_io, addr) = Dialer::new(DEFAULT_USER_TIMEOUT)
                .dial("localhost", port, None)
                .await
                .unwrap();
            assert!(addr.ip().is_loopback(), "{addr}");
        });
    }
}
