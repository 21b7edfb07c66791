//! The payload entries of control messages: their layout, encoding and checked decoding
//! (layout table in the parent module's docs).

use crate::error::{ControlError, EncodeError};
use crate::hop::{check_endpoint, Kind, MAX_ENDPOINT_LEN};

/// The claim `state` byte: bit 0 decided, bit 1 anchored (§4.7). Only valid values can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct State(u8);

impl State {
    /// Neither decided nor anchored.
    pub const PENDING: State = State(0);

    /// The state with these flags.
    pub const fn new(decided: bool, anchored: bool) -> Self {
        State(decided as u8 | (anchored as u8) << 1)
    }

    /// The state encoded as `bits`, or `None` if a bit other than 0 and 1 is set.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !0b11 == 0 {
            Some(State(bits))
        } else {
            None
        }
    }

    /// The encoded byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The holder has decided the trace.
    pub const fn decided(self) -> bool {
        self.0 & 1 != 0
    }

    /// The holder received the trace in a hand-over.
    pub const fn anchored(self) -> bool {
        self.0 & 2 != 0
    }
}

/// One `claim` entry: "I hold this trace".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The claimant's state for it.
    pub state: State,
    /// How long the claim stays valid, in milliseconds.
    pub ttl_ms: u32,
}

/// One `redirect` entry: "send this trace's spans to `holder`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Redirect<'a> {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The holder's endpoint, as the resolver lists it.
    pub holder: &'a str,
    /// The holder's incarnation.
    pub holder_incarnation: u64,
    /// The holder's state for the trace (a decided keeper is never redirected back).
    pub holder_state: State,
}

/// One `decisions` entry: a draining gateway's decision for a trace still in its late window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The trace.
    pub trace_id: [u8; 16],
    /// Whether the trace was kept.
    pub kept: bool,
    /// How long the decision should be remembered, in milliseconds.
    pub ttl_ms: u32,
}

/// A payload entry: its kind, its encoding and its decoding.
pub trait Entry<'a>: Sized + Copy {
    /// The `tailgate-hop` kind whose payload holds these entries.
    const KIND: Kind;
    /// The smallest encoded entry, which bounds how many a payload can hold.
    const MIN_LEN: usize;

    /// Encoded length.
    fn wire_len(&self) -> usize;

    /// Whether the entry can be encoded as the parser will accept it.
    fn check(&self) -> Result<(), EncodeError> {
        Ok(())
    }

    /// Appends the encoded entry.
    fn put(&self, out: &mut Vec<u8>);

    /// Reads the entry at `payload[pos..]` (`payload` starts at body offset `base`), returning it
    /// and the position after it.
    fn read(payload: &'a [u8], pos: usize, base: usize) -> Result<(Self, usize), ControlError>;
}

/// `n` bytes at `payload[pos..]`, or the `Truncated` error an entry needing `need` bytes from
/// `start` gets.
fn take(
    payload: &[u8],
    pos: usize,
    n: usize,
    (start, need, base): (usize, usize, usize),
) -> Result<&[u8], ControlError> {
    payload
        .get(pos..)
        .and_then(|rest| rest.get(..n))
        .ok_or(ControlError::Truncated {
            at: base + start,
            need,
            have: payload.len().saturating_sub(start),
        })
}

fn trace_id(b: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[..16]);
    id
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn state_at(b: u8, at: usize) -> Result<State, ControlError> {
    State::from_bits(b).ok_or(ControlError::BadState { at, state: b })
}

/// `trace_id [16], one byte, ttl_ms u32`: the layout of claims and decisions.
pub(super) const FIXED_LEN: usize = 21;

impl<'a> Entry<'a> for Claim {
    const KIND: Kind = Kind::Claim;
    const MIN_LEN: usize = FIXED_LEN;

    fn wire_len(&self) -> usize {
        FIXED_LEN
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.trace_id);
        out.push(self.state.bits());
        out.extend_from_slice(&self.ttl_ms.to_le_bytes());
    }

    fn read(payload: &'a [u8], pos: usize, base: usize) -> Result<(Self, usize), ControlError> {
        let b = take(payload, pos, FIXED_LEN, (pos, FIXED_LEN, base))?;
        let state = state_at(b[16], base + pos + 16)?;
        let claim = Claim {
            trace_id: trace_id(b),
            state,
            ttl_ms: u32_le(&b[17..]),
        };
        Ok((claim, pos + FIXED_LEN))
    }
}

impl<'a> Entry<'a> for Decision {
    const KIND: Kind = Kind::Decisions;
    const MIN_LEN: usize = FIXED_LEN;

    fn wire_len(&self) -> usize {
        FIXED_LEN
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.trace_id);
        out.push(u8::from(self.kept));
        out.extend_from_slice(&self.ttl_ms.to_le_bytes());
    }

    fn read(payload: &'a [u8], pos: usize, base: usize) -> Result<(Self, usize), ControlError> {
        let b = take(payload, pos, FIXED_LEN, (pos, FIXED_LEN, base))?;
        let kept = match b[16] {
            0 => false,
            1 => true,
            kept => {
                return Err(ControlError::BadKept {
                    at: base + pos + 16,
                    kept,
                })
            }
        };
        let decision = Decision {
            trace_id: trace_id(b),
            kept,
            ttl_ms: u32_le(&b[17..]),
        };
        Ok((decision, pos + FIXED_LEN))
    }
}

/// A redirect's bytes around the holder: trace id and length before, incarnation and state after.
const REDIRECT_FIXED: usize = 16 + 2 + 8 + 1;

impl<'a> Entry<'a> for Redirect<'a> {
    const KIND: Kind = Kind::Redirect;
    const MIN_LEN: usize = REDIRECT_FIXED + 1;

    fn wire_len(&self) -> usize {
        REDIRECT_FIXED + self.holder.len()
    }

    fn check(&self) -> Result<(), EncodeError> {
        check_endpoint("holder", self.holder)
            .map(|_| ())
            .map_err(|_| EncodeError::BadHolder { index: 0 })
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.trace_id);
        // At most 253 once checked; an unchecked longer holder is cut to what the length says
        // rather than written with a length that disagrees.
        let holder = &self.holder.as_bytes()[..self.holder.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(holder.len() as u16).to_le_bytes());
        out.extend_from_slice(holder);
        out.extend_from_slice(&self.holder_incarnation.to_le_bytes());
        out.push(self.holder_state.bits());
    }

    fn read(payload: &'a [u8], pos: usize, base: usize) -> Result<(Self, usize), ControlError> {
        let head = take(payload, pos, 18, (pos, Self::MIN_LEN, base))?;
        let len = u16::from_le_bytes([head[16], head[17]]);
        let holder_len = usize::from(len);
        if holder_len == 0 || holder_len > MAX_ENDPOINT_LEN {
            return Err(ControlError::BadHolderLength {
                at: base + pos + 16,
                len,
            });
        }
        let need = REDIRECT_FIXED + holder_len;
        let rest = take(payload, pos + 18, need - 18, (pos, need, base))?;
        let (holder, tail) = rest.split_at(holder_len);
        let holder = std::str::from_utf8(holder)
            .ok()
            .and_then(|h| check_endpoint("holder", h).ok())
            .ok_or(ControlError::BadHolder {
                at: base + pos + 18,
            })?;
        let mut inc = [0u8; 8];
        inc.copy_from_slice(&tail[..8]);
        let redirect = Redirect {
            trace_id: trace_id(head),
            holder,
            holder_incarnation: u64::from_le_bytes(inc),
            holder_state: state_at(tail[8], base + pos + need - 1)?,
        };
        Ok((redirect, pos + need))
    }
}
