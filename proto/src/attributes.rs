//! Lazy, typed reading of `KeyValue` attributes (`opentelemetry/proto/common/v1/common.proto`).
//!
//! Attributes are only looked at when a policy asks, so nothing here runs on the routing path.
//! Lookup walks the repeated `KeyValue` field of the enclosing message and compares keys in place;
//! values are decoded to [`AnyValue`] borrowing the buffer (arrays and kvlists stay raw bytes).

use crate::error::ScanError;
use crate::wire::{Fields, FIXED64, LEN, VARINT};

/// A typed attribute value borrowing its buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyValue<'a> {
    /// No value set (an empty `AnyValue`).
    Empty,
    /// `string_value`, raw bytes (OTLP strings should be UTF-8; use [`AnyValue::as_str`]).
    String(&'a [u8]),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value`: the encoded `ArrayValue` message.
    Array(&'a [u8]),
    /// `kvlist_value`: the encoded `KeyValueList` message.
    KvList(&'a [u8]),
}

impl<'a> AnyValue<'a> {
    /// The string value, if this is a valid UTF-8 string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            AnyValue::String(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// Decodes an encoded `AnyValue` message (found at absolute offset `base`). As in prost, the
    /// last member of the oneof on the wire wins.
    pub fn parse(msg: &'a [u8], base: usize) -> Result<Self, ScanError> {
        let mut out = AnyValue::Empty;
        let mut fields = Fields::new(msg, base);
        while let Some(f) = fields.next_field()? {
            out = match f.number {
                1 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::String(f.payload(msg)))?,
                2 => f
                    .expect(VARINT, base)
                    .map(|()| AnyValue::Bool(f.varint != 0))?,
                3 => f
                    .expect(VARINT, base)
                    .map(|()| AnyValue::Int(f.varint as i64))?,
                4 => f
                    .expect(FIXED64, base)
                    .map(|()| AnyValue::Double(f64::from_bits(f.fixed64(msg))))?,
                5 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::Array(f.payload(msg)))?,
                6 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::KvList(f.payload(msg)))?,
                7 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::Bytes(f.payload(msg)))?,
                _ => out,
            };
        }
        Ok(out)
    }
}

/// Iterator over the `KeyValue`s stored in field `field` of a message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    msg: &'a [u8],
    fields: Fields<'a>,
    field: u32,
    failed: bool,
}

impl<'a> Attributes<'a> {
    /// Iterates field `field` (repeated `KeyValue`) of the message `msg` found at offset `base`.
    pub(crate) fn new(msg: &'a [u8], base: usize, field: u32) -> Self {
        Self {
            msg,
            fields: Fields::new(msg, base),
            field,
            failed: false,
        }
    }

    /// An iterator that yields nothing.
    pub(crate) fn empty() -> Self {
        Self::new(&[], 0, 0)
    }

    fn next_kv(&mut self) -> Result<Option<(&'a [u8], AnyValue<'a>)>, ScanError> {
        let base = self.fields.base();
        while let Some(f) = self.fields.next_field()? {
            if f.number == self.field {
                f.expect(LEN, base)?;
                let kv = parse_key_value(f.payload(self.msg), base + f.value_start)?;
                return Ok(Some(kv));
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(&'a [u8], AnyValue<'a>), ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_kv().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

/// Decodes a `KeyValue` message into key and value.
fn parse_key_value(kv: &[u8], base: usize) -> Result<(&[u8], AnyValue<'_>), ScanError> {
    let mut key: &[u8] = &[];
    let mut value = AnyValue::Empty;
    let mut fields = Fields::new(kv, base);
    while let Some(f) = fields.next_field()? {
        match f.number {
            1 => {
                f.expect(LEN, base)?;
                key = f.payload(kv);
            }
            2 => {
                f.expect(LEN, base)?;
                value = AnyValue::parse(f.payload(kv), base + f.value_start)?;
            }
            _ => {}
        }
    }
    Ok((key, value))
}

/// The first attribute named `key` in field `field` of `msg`; `None` if absent or if the walk hits
/// malformed bytes before finding it.
pub(crate) fn find_attribute<'a>(
    msg: &'a [u8],
    base: usize,
    field: u32,
    key: &[u8],
) -> Option<AnyValue<'a>> {
    let mut fields = Fields::new(msg, base);
    while let Ok(Some(f)) = fields.next_field() {
        if f.number != field || f.wire_type != LEN {
            continue;
        }
        let kv = f.payload(msg);
        // Encoders put the key first: reject non-matching keys without a full KeyValue parse.
        if kv.len() > key.len() + 1
            && kv[0] == 0x0a
            && usize::from(kv[1]) == key.len()
            && kv[1] < 0x80
            && &kv[2..2 + key.len()] != key
        {
            continue;
        }
        match parse_key_value(kv, base + f.value_start) {
            Ok((k, v)) if k == key => return Some(v),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}
