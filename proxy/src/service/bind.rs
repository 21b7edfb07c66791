//! The receivers' listen addresses: which listeners every core binds (SO_REUSEPORT) and what
//! serves each.

use std::net::SocketAddr;

use super::error::StartError;
use crate::config::{ComponentId, Config, ReceiverConfig, Signal};
use crate::runtime::listen;

/// One listener a core binds: its ports-file key, address and what serves it.
#[derive(Debug, Clone)]
pub struct Bind {
    /// `receivers::otlp::grpc`.
    pub key: String,
    /// Receiver id.
    pub receiver: ComponentId,
    /// Address to bind (port 0 only on the first core).
    pub addr: SocketAddr,
    /// Which protocol serves it.
    pub protocol: Protocol,
}

/// A receiver's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP.
    Http,
}

impl Protocol {
    /// The collector's name: the `protocols` key and the `transport` label.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

/// Every listener the traces pipelines' receivers configure.
pub fn listen_binds(config: &Config) -> Result<Vec<Bind>, StartError> {
    let mut binds = Vec::new();
    for (id, r) in &config.receivers {
        if !used_by_traces(config, id) {
            continue;
        }
        let ReceiverConfig::Otlp(c) = r;
        let endpoints = [
            (
                Protocol::Grpc,
                c.protocols.grpc.as_ref().map(|g| &g.endpoint),
            ),
            (
                Protocol::Http,
                c.protocols.http.as_ref().map(|h| &h.endpoint),
            ),
        ];
        for (protocol, endpoint) in endpoints {
            let Some(endpoint) = endpoint else {
                continue;
            };
            let key = format!("receivers::{id}::{}", protocol.name());
            let addr = listen::resolve_listen(endpoint).map_err(|e| {
                StartError::component(
                    format!("receivers.{id}.protocols.{}.endpoint", protocol.name()),
                    e,
                )
            })?;
            binds.push(Bind {
                key,
                receiver: id.clone(),
                addr,
                protocol,
            });
        }
    }
    Ok(binds)
}

fn used_by_traces(config: &Config, id: &ComponentId) -> bool {
    config
        .pipelines
        .iter()
        .any(|p| p.id.signal == Signal::Traces && p.receivers.contains(id))
}
