//! What a sink received, as a file `check` can join with the manifest.
//!
//! # File format
//! Binary, 24 bytes per received span (duplicates included) after an 8-byte magic:
//! ```text
//! b"TGOBSV01"
//! repeat: trace_id [16] | span_id [8]
//! ```
//! One file per sink; `check` names each sink after its file stem.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::manifest::read_record;
use crate::sink::SpanKey;

/// Magic at the start of an observations file.
pub const MAGIC: &[u8; 8] = b"TGOBSV01";
const RECORD: usize = 24;

/// Writes span keys in the observations format.
pub fn write(mut out: impl Write, keys: &[SpanKey]) -> io::Result<()> {
    out.write_all(MAGIC)?;
    for k in keys {
        out.write_all(&k.trace_id)?;
        out.write_all(&k.span_id)?;
    }
    out.flush()
}

/// Writes an observations file.
pub fn write_file(path: &Path, keys: &[SpanKey]) -> io::Result<()> {
    write(BufWriter::new(File::create(path)?), keys)
}

/// Reads every span key of an observations stream.
pub fn read(input: impl Read) -> io::Result<Vec<SpanKey>> {
    let mut input = BufReader::new(input);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a tailgate-perf observations file (bad magic)",
        ));
    }
    let mut out = Vec::new();
    let mut rec = [0u8; RECORD];
    loop {
        match read_record(&mut input, &mut rec)? {
            0 => return Ok(out),
            RECORD => {
                let mut key = SpanKey {
                    trace_id: [0; 16],
                    span_id: [0; 8],
                };
                key.trace_id.copy_from_slice(&rec[..16]);
                key.span_id.copy_from_slice(&rec[16..]);
                out.push(key);
            }
            n => {
                let at = 8 + out.len() * RECORD + n;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("observations end inside a record at byte {at}"),
                ));
            }
        }
    }
}

/// Reads an observations file.
pub fn read_file(path: &Path) -> io::Result<Vec<SpanKey>> {
    read(File::open(path)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let keys: Vec<SpanKey> = (0..5u8)
            .map(|i| SpanKey {
                trace_id: [i; 16],
                span_id: [i + 1; 8],
            })
            .collect();
        let mut buf = Vec::new();
        write(&mut buf, &keys).unwrap();
        assert_eq!(buf.len(), 8 + 24 * 5);
        assert_eq!(read(&buf[..]).unwrap(), keys);
        assert!(read(&buf[..buf.len() - 3]).is_err());
        assert!(read(&b"TGMANIF1"[..]).is_err());
    }
}
