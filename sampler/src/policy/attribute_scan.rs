//! One scan of a trace's attributes answering every attribute policy of a decision.
//!
//! Evaluated one by one, each `string_attribute`, `numeric_attribute` and `boolean_attribute`
//! policy walks every span's attributes and its resource's attributes. Here the policies (also
//! those nested in `and`, `not`, `drop` and `composite`) are gathered first, with their distinct
//! keys; each span's attributes are then walked once for all the keys, and a resource shared by
//! several spans of the trace ([`SpanData::same_resource`]) is looked at once. The answers are
//! the per-policy ones: a policy matches if some span's first attribute with its key matches
//! its span rule, or some span's resource's first attribute with the key matches its resource
//! rule. Policies find their answer by identity ([`AttributeHits::get`]).

use super::{attribute, Policy, TraceView};
use crate::span::{AttrValue, SpanData};

/// Attribute policies one scan answers; with more, the policies scan one by one.
const MAX_LEAVES: usize = 64;
/// Distinct resources remembered per scan (the most recent ones).
const RESOURCE_MEMO: usize = 4;

/// Where an attribute was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Among the resource's attributes.
    Resource,
    /// Among the span's attributes.
    Span,
}

/// An attribute policy and the index of its key in the scan's key list.
#[derive(Clone, Copy)]
struct Leaf<'p> {
    policy: &'p Policy,
    key: usize,
}

/// The attribute policies of a set of policies and their distinct keys.
struct Plan<'p> {
    leaves: [Option<Leaf<'p>>; MAX_LEAVES],
    len: usize,
    keys: [&'p str; MAX_LEAVES],
    key_count: usize,
}

impl<'p> Plan<'p> {
    fn new() -> Self {
        Plan {
            leaves: [None; MAX_LEAVES],
            len: 0,
            keys: [""; MAX_LEAVES],
            key_count: 0,
        }
    }

    /// Adds the attribute policies in `policy`'s tree; `None` when there are too many.
    fn gather(&mut self, policy: &'p Policy) -> Option<()> {
        if let Some(key) = policy.attribute_key() {
            if self.len == MAX_LEAVES {
                return None;
            }
            let known = self.keys[..self.key_count].iter().position(|k| *k == key);
            let key = known.unwrap_or_else(|| {
                self.keys[self.key_count] = key;
                self.key_count += 1;
                self.key_count - 1
            });
            self.leaves[self.len] = Some(Leaf { policy, key });
            self.len += 1;
            return Some(());
        }
        policy.sub_policies().try_for_each(|sub| self.gather(sub))
    }

    /// Marks in `hits` the not yet matched policies of key `key` that `value` matches.
    fn test(&self, key: usize, value: &AttrValue<'_>, side: Side, hits: &mut u64) {
        for (i, leaf) in self.leaves[..self.len].iter().flatten().enumerate() {
            if leaf.key == key && *hits & (1 << i) == 0 && leaf.policy.attribute_test(value, side) {
                *hits |= 1 << i;
            }
        }
    }
}

/// Which attribute policies matched the trace, by policy identity.
#[derive(Debug)]
pub(super) struct AttributeHits {
    /// Addresses of the policies scanned.
    ids: [usize; MAX_LEAVES],
    len: usize,
    /// Bit `i`: policy `ids[i]` matched.
    hits: u64,
}

impl AttributeHits {
    /// The scan's answer for `policy`; `None` if it was not scanned.
    pub(super) fn get(&self, policy: &Policy) -> Option<bool> {
        let id = std::ptr::from_ref(policy) as usize;
        let i = self.ids[..self.len].iter().position(|&x| x == id)?;
        Some(self.hits & (1 << i) != 0)
    }
}

/// True if `policy` or a policy nested in it is an attribute policy.
pub(super) fn has_attribute_policy(policy: &Policy) -> bool {
    policy.attribute_key().is_some() || policy.sub_policies().any(has_attribute_policy)
}

/// Answers every attribute policy in `policies` (at any depth) with one walk of each span's
/// attributes; `None` when there are none, too many, or the spans are not a slice (the policies
/// then scan one by one, with the same answers).
pub(super) fn scan<S: SpanData>(
    policies: &[Policy],
    trace: &TraceView<'_, S>,
) -> Option<AttributeHits> {
    let spans = trace.spans.as_slice()?;
    let mut plan = Plan::new();
    policies.iter().try_for_each(|p| plan.gather(p))?;
    if plan.len == 0 {
        return None;
    }
    let all = u64::MAX >> (64 - plan.len);
    let keys = &plan.keys[..plan.key_count];
    let mut hits = 0u64;
    let mut seen: [Option<&S>; RESOURCE_MEMO] = [None; RESOURCE_MEMO];
    let mut next = 0;
    for span in spans {
        if hits == all {
            break;
        }
        if !seen.iter().flatten().any(|r| span.same_resource(r)) {
            seen[next % RESOURCE_MEMO] = Some(span);
            next += 1;
            span.resource_attributes_of(keys, &mut |k, v| {
                plan.test(k, &v, Side::Resource, &mut hits)
            });
        }
        span.span_attributes_of(keys, &mut |k, v| plan.test(k, &v, Side::Span, &mut hits));
    }
    let mut ids = [0; MAX_LEAVES];
    for (id, leaf) in ids.iter_mut().zip(plan.leaves[..plan.len].iter().flatten()) {
        *id = std::ptr::from_ref(leaf.policy) as usize;
    }
    Some(AttributeHits {
        ids,
        len: plan.len,
        hits,
    })
}

/// The per-policy answer, scanning for this policy alone.
pub(super) fn scan_one<S: SpanData>(policy: &Policy, key: &str, trace: &TraceView<'_, S>) -> bool {
    attribute::any_attr(
        trace,
        key,
        |v| policy.attribute_test(v, Side::Resource),
        |v| policy.attribute_test(v, Side::Span),
    )
}
