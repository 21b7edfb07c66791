//! Protobuf wire primitives: varints, tags, and a field iterator over one message.
//!
//! The checks mirror prost's decoder (varints of at most ten bytes with no 64-bit overflow, field
//! number 0 and wire types 6/7 rejected, groups skipped with a depth limit) so that everything
//! prost accepts, the scanner accepts too. Offsets in errors are absolute: a [`Fields`] iterator
//! knows where its slice starts in the whole buffer.

use crate::error::{ScanError, ScanErrorKind};

/// Wire type of varint fields.
pub const VARINT: u8 = 0;
/// Wire type of 8-byte fields.
pub const FIXED64: u8 = 1;
/// Wire type of length-delimited fields.
pub const LEN: u8 = 2;
/// Wire type opening a group.
pub const START_GROUP: u8 = 3;
/// Wire type closing a group.
pub const END_GROUP: u8 = 4;
/// Wire type of 4-byte fields.
pub const FIXED32: u8 = 5;

/// Nesting limit for groups inside unknown fields: prost's recursion limit (100), so anything prost
/// skips we skip too, while the recursion stays bounded.
const MAX_GROUP_DEPTH: u32 = 100;

/// Decodes a varint at `buf[pos..]`, returning the value and the position after it.
#[inline(always)]
pub fn varint(buf: &[u8], pos: usize, base: usize) -> Result<(u64, usize), ScanError> {
    // Fast path: one byte, which covers tags and short lengths.
    match buf.get(pos) {
        Some(&b) if b < 0x80 => return Ok((u64::from(b), pos + 1)),
        // Two bytes: span lengths (128..16383) on the split path.
        Some(&b0) => {
            if let Some(&b1) = buf.get(pos + 1) {
                if b1 < 0x80 {
                    return Ok((u64::from(b0 & 0x7f) | (u64::from(b1) << 7), pos + 2));
                }
            }
        }
        None => return Err(ScanError::new(ScanErrorKind::Truncated, base + pos)),
    }
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&b) = buf.get(pos + i) else {
            return Err(ScanError::new(ScanErrorKind::Truncated, base + pos + i));
        };
        if i == 9 && b > 1 {
            return Err(ScanError::new(ScanErrorKind::BadVarint, base + pos));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, pos + i + 1));
        }
    }
    Err(ScanError::new(ScanErrorKind::BadVarint, base + pos))
}

/// Number of bytes `v` takes as a varint.
#[inline(always)]
pub const fn varint_len(v: u64) -> usize {
    // ((bits used) * 9 + 64) / 64 is the branch-free form of ceil(bits / 7) with 0 -> 1.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    (bits * 9 + 64) / 64
}

/// Appends `v` as a varint.
#[inline(always)]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One field of a message: number, wire type and where its payload lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Field number.
    pub number: u32,
    /// Wire type.
    pub wire_type: u8,
    /// Offset of the tag in the iterated slice.
    pub start: usize,
    /// Offset of the payload (after tag, and after the length for `LEN`).
    pub value_start: usize,
    /// Offset just past the field.
    pub end: usize,
    /// The varint value for `VARINT` fields, the length for `LEN`, else 0.
    pub varint: u64,
}

impl Field {
    /// The payload as a slice of `buf` (the slice the iterator walked).
    #[inline(always)]
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value_start..self.end]
    }

    /// The 8 payload bytes of a `FIXED64` field as a little-endian integer.
    #[inline(always)]
    pub fn fixed64(&self, buf: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[self.value_start..self.value_start + 8]);
        u64::from_le_bytes(b)
    }

    /// The 4 payload bytes of a `FIXED32` field as a little-endian integer.
    #[inline(always)]
    pub fn fixed32(&self, buf: &[u8]) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&buf[self.value_start..self.value_start + 4]);
        u32::from_le_bytes(b)
    }

    /// Fails with `WrongWireType` unless this field has wire type `expected`.
    #[inline(always)]
    pub fn expect(&self, expected: u8, base: usize) -> Result<(), ScanError> {
        if self.wire_type == expected {
            Ok(())
        } else {
            Err(ScanError::new(
                ScanErrorKind::WrongWireType,
                base + self.start,
            ))
        }
    }
}

/// Iterator over the fields of one message.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]`, for error reports.
    base: usize,
}

impl<'a> Fields<'a> {
    /// Iterates the fields of `buf`, which starts at absolute offset `base`.
    #[inline(always)]
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Absolute offset of the iterated slice.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Offset in the iterated slice of the next field (its length at the end).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Reads the next field; `Ok(None)` at the end of the message.
    #[inline(always)]
    pub fn next_field(&mut self) -> Result<Option<Field>, ScanError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let (tag, pos) = varint(self.buf, start, self.base)?;
        let (number, wire_type) = split_tag(tag, self.base + start)?;
        let (value_start, end, v) = field_extent(self.buf, pos, wire_type, number, self.base, 0)?;
        self.pos = end;
        Ok(Some(Field {
            number,
            wire_type,
            start,
            value_start,
            end,
            varint: v,
        }))
    }
}

