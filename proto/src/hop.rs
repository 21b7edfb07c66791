//! The `tailgate-hop` and `tailgate-table` gRPC metadata values (docs/membership-design.md §5).
//!
//! A gateway marks every request it sends to another member with `tailgate-hop`: ASCII,
//! `;`-separated `key=value` fields, e.g. `v=1;k=fwd;r=not_owner;f=gw-1:4317;i=<16 hex>;t=<16 hex>;
//! b=3.42`. Agents add `tailgate-table: <16 hex>`. Both are parsed before the body is read, from
//! bytes any client can send, so the parser bounds everything and never allocates.
//!
//! # Rules the parser applies (and [`HopHeader::write`] follows)
//!
//! - The whole value is at most [`MAX_HEADER_LEN`] bytes of printable ASCII (`0x21..=0x7e`: gRPC
//!   metadata forbids control bytes, and nothing here needs a space). No field may be empty: a
//!   trailing `;` is refused.
//! - `v` must be `1`; any other decimal is [`HopError::UnsupportedVersion`], which the receiver
//!   refuses as retryable (a newer peer during a rolling upgrade).
//! - Unknown keys are ignored (a later version may add fields without bumping `v`); known keys may
//!   appear only once ([`HopError::DuplicateKey`]): two values would be ambiguous.
//! - `k`, `f`, `i`, `t` are required for every kind. `r` is required for `fwd` and forbidden
//!   otherwise; `b` is required for `fwd` and `handover` and forbidden otherwise. Forbidding them
//!   keeps one meaning per header: a control message carrying a batch ID would otherwise be
//!   deduplicated or not depending on the receiver.
//! - `f` (the sender's endpoint) is 1..=[`MAX_ENDPOINT_LEN`] printable ASCII bytes without `;` or
//!   `=`; `i` and `t` are exactly 16 hex digits (either case read, lower case written); `b` is
//!   `<core>.<seq>` in decimal digits, `core` a `u16` and `seq` a `u64`.

use crate::error::HopError;

/// The gRPC metadata key of the hop mark.
pub const HOP_HEADER: &str = "tailgate-hop";
/// The gRPC metadata key agents send their table hash in.
pub const TABLE_HEADER: &str = "tailgate-table";
/// The gRPC metadata key agents name the members they consider down in, on failed-over data.
pub const FAILOVER_HEADER: &str = "tailgate-failover";
/// The only version this code reads and writes.
pub const VERSION: u64 = 1;
/// Longest `tailgate-hop` value accepted: a full header with a 253-byte endpoint is about 330.
pub const MAX_HEADER_LEN: usize = 512;
/// Longest endpoint (`f`, and a redirect's holder): a DNS name's limit.
pub const MAX_ENDPOINT_LEN: usize = 253;

/// What a marked request carries (`k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Spans forwarded to their owner (`fwd`).
    Fwd,
    /// An undecided fragment handed to the arbitrated holder (`handover`).
    HandOver,
    /// Claims of traces this sender holds (`claim`).
    Claim,
    /// "Send this trace's spans to another holder" (`redirect`).
    Redirect,
    /// Decisions exported by a draining gateway (`decisions`).
    Decisions,
    /// A drain announcement (`drain`).
    Drain,
    /// The sender finished draining (`done`).
    Done,
}

impl Kind {
    /// Every kind, in the order of the design's table.
    pub const ALL: [Kind; 7] = [
        Kind::Fwd,
        Kind::HandOver,
        Kind::Claim,
        Kind::Redirect,
        Kind::Decisions,
        Kind::Drain,
        Kind::Done,
    ];

    /// The value of `k` for this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Fwd => "fwd",
            Kind::HandOver => "handover",
            Kind::Claim => "claim",
            Kind::Redirect => "redirect",
            Kind::Decisions => "decisions",
            Kind::Drain => "drain",
            Kind::Done => "done",
        }
    }

    /// The kind named `s`, if any.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the body holds spans (`fwd`, `handover`) rather than a control payload.
    pub const fn carries_spans(self) -> bool {
        matches!(self, Kind::Fwd | Kind::HandOver)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why spans were forwarded (`r`, `fwd` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The sender does not own the trace (`not_owner`).
    NotOwner,
    /// The receiver claimed the trace (`claim`).
    Claim,
}

impl Reason {
    /// The value of `r` for this reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NotOwner => "not_owner",
            Reason::Claim => "claim",
        }
    }

    fn from_name(s: &str) -> Option<Reason> {
        match s {
            "not_owner" => Some(Reason::NotOwner),
            "claim" => Some(Reason::Claim),
            _ => None,
        }
    }
}

