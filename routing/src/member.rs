//! Gateway members: the endpoint string as the resolver produced it, plus an optional ordinal.
//!
//! The endpoint string is the identity of a member. It is kept exactly as the collector would see it
//! (`10.0.0.3:4317`, `[fd00::1]:4317`, `gateway-2.gateway-headless:4317`, or a bare host without a port)
//! because the `collector` mode hashes those bytes and must agree with agents running the collector.

/// The largest ordinal a member may carry. Jump hashing keeps one table entry per ordinal up to the
/// highest one present, so this bounds that table (and the memory an odd pod name can make us allocate).
pub const MAX_ORDINAL: u32 = 65_535;

/// One routing destination (a gateway).
///
/// Two members are the same member when both the endpoint and the ordinal are equal; a
/// [`RoutingTable`](crate::RoutingTable) treats its input as a set of members.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The endpoint exactly as resolved: what the exporter dials and what the collector ring hashes.
    endpoint: Box<str>,
    /// Stable position for jump hashing: a StatefulSet pod ordinal or a static-list position.
    /// `None` for unordered addresses (DNS A records), which can only use the slot or collector modes.
    ordinal: Option<u32>,
}

impl Member {
    /// A member whose ordinal, if any, is parsed from a StatefulSet-style name (`gateway-2...`);
    /// see [`parse_ordinal`].
    pub fn new(endpoint: impl Into<Box<str>>) -> Self {
        let endpoint = endpoint.into();
        let ordinal = parse_ordinal(&endpoint);
        Self { endpoint, ordinal }
    }

    /// A member with an explicit ordinal, e.g. its position in a static list.
    pub fn with_ordinal(endpoint: impl Into<Box<str>>, ordinal: u32) -> Self {
        Self {
            endpoint: endpoint.into(),
            ordinal: Some(ordinal),
        }
    }

    /// A member with no ordinal, whatever its name looks like.
    pub fn unordered(endpoint: impl Into<Box<str>>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ordinal: None,
        }
    }

    /// Members of a static resolver list (`resolver.static.hostnames`).
    ///
    /// If every hostname carries a StatefulSet ordinal and no two share one, those ordinals are used, so
    /// the order of the list does not matter. Otherwise each member's ordinal is its position in the
    /// list: the list is then ordered, must be the same on every agent, and grows by appending.
    pub fn static_list<S: AsRef<str>>(hostnames: &[S]) -> Vec<Member> {
        let parsed: Vec<Member> = hostnames.iter().map(|h| Member::new(h.as_ref())).collect();
        let mut ordinals: Vec<u32> = parsed.iter().filter_map(Member::ordinal).collect();
        ordinals.sort_unstable();
        ordinals.dedup();
        if ordinals.len() == parsed.len() {
            return parsed;
        }
        hostnames
            .iter()
            .zip(0u32..)
            .map(|(h, position)| Member::with_ordinal(h.as_ref(), position))
            .collect()
    }

    /// The endpoint string as resolved.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The stable ordinal used by jump hashing, if the member has one.
    pub fn ordinal(&self) -> Option<u32> {
        self.ordinal
    }
}

/// Parses a StatefulSet pod ordinal from an endpoint: the first DNS label of the host must end in
/// `-N` with N a decimal number without leading zeros, at most [`MAX_ORDINAL`].
///
/// `gateway-2.gateway-headless:4317` → 2, `gateway-10` → 10; IP addresses, `[v6]:port`, `gateway`,
/// `gateway-02` and `gateway-` → `None`.
pub fn parse_ordinal(endpoint: &str) -> Option<u32> {
    if endpoint.starts_with('[') {
        return None; // a bracketed IPv6 literal has no name
    }
    let host = endpoint.split(':').next().unwrap_or(endpoint);
    let label = host.split('.').next().unwrap_or(host);
    let (name, digits) = label.rsplit_once('-')?;
    let well_formed = !name.is_empty()
        && !digits.is_empty()
        && digits.len() <= 5
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return None;
    }
    digits.parse::<u32>().ok().filter(|&n| n <= MAX_ORDINAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_the_first_label() {
        assert_eq!(parse_ordinal("gateway-2.gateway-headless:4317"), Some(2));
        assert_eq!(parse_ordinal("gateway-10"), Some(10));
        assert_eq!(parse_ordinal("my-gw-0.svc.cluster.local:4317"), Some(0));
        assert_eq!(parse_ordinal("gateway-65535:4317"), Some(65_535));
    }

    #[test]
    fn addresses_and_odd_names_have_no_ordinal() {
        for endpoint in [
            "10.0.0.3:4317",
            "10.0.0.3",
            "[fd00::1]:4317",
            "gateway:4317",
            "gateway-02:4317",
            "gateway-:4317",
            "-3:4317",
            "gateway-65536",
            "gateway-99999999999999999999",
            "gateway-1a",
            "a.gateway-1:4317",
            "",
        ] {
            assert_eq!(parse_ordinal(endpoint), None, "{endpoint}");
        }
    }

    #[test]
    fn static_list_prefers_pod_ordinals_then_positions() {
        let named = Member::static_list(&["gw-1:4317", "gw-0:4317"]);
        assert_eq!(named[0].ordinal(), Some(1));
        assert_eq!(named[1].ordinal(), Some(0));

        let plain = Member::static_list(&["b:4317", "a:4317", "gw-7:4317"]);
        let ordinals: Vec<_> = plain.iter().map(Member::ordinal).collect();
        assert_eq!(ordinals, [Some(0), Some(1), Some(2)]);

        let clash = Member::static_list(&["a-1:4317", "b-1:4317"]);
        assert_eq!(clash[1].ordinal(), Some(1));
        assert_eq!(clash[0].ordinal(), Some(0));
    }
}
