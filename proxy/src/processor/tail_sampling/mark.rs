//! The receiving side of gateway-to-gateway data (docs/membership-design.md §5): a request that
//! carries the `tailgate-hop` header is checked before its body is read (the sender is a member,
//! the mark parses) and then enters only the `tail_sampling` stage that set `membership`, after
//! the processors that precede it (the sending gateway already ran them). Marked data is never
//! taken for agent data: that is what rules out forwarding loops and spoofed re-forwarding.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use tailgate_routing::membership::Reason;

use super::peers::Peers;
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
    refused: [Local; 4],
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
        let member = peer.is_some_and(|p| self.peers.is_member_address(p.ip()));
        if !member {
            let who = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.ip().to_string());
            return Err((
                MarkRefusal::NotMember,
                format!("gateway-to-gateway data from {who}, which is not a member"),
            ));
        }
        let hop = parse(value)?;
        if !self.peers.view.is_member(&hop.from) {
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

/// Parses a `tailgate-hop` value: `v=1;k=fwd|handover;r=not_owner|claim;f=<endpoint>;i=<16 hex>;
/// t=<16 hex>;b=<core>.<seq>`. Unknown keys are ignored (a newer peer may add some).
pub fn parse(value: &[u8]) -> Result<Hop, (MarkRefusal, String)> {
    let bad = |what: &str| {
        (
            MarkRefusal::Malformed,
            format!("malformed tailgate-hop: {what}"),
        )
    };
    if value.len() > MAX_HEADER {
        return Err(bad("longer than 512 bytes"));
    }
    let text = std::str::from_utf8(value).map_err(|_| bad("not ASCII"))?;
    let (mut v, mut k, mut r, mut f, mut i, mut t, mut b) =
        (None, None, None, None, None, None, None);
    for field in text.split(';') {
        let (key, val) = field
            .split_once('=')
            .ok_or_else(|| bad("a field without '='"))?;
        let slot = match key {
            "v" => &mut v,
            "k" => &mut k,
            "r" => &mut r,
            "f" => &mut f,
            "i" => &mut i,
            "t" => &mut t,
            "b" => &mut b,
            _ => continue,
        };
        if slot.replace(val).is_some() {
            return Err(bad(&format!("key {key} twice")));
        }
    }
    if v != Some("1") {
        return Err((
            MarkRefusal::BadVersion,
            format!("tailgate-hop version {:?} is not 1", v.unwrap_or("")),
        ));
    }
    let kind = match (k, r) {
        (Some("fwd"), Some("not_owner")) => HopKind::Forward(Reason::NotOwner),
        (Some("fwd"), Some("claim")) => HopKind::Forward(Reason::Claim),
        (Some("handover"), None) => HopKind::HandOver,
        _ => return Err(bad("k and r must be fwd with not_owner|claim, or handover")),
    };
    let from = f
        .filter(|f| !f.is_empty() && f.len() <= 253)
        .ok_or_else(|| bad("f (the sender) missing or longer than 253 bytes"))?;
    let hex = |x: Option<&str>, key: &str| {
        x.filter(|x| x.len() == 16)
            .and_then(|x| u64::from_str_radix(x, 16).ok())
            .ok_or_else(|| bad(&format!("{key} must be 16 hex digits")))
    };
    let incarnation = hex(i, "i")?;
    let table = hex(t, "t")?;
    let batch = b
        .and_then(|b| b.split_once('.'))
        .and_then(|(c, s)| Some((c.parse::<u16>().ok()?, s.parse::<u64>().ok()?)))
        .ok_or_else(|| bad("b must be <core>.<seq>"))?;
    Ok(Hop {
        kind,
        from: Arc::from(from),
        incarnation,
        table,
        batch,
    })
}

/// The longest `tailgate-hop` value accepted (a 253-byte host name and every field fit).
const MAX_HEADER: usize = 512;

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

    #[test]
    fn hostile_values_are_refused_with_a_reason() {
        let ok = "v=1;k=fwd;r=not_owner;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1";
        assert!(parse(ok.as_bytes()).is_ok());
        let cases = [
            (
                "v=2;k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::BadVersion,
            ),
            (
                "k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::BadVersion,
            ),
            (
                "v=1;k=fwd;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=handover;r=claim;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;v=1;k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=handover;f=a:1;i=1;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=handover;f=a:1;i=0000000000000001;t=0000000000000002;b=70000.1",
                MarkRefusal::Malformed,
            ),
            (
                "v=1;k=handover;f=;i=0000000000000001;t=0000000000000002;b=0.1",
                MarkRefusal::Malformed,
            ),
            ("v=1;garbage", MarkRefusal::Malformed),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value.as_bytes()).unwrap_err().0, want, "{value}");
        }
        let long = format!("{ok};x={}", "a".repeat(600));
        assert_eq!(
            parse(long.as_bytes()).unwrap_err().0,
            MarkRefusal::Malformed
        );
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err().0, MarkRefusal::Malformed);
    }
}
