//! The hashing modes, their config names, and the default mode for each resolver kind.

use std::fmt;
use std::str::FromStr;

use crate::error::UnknownMode;
use crate::member::Member;

/// How keys are placed on members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Jump consistent hash over member ordinals: perfect balance, minimal movement. Needs an ordinal
    /// on every member (StatefulSet pod names, or a static list).
    Jump,
    /// Rendezvous-assigned slot table: for unordered address sets (DNS A records).
    Slots,
    /// The OpenTelemetry Collector's ring, bit for bit: for fleets that mix tailgate and collector
    /// agents during a migration. Worse balance than the others (see the crate docs).
    Collector,
}

/// Where a member set comes from; decides the default [`Mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResolverKind {
    /// `resolver.static.hostnames`.
    Static,
    /// `resolver.dns`: A/AAAA records, an unordered set of addresses.
    Dns,
    /// `resolver.k8s`: EndpointSlice addresses, or pod names with `return_hostnames: true`.
    K8s,
}

impl Mode {
    /// Every mode, in documentation order.
    pub const ALL: [Mode; 3] = [Mode::Jump, Mode::Slots, Mode::Collector];

    /// The name used in config (`tailgate: {hashing: <name>}`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Jump => "jump",
            Mode::Slots => "slots",
            Mode::Collector => "collector",
        }
    }

    /// The mode used when `tailgate.hashing` is not set:
    /// - `static` → `jump` (ordinals from `name-N` hostnames, else list positions; see
    ///   [`Member::static_list`]);
    /// - `k8s` → `jump` when every member has a distinct pod ordinal (`return_hostnames: true` on a
    ///   StatefulSet), else `slots`;
    /// - `dns` → `slots`.
    ///
    /// `collector` is never the default: it is chosen explicitly for a migration. The choice depends
    /// only on the member set, so agents that see the same set choose the same mode.
    pub fn default_for(kind: ResolverKind, members: &[Member]) -> Mode {
        match kind {
            ResolverKind::Static => Mode::Jump,
            ResolverKind::Dns => Mode::Slots,
            ResolverKind::K8s if distinct_ordinals(members) => Mode::Jump,
            ResolverKind::K8s => Mode::Slots,
        }
    }
}

/// True when every member has an ordinal and no two share one.
fn distinct_ordinals(members: &[Member]) -> bool {
    let mut ordinals: Vec<u32> = members.iter().filter_map(Member::ordinal).collect();
    ordinals.sort_unstable();
    ordinals.dedup();
    !members.is_empty() && ordinals.len() == members.len()
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>(), Ok(m));
        }
        let err = "ring".parse::<Mode>().expect_err("unknown");
        assert!(err.to_string().contains("jump"), "{err}");
    }

    #[test]
    fn defaults_follow_the_resolver() {
        let pods: Vec<Member> = (0..3)
            .map(|i| Member::new(format!("gw-{i}.gw:4317")))
            .collect();
        let ips = vec![Member::new("10.0.0.1:4317"), Member::new("10.0.0.2:4317")];
        assert_eq!(Mode::default_for(ResolverKind::K8s, &pods), Mode::Jump);
        assert_eq!(Mode::default_for(ResolverKind::K8s, &ips), Mode::Slots);
        assert_eq!(Mode::default_for(ResolverKind::Dns, &pods), Mode::Slots);
        assert_eq!(Mode::default_for(ResolverKind::Static, &ips), Mode::Jump);
    }
}
