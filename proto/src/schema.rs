//! Field tables and the one message check the receivers' walks of log records and metrics share:
//! the wire type of every known field, and the length of id fields, as the collector's pdata
//! refuses them when it unmarshals. (Spans keep their own check in [`crate::span`], with a fast
//! path measured for the trace receivers.)

use crate::error::{ScanError, SpanProblem};
use crate::wire::{Field, Fields, FIXED64, LEN};

/// A wire type in a schema that also accepts `LEN`: repeated scalar fields, which decoders take
/// packed (`LEN`) or one per field (`FIXED64`).
pub(crate) const PACKED_FIXED64: u8 = 0xf0;

/// A message's known fields: `fields[n]` is field `n`'s name and wire type (an empty name for
/// numbers that are not fields), and `ids` the id fields with their size.
#[derive(Debug)]
pub(crate) struct Schema {
    /// Name and wire type by field number.
    pub fields: &'static [(&'static str, u8)],
    /// Id fields (number, size): their payload is empty or exactly that many bytes.
    pub ids: &'static [(u32, u8)],
}

/// What is wrong with one message, before the caller adds where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The field's name; empty when the message does not walk.
    pub field: &'static str,
    /// What is wrong.
    pub problem: SpanProblem,
    /// Absolute offset.
    pub at: usize,
}

impl Fault {
    /// The message does not walk.
    pub fn malformed(e: ScanError) -> Self {
        Fault {
            field: "",
            problem: SpanProblem::Malformed(e.kind),
            at: e.at,
        }
    }
}

/// Walks the message `msg` (at absolute offset `base`), checking every known field of `schema`
/// and handing each known field, once checked, to `each` (to descend into sub-messages).
/// Unknown fields are skipped, as pdata keeps them.
#[inline]
pub(crate) fn check_message(
    msg: &[u8],
    base: usize,
    schema: &Schema,
    mut each: impl FnMut(&Field) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let mut fields = Fields::new(msg, base);
    while let Some(f) = fields.next_field().map_err(Fault::malformed)? {
        let Some(&(name, want)) = schema.fields.get(f.number as usize) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let ok = f.wire_type == want
            || (want == PACKED_FIXED64 && (f.wire_type == LEN || f.wire_type == FIXED64));
        if !ok {
            return Err(Fault {
                field: name,
                problem: SpanProblem::WireType {
                    got: f.wire_type,
                    want: if want == PACKED_FIXED64 { LEN } else { want },
                },
                at: base + f.start,
            });
        }
        if let Some(&(_, size)) = schema.ids.iter().find(|(n, _)| *n == f.number) {
            let len = f.end - f.value_start;
            if len != 0 && len != usize::from(size) {
                return Err(Fault {
                    field: name,
                    problem: SpanProblem::IdLength { len, want: size },
                    at: base + f.start,
                });
            }
        }
        each(&f)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ScanErrorKind;
    use crate::wire::VARINT;

    const S: Schema = Schema {
        fields: &[
            ("", LEN),
            ("id", LEN),
            ("n", VARINT),
            ("", LEN),
            ("v", PACKED_FIXED64),
        ],
        ids: &[(1, 2)],
    };

    fn check(msg: &[u8]) -> Result<(), Fault> {
        check_message(msg, 10, &S, |_| Ok(()))
    }

    #[test]
    fn wire_types_ids_and_packed_fields() {
        assert_eq!(check(&[0x0a, 2, 1, 2, 0x10, 1, 0x18, 5]), Ok(()));
        assert_eq!(check(&[0x0a, 0]), Ok(()));
        assert_eq!(
            check(&[0x10, 1, 0x0a, 1, 9]),
            Err(Fault {
                field: "id",
                problem: SpanProblem::IdLength { len: 1, want: 2 },
                at: 12
            })
        );
        assert_eq!(
            check(&[0x12, 0]).unwrap_err().problem,
            SpanProblem::WireType { got: 2, want: 0 }
        );
        assert_eq!(check(&[0x22, 0]), Ok(()));
        assert_eq!(check(&[0x21, 0, 0, 0, 0, 0, 0, 0, 0]), Ok(()));
        assert_eq!(
            check(&[0x20, 0]).unwrap_err().problem,
            SpanProblem::WireType { got: 0, want: 2 }
        );
        assert_eq!(
            check(&[0x0a, 5]).unwrap_err().problem,
            SpanProblem::Malformed(ScanErrorKind::Truncated)
        );
    }
}
