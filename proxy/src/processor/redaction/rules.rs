//! The redaction of one attribute list, as contrib v0.115.0's `processAttrs` does it.
//!
//! For each attribute, in order: a key in `ignored_keys` is counted and left alone; otherwise a
//! key not allowed (`allow_all_keys` false and the key not in `allowed_keys` nor one of the
//! summary keys) is removed; otherwise the value's string (`Value.Str()`: the empty string for
//! a value that is not a string) is passed through every `blocked_values` pattern in turn, each
//! match replaced by `****`, and if that changed it the attribute becomes that string. Then the
//! summary attributes are written (redacted keys and count, masked keys and count, ignored
//! count), adding to any an earlier redaction wrote.

use std::borrow::Cow;
use std::collections::HashSet;

use regex::bytes::{NoExpand, Regex};
use tailgate_proto::attributes::{AnyValue, Attributes};
use tailgate_proto::rewrite::{AttrEdits, Pending};
use tailgate_proto::ScanError;

/// What a blocked value's match is replaced by (contrib's mask).
pub const MASK: &[u8] = b"****";
/// `redaction.redacted.keys`: the removed keys, sorted, comma-separated (`debug`).
pub const REDACTED_KEYS: &str = "redaction.redacted.keys";
/// `redaction.redacted.count`: how many keys were removed (`info`, `debug`).
pub const REDACTED_COUNT: &str = "redaction.redacted.count";
/// `redaction.masked.keys`: the keys whose values were masked, sorted, comma-separated (`debug`).
pub const MASKED_KEYS: &str = "redaction.masked.keys";
/// `redaction.masked.count`: how many values were masked (`info`, `debug`).
pub const MASKED_COUNT: &str = "redaction.masked.count";
/// `redaction.ignored.count`: how many attributes were ignored (`info`, `debug`).
pub const IGNORED_COUNT: &str = "redaction.ignored.count";

/// The summary keys, always allowed so that a later redaction keeps an earlier one's summary.
const SUMMARY_KEYS: [&str; 5] = [
    REDACTED_KEYS,
    REDACTED_COUNT,
    MASKED_KEYS,
    MASKED_COUNT,
    IGNORED_COUNT,
];
/// Separator of the key lists (contrib's `attrValuesSeparator`).
const SEPARATOR: u8 = b',';

/// How much the processor writes about what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Nothing.
    Silent,
    /// The counts.
    Info,
    /// The counts and the key lists.
    Debug,
}

/// The compiled rules of one `redaction` processor.
#[derive(Debug, Clone)]
pub struct Rules {
    allow_all_keys: bool,
    /// `allowed_keys` and the summary keys.
    allowed: HashSet<Box<[u8]>>,
    ignored: HashSet<Box<[u8]>>,
    blocked: Vec<Regex>,
    summary: Summary,
}

/// What one list's redaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListStats {
    /// Attributes removed.
    pub redacted: usize,
    /// Values masked.
    pub masked: usize,
    /// Attributes ignored.
    pub ignored: usize,
}

impl Rules {
    /// Rules from the (validated) keys.
    pub fn new(
        allow_all_keys: bool,
        allowed_keys: &[String],
        ignored_keys: &[String],
        blocked: Vec<Regex>,
        summary: Summary,
    ) -> Self {
        let set = |keys: &mut dyn Iterator<Item = &str>| -> HashSet<Box<[u8]>> {
            keys.map(|k| k.as_bytes().into()).collect()
        };
        Rules {
            allow_all_keys,
            allowed: set(&mut allowed_keys.iter().map(String::as_str).chain(SUMMARY_KEYS)),
            ignored: set(&mut ignored_keys.iter().map(String::as_str)),
            blocked,
            summary,
        }
    }

