//! Errors from building a routing table or parsing a mode name. Both happen off the hot path, when a
//! resolver publishes a new member set or the config is loaded, so they carry owned context.

/// Why a member set cannot be turned into a [`RoutingTable`](crate::RoutingTable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// More members than a table can index.
    #[error("{count} members: tailgate routes to at most {max} gateways")]
    TooManyMembers {
        /// Members in the set.
        count: usize,
        /// The limit ([`MAX_MEMBERS`](crate::MAX_MEMBERS)).
        max: usize,
    },
    /// An empty endpoint string.
    #[error("a member has an empty endpoint")]
    EmptyEndpoint,
    /// The same endpoint twice with different ordinals.
    #[error("endpoint {endpoint:?} is listed with two ordinals ({first} and {second})")]
    ConflictingOrdinals {
        /// The endpoint.
        endpoint: String,
        /// One ordinal.
        first: u32,
        /// The other.
        second: u32,
    },
    /// `jump` mode needs an ordinal on every member.
    #[error(
        "member {endpoint:?} has no ordinal: jump hashing needs StatefulSet-style names such as \
         `gateway-3.gateway-headless:4317` or a static list; use `tailgate: {{hashing: slots}}` for \
         unordered addresses"
    )]
    MissingOrdinal {
        /// The member without an ordinal.
        endpoint: String,
    },
    /// An explicit ordinal above [`MAX_ORDINAL`](crate::MAX_ORDINAL) in `jump` mode.
    #[error("member {endpoint:?} has ordinal {ordinal}, above the maximum {max}")]
    OrdinalTooLarge {
        /// The member.
        endpoint: String,
        /// Its ordinal.
        ordinal: u32,
        /// The limit.
        max: u32,
    },
    /// Two members share an ordinal in `jump` mode.
    #[error("members {first:?} and {second:?} both have ordinal {ordinal}")]
    DuplicateOrdinal {
        /// The shared ordinal.
        ordinal: u32,
        /// The first member with it (in sorted order).
        first: String,
        /// The second member with it.
        second: String,
    },
}

/// A `tailgate.hashing` value that names no mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hashing mode {0:?}: expected one of `jump`, `slots`, `collector`")]
pub struct UnknownMode(pub String);