/// A parsed `tailgate-hop` value, borrowing the sender's endpoint from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopHeader<'a> {
    /// What the body holds (`k`).
    pub kind: Kind,
    /// Why spans were forwarded (`r`): `Some` exactly for [`Kind::Fwd`].
    pub reason: Option<Reason>,
    /// The sender's endpoint as the resolver lists it (`f`).
    pub from: &'a str,
    /// The sender's incarnation (`i`).
    pub incarnation: u64,
    /// The sender's effective table hash (`t`).
    pub table: u64,
    /// The batch ID (`b`): sender core and sequence number; `Some` exactly for `fwd`/`handover`.
    pub batch: Option<(u16, u64)>,
}

/// Keys the parser knows, in the order [`HopHeader::write`] writes them.
const KEYS: [&str; 7] = ["v", "k", "r", "f", "i", "t", "b"];

impl<'a> HopHeader<'a> {
    /// Parses a `tailgate-hop` value (see the module docs for the rules).
    pub fn parse(s: &'a str) -> Result<HopHeader<'a>, HopError> {
        if s.len() > MAX_HEADER_LEN {
            return Err(HopError::TooLong { len: s.len() });
        }
        if let Some(at) = s.bytes().position(|b| !is_printable(b)) {
            return Err(HopError::NotPrintable { at });
        }
        let mut values: [Option<&'a str>; KEYS.len()] = [None; KEYS.len()];
        let mut at = 0;
        for field in s.split(';') {
            let (key, value) = field
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or(HopError::BadField { at })?;
            at += field.len() + 1;
            let Some(i) = KEYS.iter().position(|&k| k == key) else {
                continue; // a later version's field
            };
            if values[i].replace(value).is_some() {
                return Err(HopError::DuplicateKey { key: KEYS[i] });
            }
        }
        let [v, k, r, f, i, t, b] = values;
        let version = required("v", v)?;
        match digits::<u64>(version) {
            Some(VERSION) => {}
            Some(version) => return Err(HopError::UnsupportedVersion { version }),
            None => return Err(bad("v", "a decimal version")),
        }
        let kind = Kind::from_name(required("k", k)?).ok_or(bad("k", "a known kind"))?;
        let header = HopHeader {
            kind,
            reason: r
                .map(|r| Reason::from_name(r).ok_or(bad("r", "not_owner or claim")))
                .transpose()?,
            from: check_endpoint("f", required("f", f)?)?,
            incarnation: hex16("i", required("i", i)?)?,
            table: hex16("t", required("t", t)?)?,
            batch: b
                .map(|b| parse_batch(b).ok_or(bad("b", "<core u16>.<seq u64>")))
                .transpose()?,
        };
        header.check_kind_fields()?;
        Ok(header)
    }

    /// Checks what [`HopHeader::parse`] checks of a value it did not parse (a header about to be
    /// written): the endpoint, and which of `r`/`b` the kind requires.
    pub fn validate(&self) -> Result<(), HopError> {
        check_endpoint("f", self.from)?;
        self.check_kind_fields()
    }

    /// `r` and `b` present exactly where the kind requires them.
    fn check_kind_fields(&self) -> Result<(), HopError> {
        let wants_reason = self.kind == Kind::Fwd;
        let wants_batch = self.kind.carries_spans();
        match (self.reason.is_some(), wants_reason) {
            (false, true) => return Err(HopError::MissingKey { key: "r" }),
            (true, false) => return Err(forbidden("r", self.kind)),
            _ => {}
        }
        match (self.batch.is_some(), wants_batch) {
            (false, true) => Err(HopError::MissingKey { key: "b" }),
            (true, false) => Err(forbidden("b", self.kind)),
            _ => Ok(()),
        }
    }

    /// Appends the header value to `out`. The header should be valid ([`HopHeader::validate`]);
    /// an invalid one is written as it is, and its receiver refuses it.
    pub fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(out, "v={VERSION};k={}", self.kind);
        if let Some(r) = self.reason {
            let _ = write!(out, ";r={}", r.as_str());
        }
        let _ = write!(
            out,
            ";f={};i={:016x};t={:016x}",
            self.from, self.incarnation, self.table
        );
        if let Some((core, seq)) = self.batch {
            let _ = write!(out, ";b={core}.{seq}");
        }
    }

    /// The header value as a new string.
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(64 + self.from.len());
        self.write(&mut out);
        out
    }
}

/// Parses a `tailgate-table` value: 16 hex digits.
pub fn parse_table(s: &str) -> Result<u64, HopError> {
    hex16(TABLE_HEADER, s)
}

/// Appends `table` as a `tailgate-table` value: 16 lower-case hex digits.
pub fn write_table(table: u64, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(out, "{table:016x}");
}

/// `table` as a `tailgate-table` value.
pub fn format_table(table: u64) -> String {
    format!("{table:016x}")
}