    /// Asks `edits` for the redaction of the list `attrs`.
    pub fn redact(
        &self,
        attrs: Attributes<'_>,
        edits: &mut AttrEdits,
    ) -> Result<ListStats, ScanError> {
        let mut redacted: Vec<&[u8]> = Vec::new();
        let mut masked: Vec<&[u8]> = Vec::new();
        let mut ignored = 0;
        // The first value of each summary key as it came (pdata's `Get` finds the first).
        let mut earlier: [Option<AnyValue<'_>>; 5] = [None; 5];
        for kv in attrs {
            let (key, value) = kv?;
            if let Some(i) = SUMMARY_KEYS.iter().position(|s| s.as_bytes() == key) {
                earlier[i].get_or_insert(value);
            }
            if self.ignored.contains(key) {
                ignored += 1;
                continue;
            }
            if !self.allow_all_keys && !self.allowed.contains(key) {
                redacted.push(key);
                continue;
            }
            let text = match value {
                AnyValue::String(s) => s,
                _ => &[],
            };
            if let Some(m) = self.mask(text) {
                masked.push(key);
                edits.set(key, AnyValue::String(&m));
            }
        }
        for key in &redacted {
            edits.delete(key);
        }
        let stats = ListStats {
            redacted: redacted.len(),
            masked: masked.len(),
            ignored,
        };
        self.add_summary(&redacted, Some(0), 1, &earlier, edits);
        self.add_summary(&masked, Some(2), 3, &earlier, edits);
        // Contrib lists the ignored keys too, but writes only their count.
        let unlisted = vec![&[][..]; ignored];
        self.add_summary(&unlisted, None, 4, &earlier, edits);
        Ok(stats)
    }

    /// The value with every blocked pattern's matches masked, pattern after pattern; `None` if
    /// that leaves it as it was.
    pub fn mask(&self, value: &[u8]) -> Option<Vec<u8>> {
        let mut current = Cow::Borrowed(value);
        for re in &self.blocked {
            if let Cow::Owned(m) = re.replace_all(&current, NoExpand(MASK)) {
                current = Cow::Owned(m);
            }
        }
        match current {
            Cow::Owned(m) if m != value => Some(m),
            _ => None,
        }
    }

    /// Contrib's `addMetaAttrs`: with `debug`, the sorted union of `keys` and the list already
    /// under `SUMMARY_KEYS[list]`; with `info` or `debug`, the count under `SUMMARY_KEYS[count]`
    /// plus the integer already there. Nothing when `keys` is empty.
    fn add_summary(
        &self,
        keys: &[&[u8]],
        list: Option<usize>,
        count: usize,
        earlier: &[Option<AnyValue<'_>>; 5],
        edits: &mut AttrEdits,
    ) {
        if keys.is_empty() || self.summary == Summary::Silent {
            return;
        }
        let mut total = keys.len() as i64;
        if let (Summary::Debug, Some(list)) = (self.summary, list) {
            let before = match current(SUMMARY_KEYS[list], earlier[list], edits) {
                Current::String(s) => s,
                _ => Vec::new(),
            };
            let mut all: Vec<&[u8]> = keys.to_vec();
            if !before.is_empty() {
                all.extend(before.split(|b| *b == SEPARATOR));
            }
            all.sort_unstable();
            let joined = all.join(&SEPARATOR);
            edits.set(SUMMARY_KEYS[list], AnyValue::String(&joined));
        }
        if let Current::Int(n) = current(SUMMARY_KEYS[count], earlier[count], edits) {
            total = total.wrapping_add(n);
        }
        edits.set(SUMMARY_KEYS[count], AnyValue::Int(total));
    }
}

/// A summary key's value as pdata would read it mid-pass (owned: the edits are written to next).
enum Current {
    Absent,
    String(Vec<u8>),
    Int(i64),
    Other,
}

/// The value of `key` with the edits made so far applied to what came.
fn current(key: &str, earlier: Option<AnyValue<'_>>, edits: &AttrEdits) -> Current {
    let value = match edits.pending(key) {
        Some(Pending::Deleted) => return Current::Absent,
        Some(Pending::Set(v)) => Some(v),
        None => earlier,
    };
    match value {
        None => Current::Absent,
        Some(AnyValue::String(s)) => Current::String(s.to_vec()),
        Some(AnyValue::Int(n)) => Current::Int(n),
        Some(_) => Current::Other,
    }
}
