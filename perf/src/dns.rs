//! A DNS server for one name, for tests and scenarios that drive the `dns` resolvers of agents
//! and gateways (`tailgate.dns_server`): a small UDP responder built on hickory-proto, with A
//! records that can change while it runs and an outage switch.
//!
//! It answers A queries for its one name with the current records (rotated by one more on every
//! answer: resolvers must not depend on the order) and any other query with an empty NOERROR
//! answer. Queries that do not parse are ignored, as a real server drops garbage. TTLs are 300 s,
//! longer than any run, so a resolver that caches answers shows in a test.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// The records served and the server's counters.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    /// The name served (lower case, no trailing dot).
    pub name: String,
    /// A records of that name.
    pub ips: Vec<Ipv4Addr>,
    /// Answer nothing at all (an outage: queries time out).
    pub down: bool,
    /// Answers given so far; each answer lists the records rotated by this much.
    pub answers: usize,
}

/// A running server; it stops when the runtime that started it shuts down.
#[derive(Debug)]
pub struct DnsServer {
    /// Where it listens (UDP, 127.0.0.1, port chosen by the system).
    pub addr: SocketAddr,
    /// The records, shared with the responder task.
    pub zone: Arc<Mutex<Zone>>,
    task: tokio::task::JoinHandle<()>,
}

/// Largest query accepted; longer datagrams are truncated and then fail to parse.
const MAX_QUERY: usize = 4096;

impl DnsServer {
    /// Starts serving `name` with `ips` on 127.0.0.1:0.
    pub async fn start(name: &str, ips: &[Ipv4Addr]) -> std::io::Result<DnsServer> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            ips: ips.to_vec(),
            down: false,
            answers: 0,
        }));
        let z = zone.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_QUERY];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let reply = answer(&mut lock(&z), &buf[..n]);
                if let Some(reply) = reply {
                    // A lost reply is a lost datagram: the resolver retries or times out.
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Ok(DnsServer { addr, zone, task })
    }

    /// Replaces the A records (the next answer has them).
    pub fn set(&self, ips: &[Ipv4Addr]) {
        lock(&self.zone).ips = ips.to_vec();
    }

    /// The A records served now.
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        lock(&self.zone).ips.clone()
    }

    /// Starts (`true`) or ends an outage: while down, queries get no answer.
    pub fn set_down(&self, down: bool) {
        lock(&self.zone).down = down;
    }

    /// Answers given so far.
    pub fn answers(&self) -> usize {
        lock(&self.zone).answers
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The zone, also when a panicking holder poisoned the lock (the data is plain values).
fn lock(zone: &Mutex<Zone>) -> MutexGuard<'_, Zone> {
    zone.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The reply to one query: A records for the zone's name, an empty NOERROR answer otherwise;
/// `None` while the zone is down or when the query does not parse.
pub fn answer(zone: &mut Zone, query: &[u8]) -> Option<Vec<u8>> {
    if zone.down {
        return None;
    }
    let req = Message::from_vec(query).ok()?;
    zone.answers += 1;
    let mut ips = zone.ips.clone();
    if !ips.is_empty() {
        let by = zone.answers % ips.len();
        ips.rotate_left(by);
    }
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    resp.add_queries(req.queries().to_vec());
    for q in req.queries() {
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if q.query_type() == RecordType::A && name == zone.name {
            for ip in &ips {
                resp.add_answer(Record::from_rdata(q.name().clone(), 300, RData::A(A(*ip))));
            }
        }
    }
    resp.to_vec().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_vec().unwrap()
    }

    fn zone(ips: &[Ipv4Addr]) -> Zone {
        Zone {
            name: "gateways.test".into(),
            ips: ips.to_vec(),
            ..Zone::default()
        }
    }

    fn a_records(reply: &[u8]) -> Vec<Ipv4Addr> {
        Message::from_vec(reply)
            .unwrap()
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn answers_the_name_with_rotated_records_and_other_names_with_nothing() {
        let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
        let mut z = zone(&ips);
        let first = a_records(&answer(&mut z, &query("Gateways.Test.", RecordType::A)).unwrap());
        let second = a_records(&answer(&mut z, &query("gateways.test", RecordType::A)).unwrap());
        assert_eq!(first, [ips[1], ips[0]]);
        assert_eq!(second, ips);
        let other = answer(&mut z, &query("other.test", RecordType::A)).unwrap();
        assert!(a_records(&other).is_empty());
        let aaaa = answer(&mut z, &query("gateways.test", RecordType::AAAA)).unwrap();
        assert!(a_records(&aaaa).is_empty());
        assert_eq!(Message::from_vec(&aaaa).unwrap().id(), 7);
    }

    #[test]
    fn garbage_and_outages_get_no_answer() {
        let mut z = zone(&[Ipv4Addr::new(127, 0, 0, 2)]);
        assert!(answer(&mut z, &[1, 2, 3]).is_none());
        assert!(answer(&mut z, &[]).is_none());
        assert_eq!(z.answers, 0, "garbage is not counted as an answer");
        z.down = true;
        assert!(answer(&mut z, &query("gateways.test", RecordType::A)).is_none());
    }

    async fn ask(client: &tokio::net::UdpSocket, server: SocketAddr) -> Vec<Ipv4Addr> {
        let q = query("gateways.test", RecordType::A);
        client.send_to(&q, server).await.unwrap();
        let mut buf = vec![0u8; 512];
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        a_records(&buf[..n])
    }

    #[tokio::test]
    async fn serves_over_udp_and_follows_set() {
        let ip = |i| Ipv4Addr::new(127, 0, 0, i);
        let server = DnsServer::start("gateways.test", &[ip(2)]).await.unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&client, server.addr).await, [ip(2)]);
        server.set(&[ip(3)]);
        assert_eq!(ask(&client, server.addr).await, [ip(3)]);
        assert_eq!(server.answers(), 2);
        assert_eq!(server.ips(), [ip(3)]);
    }
}