/// Splits a tag into field number and wire type, rejecting what protobuf forbids.
#[inline(always)]
fn split_tag(tag: u64, at: usize) -> Result<(u32, u8), ScanError> {
    let wire_type = (tag & 7) as u8;
    let number = tag >> 3;
    if wire_type > 5 {
        return Err(ScanError::new(ScanErrorKind::BadWireType, at));
    }
    if number == 0 || number > u64::from(u32::MAX >> 3) {
        return Err(ScanError::new(ScanErrorKind::BadFieldNumber, at));
    }
    Ok((number as u32, wire_type))
}

/// Where a field's payload starts and ends, given the position after its tag.
#[inline(always)]
fn field_extent(
    buf: &[u8],
    pos: usize,
    wire_type: u8,
    number: u32,
    base: usize,
    depth: u32,
) -> Result<(usize, usize, u64), ScanError> {
    let truncated = |at: usize| ScanError::new(ScanErrorKind::Truncated, base + at);
    match wire_type {
        VARINT => {
            let (v, end) = varint(buf, pos, base)?;
            Ok((pos, end, v))
        }
        FIXED64 => fixed_end(buf, pos, 8)
            .map(|e| (pos, e, 0))
            .ok_or(truncated(pos)),
        FIXED32 => fixed_end(buf, pos, 4)
            .map(|e| (pos, e, 0))
            .ok_or(truncated(pos)),
        LEN => {
            let (len, start) = varint(buf, pos, base)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= buf.len())
                .ok_or(truncated(pos))?;
            Ok((start, end, len))
        }
        START_GROUP => skip_group(buf, pos, number, base, depth).map(|e| (pos, e, 0)),
        _ => Err(ScanError::new(ScanErrorKind::BadGroup, base + pos)),
    }
}

#[inline(always)]
fn fixed_end(buf: &[u8], pos: usize, n: usize) -> Option<usize> {
    pos.checked_add(n).filter(|&e| e <= buf.len())
}

/// Skips the body of a group opened by field `number`, returning the position after its end tag.
fn skip_group(
    buf: &[u8],
    mut pos: usize,
    number: u32,
    base: usize,
    depth: u32,
) -> Result<usize, ScanError> {
    if depth >= MAX_GROUP_DEPTH {
        return Err(ScanError::new(ScanErrorKind::BadGroup, base + pos));
    }
    loop {
        let start = pos;
        let (tag, p) = varint(buf, pos, base)?;
        let (n, wt) = split_tag(tag, base + start)?;
        if wt == END_GROUP {
            if n != number {
                return Err(ScanError::new(ScanErrorKind::BadGroup, base + start));
            }
            return Ok(p);
        }
        let (_, end, _) = field_extent(buf, p, wt, n, base, depth + 1)?;
        pos = end;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_lengths_match() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(varint(&out, 0, 0).unwrap(), (v, out.len()));
        }
    }

    #[test]
    fn bad_varints_are_rejected() {
        let eleven = [0xffu8; 11];
        assert_eq!(
            varint(&eleven, 0, 7).unwrap_err(),
            ScanError::new(ScanErrorKind::BadVarint, 7)
        );
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            varint(&overflow, 0, 0).unwrap_err().kind,
            ScanErrorKind::BadVarint
        );
        assert_eq!(
            varint(&[0x80, 0x80], 0, 0).unwrap_err(),
            ScanError::new(ScanErrorKind::Truncated, 2)
        );
    }

    #[test]
    fn tag_errors() {
        let kind = |b: &[u8]| Fields::new(b, 0).next_field().unwrap_err().kind;
        assert_eq!(kind(&[0x0e]), ScanErrorKind::BadWireType); // field 1, wire type 6
        assert_eq!(kind(&[0x0a]), ScanErrorKind::Truncated);
        assert_eq!(kind(&[0x00]), ScanErrorKind::BadFieldNumber);
        assert_eq!(kind(&[0x0a, 0x05, 1]), ScanErrorKind::Truncated);
        assert_eq!(kind(&[0x09, 1, 2]), ScanErrorKind::Truncated);
        assert_eq!(kind(&[0x0c]), ScanErrorKind::BadGroup); // stray end group
        assert_eq!(kind(&[0x0b, 0x14]), ScanErrorKind::BadGroup); // group 1 closed by 2
    }

    #[test]
    fn groups_are_skipped() {
        // group 1 { field 2 varint 5, group 3 { } } then field 4 varint 1
        let buf = [0x0b, 0x10, 0x05, 0x1b, 0x1c, 0x0c, 0x20, 0x01];
        let mut f = Fields::new(&buf, 0);
        let g = f.next_field().unwrap().unwrap();
        assert_eq!((g.number, g.end), (1, 6));
        assert_eq!(f.next_field().unwrap().unwrap().varint, 1);
        assert!(f.next_field().unwrap().is_none());
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, 200).collect();
        assert_eq!(
            Fields::new(&deep, 0).next_field().unwrap_err().kind,
            ScanErrorKind::BadGroup
        );
    }
}
