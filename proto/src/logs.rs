//! `ExportLogsServiceRequest` without decoding: count, check and route log records.
//!
//! The request's envelope has the trace request's field numbers (`resource_logs` 1 →
//! `ResourceLogs{resource 1, scope_logs 2, schema_url 3}` → `ScopeLogs{scope 1, log_records 2,
//! schema_url 3}`), so the one structural walk of [`crate::scan`] serves it, and
//! [`crate::split::Splitter::split_logs`] splits it with the trace splitter's two passes. What is
//! particular to logs is here: the `LogRecord` fields (`logs.proto`), the receivers' check of each
//! record, and [`LogRecordRef`], what the split callback sees.

use crate::attributes::{find_attribute, AnyValue, Attributes};
use crate::error::{InvalidItem, ScanError, Signal, SignalError};
use crate::scan::walk_items;
use crate::schema::{check_message, Schema};
use crate::view::{ResourceRef, ScopeRef};
use crate::wire::{Fields, FIXED32, FIXED64, LEN, VARINT};

/// `LogRecord.attributes`.
const ATTRIBUTES: u32 = 6;
/// `LogRecord.trace_id`, `LogRecord.span_id`.
const TRACE_ID: u32 = 9;
const SPAN_ID: u32 = 10;

/// `LogRecord` (`opentelemetry/proto/logs/v1/logs.proto`), field 4 reserved.
const LOG_RECORD: Schema = Schema {
    fields: &[
        ("", LEN),
        ("time_unix_nano", FIXED64),
        ("severity_number", VARINT),
        ("severity_text", LEN),
        ("", LEN),
        ("body", LEN),
        ("attributes", LEN),
        ("dropped_attributes_count", VARINT),
        ("flags", FIXED32),
        ("trace_id", LEN),
        ("span_id", LEN),
        ("observed_time_unix_nano", FIXED64),
        ("event_name", LEN),
    ],
    ids: &[(TRACE_ID, 16), (SPAN_ID, 8)],
};

/// Counts the log records of an `ExportLogsServiceRequest` (the collector's unit for logs:
/// `otelcol_receiver_accepted_log_records`) with the structural walk's checks, allocating nothing.
pub fn count_log_records(buf: &[u8]) -> Result<usize, ScanError> {
    let mut n = 0;
    walk_items(buf, |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// What the receivers run on every logs request: [`count_log_records`]'s walk and, in the same
/// pass, every record checked as pdata checks it when it unmarshals (the wire type of every known
/// `LogRecord` field; `trace_id` 0 or 16 bytes, `span_id` 0 or 8). Returns the record count, or
/// the first bad record with the count ([`SignalError::Invalid`]). Not entered: the body and
/// attribute values, and string contents (pdata does not check UTF-8 either).
pub fn check_log_records(buf: &[u8]) -> Result<usize, SignalError> {
    let mut n = 0;
    let mut first: Option<InvalidItem> = None;
    walk_items(buf, |at| {
        if first.is_none() {
            let record = &buf[at.start..at.end];
            if let Err(f) = check_message(record, at.start, &LOG_RECORD, |_| Ok(())) {
                first = Some(InvalidItem {
                    signal: Signal::Logs,
                    resource: at.resource,
                    scope: at.scope,
                    item: at.item,
                    data: None,
                    exemplar: None,
                    field: f.field,
                    problem: f.problem,
                    at: f.at,
                });
            }
        }
        n += 1;
        Ok(())
    })?;
    match first {
        None => Ok(n),
        Some(first) => Err(SignalError::Invalid { first, items: n }),
    }
}

/// One log record inside a request, borrowed, with its resource and scope: what
/// [`crate::split::Splitter::split_logs`] hands the routing function.
#[derive(Debug, Clone, Copy)]
pub struct LogRecordRef<'a> {
    bytes: &'a [u8],
    base: usize,
    resource: ResourceRef<'a>,
    scope: ScopeRef<'a>,
    resource_index: u32,
    scope_index: u32,
}

impl<'a> LogRecordRef<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        base: usize,
        (resource, resource_index): (ResourceRef<'a>, u32),
        (scope, scope_index): (ScopeRef<'a>, u32),
    ) -> Self {
        Self {
            bytes,
            base,
            resource,
            scope,
            resource_index,
            scope_index,
        }
    }

    /// The encoded LogRecord message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The trace id bytes (16 in a record of a trace; empty if absent or unreadable). The first
    /// occurrence, as [`crate::SpanRef::trace_id`].
    pub fn trace_id(&self) -> &'a [u8] {
        self.bytes_field(TRACE_ID)
    }

    /// The span id bytes (8, or empty).
    pub fn span_id(&self) -> &'a [u8] {
        self.bytes_field(SPAN_ID)
    }

    /// The first record attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        find_attribute(self.bytes, self.base, ATTRIBUTES, key.as_bytes())
    }

    /// The record's attributes, in wire order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.bytes, self.base, ATTRIBUTES)
    }

    /// The record's resource (attributes, `service.name`).
    pub fn resource(&self) -> ResourceRef<'a> {
        self.resource
    }

    /// The record's instrumentation scope.
    pub fn scope(&self) -> ScopeRef<'a> {
        self.scope
    }

    /// Index of the record's resource in the request: records with the same index share the
    /// resource, so a key computed from the resource can be cached by it.
    pub fn resource_index(&self) -> u32 {
        self.resource_index
    }

    /// Index of the record's scope among all the request's scopes.
    pub fn scope_index(&self) -> u32 {
        self.scope_index
    }

    /// The payload of the first length-delimited field `number`, or empty.
    fn bytes_field(&self, number: u32) -> &'a [u8] {
        let mut fields = Fields::new(self.bytes, self.base);
        while let Ok(Some(f)) = fields.next_field() {
            if f.number == number && f.wire_type == LEN {
                return f.payload(self.bytes);
            }
        }
        &[]
    }
}
