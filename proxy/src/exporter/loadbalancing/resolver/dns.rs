//! `resolver.dns`: the A/AAAA records of one name, re-resolved every `interval` on the control
//! thread with hickory-resolver.
//!
//! hickory caches answers for their TTL; a headless Service's records often carry TTLs longer than
//! `interval`, which would make `interval` meaningless. The cache is therefore capped at zero
//! seconds (positive and negative), so every tick asks the server. A failed or timed-out lookup,
//! and an answer without records, keep the last good list (counted as a failed resolution).

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use tailgate_routing::Member;

use crate::exporter::loadbalancing::config::DnsResolver;
use crate::exporter::loadbalancing::routes::Publisher;

/// One dns resolver's loop state.
pub struct DnsTask {
    hostname: String,
    port: u16,
    interval: Duration,
    timeout: Duration,
    resolver: TokioResolver,
    publisher: Publisher,
}

impl DnsTask {
    /// A resolver for `config`, asking `server` when given, else the system's name servers.
    pub fn new(
        config: &DnsResolver,
        server: Option<SocketAddr>,
        publisher: Publisher,
    ) -> Result<Self, String> {
        let port = config.port()?;
        let timeout = config.timeout.0;
        let (resolver_config, mut opts) = match server {
            Some(addr) => (
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                ResolverOpts::default(),
            ),
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
        };
        cap_cache(&mut opts, timeout);
        let resolver =
            TokioResolver::builder_with_config(resolver_config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Ok(DnsTask {
            hostname: config.hostname.clone(),
            port,
            interval: config.interval.0,
            timeout,
            resolver,
            publisher,
        })
    }

    /// Resolves now and every `interval` after; reports on `ready` after the first attempt.
    pub async fn run(mut self, ready: mpsc::Sender<()>) {
        let mut ready = Some(ready);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.resolve_once().await;
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
    }

    async fn resolve_once(&mut self) {
        let lookup = tokio::time::timeout(
            self.timeout,
            self.resolver.lookup_ip(self.hostname.as_str()),
        )
        .await;
        match lookup {
            Ok(Ok(answer)) => {
                let members: Vec<Member> = answer
                    .iter()
                    .map(|ip| Member::unordered(endpoint(ip, self.port)))
                    .collect();
                if members.is_empty() {
                    self.publisher
                        .failed(&format!("{}: no A/AAAA records", self.hostname));
                } else {
                    let _ = self.publisher.resolved(members);
                }
            }
            Ok(Err(e)) => self.publisher.failed(&format!("{}: {e}", self.hostname)),
            Err(_) => self.publisher.failed(&format!(
                "{}: timed out after {:?}",
                self.hostname, self.timeout
            )),
        }
    }
}

/// Caps hickory's answer cache at zero seconds so `interval` decides how fresh the list is; one
/// attempt per tick within `timeout`; A and AAAA both (as Go's `LookupIPAddr`).
fn cap_cache(opts: &mut ResolverOpts, timeout: Duration) {
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
}

/// `ip:port`, IPv6 in brackets: the collector's spelling (what its ring hashes).
fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_spelled_as_the_collector_does() {
        assert_eq!(
            endpoint("10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])), 4317),
            "10.0.0.1:4317"
        );
        assert_eq!(
            endpoint(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 4317),
            "[::1]:4317"
        );
    }

    #[test]
    fn the_cache_cannot_outlive_the_interval() {
        let mut opts = ResolverOpts::default();
        cap_cache(&mut opts, Duration::from_secs(1));
        assert_eq!(opts.positive_max_ttl, Some(Duration::ZERO));
        assert_eq!(opts.negative_max_ttl, Some(Duration::ZERO));
        assert_eq!(opts.attempts, 1);
    }
}
