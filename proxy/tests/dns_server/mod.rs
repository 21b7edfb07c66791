//! A DNS server for one name, for tests of the dns resolvers (a small UDP responder built on
//! hickory-proto): A records that can change and an outage switch.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

#[derive(Default)]
pub struct Zone {
    /// The name served (lower case, no trailing dot).
    pub name: String,
    /// A records of that name (TTL 300 s: longer than any test, so a cache would show).
    pub ips: Vec<Ipv4Addr>,
    /// Answer nothing at all (an outage: queries time out).
    pub down: bool,
    /// Answers given; each answer lists the records rotated by this much (resolvers see no order).
    pub answers: usize,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    pub zone: Arc<Mutex<Zone>>,
}

impl DnsServer {
    pub async fn start(name: &str, ips: &[Ipv4Addr]) -> DnsServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            ips: ips.to_vec(),
            down: false,
            answers: 0,
        }));
        let z = zone.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Some(reply) = answer(&mut z.lock().unwrap(), &buf[..n]) else {
                    continue;
                };
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        DnsServer { addr, zone }
    }

    pub fn set(&self, ips: &[Ipv4Addr]) {
        self.zone.lock().unwrap().ips = ips.to_vec();
    }

    pub fn set_down(&self, down: bool) {
        self.zone.lock().unwrap().down = down;
    }
}

/// The reply to one query: A records for the zone's name, an empty NOERROR answer otherwise.
fn answer(zone: &mut Zone, query: &[u8]) -> Option<Vec<u8>> {
    if zone.down {
        return None;
    }
    zone.answers += 1;
    let mut ips = zone.ips.clone();
    if !ips.is_empty() {
        let by = zone.answers % ips.len();
        ips.rotate_left(by);
    }
    let req = Message::from_vec(query).ok()?;
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
