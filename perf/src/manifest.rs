//! The ground-truth manifest: what the load generator sent, one record per trace.
//!
//! # File format
//! Binary, little-endian, 21 bytes per trace after an 8-byte magic:
//! ```text
//! b"TGMANIF1"
//! repeat: trace_id [16] | span_count u32 LE | flags u8 (bit 0 = has error, bit 1 = slow)
//! ```
//! A million traces take 21 MB. Records are appended as traces finish, so the file can be read
//! while a run is still going (a partial last record is an error, reported with its offset).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Magic at the start of a manifest file.
pub const MAGIC: &[u8; 8] = b"TGMANIF1";
const RECORD: usize = 21;

/// The truth about one sent trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ManifestEntry {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// Spans sent for this trace (all distinct).
    pub spans: u32,
    /// One span has status ERROR.
    pub error: bool,
    /// The root span lasts longer than the slow threshold.
    pub slow: bool,
}

impl ManifestEntry {
    fn encode(&self) -> [u8; RECORD] {
        let mut out = [0u8; RECORD];
        out[..16].copy_from_slice(&self.trace_id);
        out[16..20].copy_from_slice(&self.spans.to_le_bytes());
        out[20] = u8::from(self.error) | (u8::from(self.slow) << 1);
        out
    }

    fn decode(rec: &[u8; RECORD]) -> Self {
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&rec[..16]);
        ManifestEntry {
            trace_id,
            spans: u32::from_le_bytes([rec[16], rec[17], rec[18], rec[19]]),
            error: rec[20] & 1 != 0,
            slow: rec[20] & 2 != 0,
        }
    }
}

/// Appends manifest records to a writer.
#[derive(Debug)]
pub struct ManifestWriter<W: Write> {
    out: W,
    written: u64,
}

impl ManifestWriter<BufWriter<File>> {
    /// Creates (truncates) a manifest file.
    pub fn create(path: &Path) -> io::Result<Self> {
        ManifestWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> ManifestWriter<W> {
    /// Writes the magic.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(ManifestWriter { out, written: 0 })
    }

    /// Appends one record.
    pub fn push(&mut self, entry: &ManifestEntry) -> io::Result<()> {
        self.written += 1;
        self.out.write_all(&entry.encode())
    }

    /// Records written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads every record of a manifest.
pub fn read(input: impl Read) -> io::Result<Vec<ManifestEntry>> {
    let mut input = BufReader::new(input);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a tailgate-perf manifest (bad magic)",
        ));
    }
    let mut out = Vec::new();
    let mut rec = [0u8; RECORD];
    loop {
        match read_record(&mut input, &mut rec)? {
            0 => return Ok(out),
            RECORD => out.push(ManifestEntry::decode(&rec)),
            n => {
                let at = 8 + out.len() * RECORD + n;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("manifest ends inside a record at byte {at}"),
                ));
            }
        }
    }
}

/// Reads a manifest file.
pub fn read_file(path: &Path) -> io::Result<Vec<ManifestEntry>> {
    read(File::open(path)?)
}

/// Fills `buf` as far as the input goes; returns how many bytes were read.
pub(crate) fn read_record(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip(entries in prop::collection::vec(
            (any::<[u8; 16]>(), any::<u32>(), any::<bool>(), any::<bool>()), 0..50)) {
            let entries: Vec<_> = entries.into_iter()
                .map(|(trace_id, spans, error, slow)| ManifestEntry { trace_id, spans, error, slow })
                .collect();
            let mut w = ManifestWriter::new(Vec::new()).unwrap();
            for e in &entries { w.push(e).unwrap(); }
            let bytes = w.finish().unwrap();
            prop_assert_eq!(bytes.len(), 8 + 21 * entries.len());
            prop_assert_eq!(read(&bytes[..]).unwrap(), entries);
        }
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let mut w = ManifestWriter::new(Vec::new()).unwrap();
        w.push(&ManifestEntry {
            trace_id: [1; 16],
            spans: 3,
            error: true,
            slow: false,
        })
        .unwrap();
        let bytes = w.finish().unwrap();
        let err = read(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("byte 28"), "{err}");
        assert!(read(&b"NOTAMANI"[..]).is_err());
    }
}
