//! The receiving side of gateway-to-gateway data (docs/membership-design.md §5): a request that
//! carries the `tailgate-hop` header is checked before its body is read (the sender is a member,
//! the mark parses) and then enters only the `tail_sampling` stage that set `membership`, after
//! the processors that precede it (the sending gateway already ran them). Marked data is never
//! taken for agent data: that is what rules out forwarding loops and spoofed re-forwarding.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tailgate_proto::error::HopError;
use tailgate_proto::hop::{HopHeader, Kind as WireKind, Reason as WireReason};
use tailgate_routing::membership::{Reason, View};

use super::peers::{is_member_address, Peers};
use crate::config::common::split_host_port;
use crate::pipeline::{Consumer, Hop, HopKind};
use crate::telemetry::metrics::{Kind, Local, Registry};

/// Why a marked request was refused (the `reason` label of
/// `tailgate_membership_marks_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkRefusal {
    /// The peer address is not a member's.
    NotMember,
    /// A mark version this gateway does not speak.
    BadVersion,
    /// The header does not parse.
    Malformed,
    /// This receiver feeds no `tail_sampling` with `membership`.
    NoPipeline,
}

impl MarkRefusal {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            MarkRefusal::NotMember => "not_member",
            MarkRefusal::BadVersion => "bad_version",
            MarkRefusal::Malformed => "malformed",
            MarkRefusal::NoPipeline => "no_pipeline",
        }
    }

    /// Whether the sender may succeed by retrying: a new gateway whose peers have not listed it
    /// yet, or a peer of a newer version during a rolling update.
    pub fn retryable(self) -> bool {
        matches!(self, MarkRefusal::NotMember | MarkRefusal::BadVersion)
    }
}

/// Where a receiver on one core sends marked data, behind the member gate.
pub struct MarkedEntry {
    /// The `tail_sampling` stage that set `membership` (behind the receivers' shutdown gate).
    pub next: Rc<dyn Consumer>,
    peers: Arc<Peers>,
    /// The view the gate last checked against and its members' addresses; rebuilt when the
    /// resolver publishes a new member table.
    members: RefCell<Members>,
    refused: [Local; 4],
}

/// Who may send marked data: the current members, and members removed less than `grace` ago (a
/// gateway the resolver dropped still forwards what lagging agents send it, and the spans and
/// claims it holds must still reach their owners). Rebuilt when the member table changes.
struct Members {
    view: View,
    addresses: BTreeSet<IpAddr>,
    /// Removed members still accepted, as of the last rebuild.
    recent: Vec<Arc<str>>,
}

impl Members {
    fn new(peers: &Peers, now: Instant) -> Self {
        let view = peers.view();
        let recent = peers.recently_listed(&view, now);
        let mut addresses = peers.member_addresses(&view);
        addresses.extend(recent.iter().filter_map(|e| {
            split_host_port(e)
                .ok()
                .and_then(|(h, _)| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        }));
        Members {
            view,
            addresses,
            recent,
        }
    }

    fn allows_sender(&self, peers: &Peers, endpoint: &str, now: Instant) -> bool {
        self.view.is_member(endpoint)
            || (self.recent.iter().any(|e| &**e == endpoint)
                && peers
                    .recently_listed(&self.view, now)
                    .iter()
                    .any(|e| &**e == endpoint))
    }
}

const REFUSALS: [MarkRefusal; 4] = [
    MarkRefusal::NotMember,
    MarkRefusal::BadVersion,
    MarkRefusal::Malformed,
    MarkRefusal::NoPipeline,
];

impl MarkedEntry {
    /// The entry into `next` on `core`, with its refusal counters.
    pub fn new(
        next: Rc<dyn Consumer>,
        peers: Arc<Peers>,
        registry: &Registry,
        core: usize,
    ) -> Self {
        let processor = peers.processor.to_string();
        let refused = REFUSALS.map(|r| {
            registry
                .register(
                    "tailgate_membership_marks_refused_total",
                    "Marked (gateway-to-gateway) requests refused before their body was read, by reason (tailgate).",
                    Kind::Counter,
                    &[("processor", processor.as_str()), ("reason", r.label())],
                )
                .local(core)
        });
        MarkedEntry {
            next,
            members: RefCell::new(Members::new(&peers, Instant::now())),
            peers,
            refused,
        }
    }

    /// Checks a request's `tailgate-hop` value from `peer`: the mark, or why it is refused
    /// (counted here).
    pub fn admit(
        &self,
        value: &[u8],
        peer: Option<SocketAddr>,
    ) -> Result<Hop, (MarkRefusal, String)> {
        let checked = self.check(value, peer);
        if let Err((r, _)) = &checked {
            let i = REFUSALS.iter().position(|x| x == r).unwrap_or(0);
            if let Some(c) = self.refused.get(i) {
                c.add(1);
            }
        }
        checked
    }

