//! The one way exporters open a connection: resolve the host, connect TCP (no Nagle), and run the
//! TLS handshake when the exporter has client TLS. The `otlp` client, the `otlphttp` client and the
//! loadbalancing backends (through `otlp`) all dial here.

use std::net::{SocketAddr, ToSocketAddrs};

use glommio::net::TcpStream;

use crate::exporter::otlp::status::ExportError;
use crate::runtime::io::BoxIo;
use crate::tls::ClientSetup;

/// Connects to `host:port`, with TLS when `tls` is given; returns the stream and the address
/// dialled. Every failure is a transport error (retryable).
pub async fn dial(
    host: &str,
    port: u16,
    tls: Option<&ClientSetup>,
) -> Result<(BoxIo, SocketAddr), ExportError> {
    let addr = resolve(host, port)?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| ExportError::transport(format!("connect {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
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

fn resolve(host: &str, port: u16) -> Result<SocketAddr, ExportError> {
    // Names are resolved on the core (blocking, but only when dialling); see docs/proxy.md.
    (host, port)
        .to_socket_addrs()
        .map_err(|e| ExportError::transport(format!("resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| ExportError::transport(format!("resolve {host}: no addresses")))
}