/// Checks an endpoint (`f`, or a redirect's holder named `key`): 1..=253 printable ASCII bytes
/// without `;` or `=`.
pub fn check_endpoint<'s>(key: &'static str, s: &'s str) -> Result<&'s str, HopError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ENDPOINT_LEN
        && s.bytes().all(|b| is_printable(b) && b != b';' && b != b'=');
    if ok {
        Ok(s)
    } else {
        Err(bad(
            key,
            "1 to 253 printable ASCII bytes without ';' or '='",
        ))
    }
}

/// Printable ASCII without space.
fn is_printable(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

fn required<'s>(key: &'static str, v: Option<&'s str>) -> Result<&'s str, HopError> {
    v.ok_or(HopError::MissingKey { key })
}

fn bad(key: &'static str, expected: &'static str) -> HopError {
    HopError::BadValue { key, expected }
}

fn forbidden(key: &'static str, kind: Kind) -> HopError {
    HopError::Forbidden { key, kind }
}

/// Exactly 16 hex digits.
fn hex16(key: &'static str, s: &str) -> Result<u64, HopError> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(key, "16 hex digits"));
    }
    u64::from_str_radix(s, 16).map_err(|_| bad(key, "16 hex digits"))
}

/// A non-empty run of decimal digits that fits `T` (`str::parse` alone would accept a `+`).
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_batch(s: &str) -> Option<(u16, u64)> {
    let (core, seq) = s.split_once('.')?;
    Some((digits(core)?, digits(seq)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const I: &str = "00000000000000ff";
    const T: &str = "0123456789abcdef";

    fn fwd() -> String {
        format!("v=1;k=fwd;r=not_owner;f=gw-1.tailgate:4317;i={I};t={T};b=3.42")
    }

    #[test]
    fn parses_a_forward() {
        let s = fwd();
        let h = HopHeader::parse(&s).unwrap();
        assert_eq!(
            h,
            HopHeader {
                kind: Kind::Fwd,
                reason: Some(Reason::NotOwner),
                from: "gw-1.tailgate:4317",
                incarnation: 0xff,
                table: 0x0123_4567_89ab_cdef,
                batch: Some((3, 42)),
            }
        );
        assert_eq!(h.to_header_value(), s);
    }

    #[test]
    fn control_kinds_need_no_reason_or_batch() {
        for k in ["claim", "redirect", "decisions", "drain", "done"] {
            let s = format!("v=1;k={k};f=10.0.0.1:4317;i={I};t={T}");
            let h = HopHeader::parse(&s).unwrap();
            assert_eq!((h.kind.as_str(), h.reason, h.batch), (k, None, None));
            assert_eq!(h.to_header_value(), s);
        }
        let s = format!("v=1;k=handover;f=a;i={I};t={T};b=0.0");
        assert_eq!(HopHeader::parse(&s).unwrap().batch, Some((0, 0)));
    }

    #[test]
    fn unknown_keys_are_ignored_in_any_order() {
        let s = format!("x=;t={T};zz=a.b=c;b=1.2;i={I};f=e;r=claim;k=fwd;v=1");
        let h = HopHeader::parse(&s).unwrap();
        assert_eq!((h.reason, h.batch), (Some(Reason::Claim), Some((1, 2))));
    }

    fn err(s: &str) -> HopError {
        HopHeader::parse(s).unwrap_err()
    }

    #[test]
    fn each_error() {
        assert_eq!(
            err(&"a".repeat(513)),
            HopError::TooLong { len: 513 },
            "length is checked first"
        );
        assert_eq!(err("v=1;k=f d"), HopError::NotPrintable { at: 7 });
        assert_eq!(err("v=1;k=fwd\u{e9}"), HopError::NotPrintable { at: 9 });
        assert_eq!(err("v=1;;k=fwd"), HopError::BadField { at: 4 });
        assert_eq!(err("v=1;k=fwd;"), HopError::BadField { at: 10 });
        assert_eq!(err("v=1;=x"), HopError::BadField { at: 4 });
        assert_eq!(err("v=1;kfwd"), HopError::BadField { at: 4 });
        assert_eq!(err("v=1;v=1"), HopError::DuplicateKey { key: "v" });
        let tail = format!("f=a;i={I};t={T}");
        assert_eq!(
            err(&format!("k=drain;{tail}")),
            HopError::MissingKey { key: "v" }
        );
        assert_eq!(
            err(&format!("v=2;k=drain;{tail}")),
            HopError::UnsupportedVersion { version: 2 }
        );
        assert_eq!(
            err(&format!("v=+1;k=drain;{tail}")),
            HopError::BadValue {
                key: "v",
                expected: "a decimal version"
            }
        );
        assert_eq!(
            err(&format!("v=1;{tail}")),
            HopError::MissingKey { key: "k" }
        );
        assert_eq!(
            err(&format!("v=1;k=spans;{tail}")),
            HopError::BadValue {
                key: "k",
                expected: "a known kind"
            }
        );
        assert_eq!(
            err(&format!("v=1;k=fwd;r=because;b=1.1;{tail}")),
            HopError::BadValue {
                key: "r",
                expected: "not_owner or claim"
            }
        );
        assert!(matches!(
            err(&format!("v=1;k=drain;f=a=b;i={I};t={T}")),
            HopError::BadValue { key: "f", .. }
        ));
        assert!(matches!(
            err(&format!("v=1;k=drain;f={};i={I};t={T}", "a".repeat(254))),
            HopError::BadValue { key: "f", .. }
        ));
        assert!(matches!(
            err(&format!("v=1;k=drain;f=;i={I};t={T}")),
            HopError::BadValue { key: "f", .. }
        ));
        assert_eq!(
            err(&format!("v=1;k=drain;f=a;i=ff;t={T}")),
            bad("i", "16 hex digits")
        );
        assert_eq!(
            err(&format!("v=1;k=drain;f=a;i={I};t=+123456789abcdef")),
            bad("t", "16 hex digits")
        );
        assert_eq!(
            err(&format!("v=1;k=drain;f=a;t={T}")),
            HopError::MissingKey { key: "i" }
        );
        for b in [
            "1",
            "1.",
            ".1",
            "65536.1",
            "1.18446744073709551616",
            "1.+2",
            "a.b",
        ] {
            assert_eq!(
                err(&format!("v=1;k=handover;b={b};{tail}")),
                bad("b", "<core u16>.<seq u64>"),
                "{b}"
            );
        }
        assert_eq!(
            err(&format!("v=1;k=fwd;b=1.1;{tail}")),
            HopError::MissingKey { key: "r" }
        );
        assert_eq!(
            err(&format!("v=1;k=fwd;r=claim;{tail}")),
            HopError::MissingKey { key: "b" }
        );
        assert_eq!(
            err(&format!("v=1;k=handover;r=claim;b=1.1;{tail}")),
            HopError::Forbidden {
                key: "r",
                kind: Kind::HandOver
            }
        );
        assert_eq!(
            err(&format!("v=1;k=claim;b=1.1;{tail}")),
            HopError::Forbidden {
                key: "b",
                kind: Kind::Claim
            }
        );
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            err("v=7").to_string(),
            "tailgate-hop version 7 is not supported (this build speaks 1)"
        );
        assert_eq!(
            bad("i", "16 hex digits").to_string(),
            "tailgate-hop key i: expected 16 hex digits"
        );
    }

    #[test]
    fn table_header() {
        assert_eq!(format_table(0xab), "00000000000000ab");
        assert_eq!(parse_table("00000000000000AB").unwrap(), 0xab);
        assert_eq!(parse_table(&format_table(u64::MAX)).unwrap(), u64::MAX);
        assert_eq!(parse_table("ab"), Err(bad(TABLE_HEADER, "16 hex digits")));
        assert_eq!(
            parse_table("00000000000000ag"),
            Err(bad(TABLE_HEADER, "16 hex digits"))
        );
    }

    fn header() -> impl Strategy<Value = (Kind, Option<Reason>, String, u64, u64, (u16, u64))> {
        (
            proptest::sample::select(Kind::ALL.to_vec()),
            prop_oneof![Just(Reason::NotOwner), Just(Reason::Claim)],
            "[!-:<>-~]{1,253}",
            any::<u64>(),
            any::<u64>(),
            any::<(u16, u64)>(),
        )
            .prop_map(|(kind, r, from, i, t, b)| (kind, Some(r), from, i, t, b))
    }

    proptest! {
        #[test]
        fn round_trip((kind, reason, from, incarnation, table, batch) in header()) {
            let h = HopHeader {
                kind,
                reason: reason.filter(|_| kind == Kind::Fwd),
                from: &from,
                incarnation,
                table,
                batch: Some(batch).filter(|_| kind.carries_spans()),
            };
            prop_assert_eq!(h.validate(), Ok(()));
            let s = h.to_header_value();
            prop_assert!(s.len() <= MAX_HEADER_LEN);
            prop_assert_eq!(HopHeader::parse(&s), Ok(h));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,600}") {
            let _ = HopHeader::parse(&s);
            let _ = parse_table(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(cut in 0usize..200, at in 0usize..200, c in any::<char>()) {
            let mut s = fwd();
            let at = at % s.len();
            if s.is_char_boundary(at) {
                s.insert(at, c);
            }
            let mut cut = cut.min(s.len());
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            if let Ok(h) = HopHeader::parse(&s) {
                prop_assert_eq!(h.validate(), Ok(()));
            }
        }
    }
}
