//! Listen addresses: resolving endpoints, sharing one OS-chosen port across cores, the ports file.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use crate::config::common::split_host_port;

/// Resolves a `host:port` endpoint to the address to bind. `localhost` binds IPv4 loopback, as
/// Go's listener does on hosts where it resolves first.
pub fn resolve_listen(endpoint: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(endpoint)?;
    let host = if host.is_empty() {
        "0.0.0.0".to_owned()
    } else {
        host
    };
    let mut addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve listen address {endpoint:?}: {e}"))?
        .collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| format!("listen address {endpoint:?} resolves to nothing"))
}

/// Writes `{"key": "ip:port", ...}` atomically (temp file + rename) so a reader never sees half.
pub fn write_ports_file(path: &Path, ports: &BTreeMap<String, SocketAddr>) -> std::io::Result<()> {
    let map: BTreeMap<&str, String> = ports
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    let text = serde_json::to_string_pretty(&map).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolves_loopback_and_empty_host() {
        assert_eq!(
            resolve_listen("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(resolve_listen(":4317").unwrap().to_string(), "0.0.0.0:4317");
        assert!(resolve_listen("localhost:1").unwrap().ip().is_loopback());
        assert!(resolve_listen("nope").is_err());
    }
}