    fn check(&self, value: &[u8], peer: Option<SocketAddr>) -> Result<Hop, (MarkRefusal, String)> {
        let now = Instant::now();
        let generation = self.peers.generation();
        if self.members.borrow().view.generation() != generation {
            *self.members.borrow_mut() = Members::new(&self.peers, now);
        }
        let members = self.members.borrow();
        let member = peer.is_some_and(|p| is_member_address(&members.addresses, p.ip()));
        if !member {
            let who = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.ip().to_string());
            return Err((
                MarkRefusal::NotMember,
                format!("gateway-to-gateway data from {who}, which is not a member"),
            ));
        }
        let hop = parse(value)?;
        if !members.allows_sender(&self.peers, &hop.from, now) {
            return Err((
                MarkRefusal::NotMember,
                format!(
                    "gateway-to-gateway data from {}, which is not a member",
                    hop.from
                ),
            ));
        }
        Ok(hop)
    }
}

/// Parses a `tailgate-hop` value (`tailgate_proto::hop`) into a mark: span data (`fwd`,
/// `handover`) or a control message (`claim`, `redirect`, `decisions`, `drain`, `done`).
pub fn parse(value: &[u8]) -> Result<Hop, (MarkRefusal, String)> {
    let malformed = |e: String| {
        (
            MarkRefusal::Malformed,
            format!("malformed tailgate-hop: {e}"),
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| malformed("not ASCII".to_owned()))?;
    let header = HopHeader::parse(text).map_err(|e| match e {
        HopError::UnsupportedVersion { .. } => (MarkRefusal::BadVersion, e.to_string()),
        e => malformed(e.to_string()),
    })?;
    let kind = match (header.kind, header.reason) {
        (WireKind::Fwd, Some(WireReason::NotOwner)) => HopKind::Forward(Reason::NotOwner),
        (WireKind::Fwd, Some(WireReason::Claim)) => HopKind::Forward(Reason::Claim),
        (WireKind::HandOver, _) => HopKind::HandOver,
        (WireKind::Fwd, None) => {
            return Err(malformed("k=fwd without a reason".to_owned()));
        }
        (
            k @ (WireKind::Claim
            | WireKind::Redirect
            | WireKind::Decisions
            | WireKind::Drain
            | WireKind::Done),
            _,
        ) => HopKind::Control(k),
    };
    // parse() guarantees a batch for span kinds and none for control kinds.
    let batch = match header.batch {
        Some((core, _)) if core >= MAX_SENDER_CORES => {
            // Dedup keeps a window per sender core: a hostile core number must not size it.
            return Err(malformed(format!(
                "b: sender core {core} above {}",
                MAX_SENDER_CORES - 1
            )));
        }
        Some(b) => b,
        None if header.kind.carries_spans() => return Err(malformed("no batch ID".to_owned())),
        None => (0, 0),
    };
    Ok(Hop {
        kind,
        from: Arc::from(header.from),
        incarnation: header.incarnation,
        table: header.table,
        batch,
    })
}

/// The most cores a sending gateway may have: the bound on its batch IDs' core field, so the
/// dedup windows a member can make this gateway keep stay small (tailgate runs a core per CPU).
pub const MAX_SENDER_CORES: u16 = 1024;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pipeline::hop_header;

    #[test]
    fn what_the_forwarder_writes_parses_back() {
        for kind in [
            HopKind::Forward(Reason::NotOwner),
            HopKind::Forward(Reason::Claim),
            HopKind::HandOver,
        ] {
            let hop = Hop {
                kind,
                from: Arc::from("gw-1.gw.obs.svc:4317"),
                incarnation: u64::MAX - 3,
                table: 0x0123_4567_89ab_cdef,
                batch: (7, 1 << 40),
            };
            let header = hop_header(&hop).unwrap();
            assert_eq!(parse(header.as_bytes()).unwrap(), hop);
        }
    }

    /// The header rules themselves are `tailgate_proto::hop`'s (tested and fuzzed there); here:
    /// how its errors map to refusals, and that control kinds are not span data.
    #[test]
    fn refusals_say_whether_a_retry_can_help() {
        let ok = "v=1;k=fwd;r=not_owner;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1";
        assert!(parse(ok.as_bytes()).is_ok());
        let cases = [
            (
                "v=2;k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::BadVersion,
            ),
            (
                "k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=fwd;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=drain;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=1024.1",
                MarkRefusal::Malformed,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value.as_bytes()).unwrap_err().0, want, "{value}");
        }
        assert!(MarkRefusal::BadVersion.retryable() && MarkRefusal::NotMember.retryable());
        assert!(!MarkRefusal::Malformed.retryable());
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err().0, MarkRefusal::Malformed);
        let claim = "v=1;k=claim;f=a:1;i=0000000000000001;t=0000000000000002";
        let hop = parse(claim.as_bytes()).unwrap();
        assert_eq!(hop.kind, HopKind::Control(WireKind::Claim));
        assert_eq!(hop_header(&hop).unwrap().to_str().unwrap(), claim);
        for (k, kind) in [("drain", WireKind::Drain), ("done", WireKind::Done)] {
            let value = format!("v=1;k={k};f=a:1;i=0000000000000001;t=0000000000000002");
            assert_eq!(
                parse(value.as_bytes()).unwrap().kind,
                HopKind::Control(kind)
            );
        }
    }
}
