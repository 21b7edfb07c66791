//! The rate-based policies: `rate_limiting`, `bytes_limiting` and `composite`. Their state is per
//! engine (per shard); time comes from the engine's clock.

use super::attribute_scan::AttributeHits;
use super::{Decision, Policy, TraceView};
use crate::span::SpanData;

const NS_PER_SEC: u64 = 1_000_000_000;

/// `rate_limiting`: counts spans of sampled traces per wall-clock second; a trace is sampled while
/// the count including it stays strictly below `spans_per_second` (the collector's `<`).
#[derive(Debug)]
pub struct RateLimiter {
    spans_per_second: i64,
    current_second: u64,
    spans_in_second: i64,
}

impl RateLimiter {
    /// A limiter with the given rate.
    pub fn new(spans_per_second: i64) -> Self {
        RateLimiter {
            spans_per_second,
            current_second: u64::MAX,
            spans_in_second: 0,
        }
    }

    /// Admits a trace of `spans` spans at `now_ns`?
    pub fn allow(&mut self, spans: u64, now_ns: u64) -> bool {
        let second = now_ns / NS_PER_SEC;
        if second != self.current_second {
            self.current_second = second;
            self.spans_in_second = 0;
        }
        let if_sampled = self.spans_in_second.saturating_add(spans as i64);
        if if_sampled < self.spans_per_second {
            self.spans_in_second = if_sampled;
            true
        } else {
            false
        }
    }
}

/// `bytes_limiting`: a token bucket (as `golang.org/x/time/rate`): starts full at `burst`,
/// refills at `rate` bytes per second, a trace passes if its bytes are available.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ns: Option<u64>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(bytes_per_second: i64, burst: i64) -> Self {
        TokenBucket {
            rate: bytes_per_second as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last_ns: None,
        }
    }

    /// Takes `bytes` tokens at `now_ns` if available.
    pub fn allow(&mut self, bytes: u64, now_ns: u64) -> bool {
        if let Some(last) = self.last_ns {
            let elapsed = now_ns.saturating_sub(last) as f64 / NS_PER_SEC as f64;
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last_ns = Some(now_ns.max(self.last_ns.unwrap_or(0)));
        let need = bytes as f64;
        if need <= self.tokens {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct SubPolicy {
    policy: Policy,
    allocated_sps: i64,
    sampled_sps: i64,
}

/// The sub-policies of a [`Composite`], in order.
pub(super) struct CompositeSubs<'a>(std::slice::Iter<'a, SubPolicy>);

impl<'a> Iterator for CompositeSubs<'a> {
    type Item = &'a Policy;

    fn next(&mut self) -> Option<&'a Policy> {
        self.0.next().map(|s| &s.policy)
    }
}

/// `composite`: sub-policies in list order; the first that samples gets the trace if its
/// per-second span allocation (and the total) still has room, otherwise the trace is not sampled.
#[derive(Debug)]
pub struct Composite {
    max_total_sps: i64,
    subs: Vec<SubPolicy>,
    current_second: u64,
}

impl Composite {
    /// Sub-policies with their allocated spans per second.
    pub fn new(max_total_sps: i64, subs: Vec<(Policy, i64)>) -> Self {
        Composite {
            max_total_sps,
            subs: subs
                .into_iter()
                .map(|(policy, allocated_sps)| SubPolicy {
                    policy,
                    allocated_sps,
                    sampled_sps: 0,
                })
                .collect(),
            current_second: u64::MAX,
        }
    }

    /// Evaluates as the collector's composite evaluator.
    pub fn evaluate<S: SpanData>(&mut self, trace: &TraceView<'_, S>, now_ns: u64) -> Decision {
        self.evaluate_with(trace, now_ns, None)
    }

    /// The sub-policies, in order.
    pub(super) fn policies(&self) -> CompositeSubs<'_> {
        CompositeSubs(self.subs.iter())
    }

    /// [`Self::evaluate`], with the attribute policies' answers from `hits` where it has them.
    pub(super) fn evaluate_with<S: SpanData>(
        &mut self,
        trace: &TraceView<'_, S>,
        now_ns: u64,
        hits: Option<&AttributeHits>,
    ) -> Decision {
        let second = now_ns / NS_PER_SEC;
        if second != self.current_second {
            self.current_second = second;
            self.subs.iter_mut().for_each(|s| s.sampled_sps = 0);
        }
        let spans = trace.summary.span_count as i64;
        for sub in self.subs.iter_mut() {
            let d = sub.policy.evaluate_with(trace, now_ns, hits);
            if matches!(d, Decision::Sampled | Decision::InvertSampled) {
                let if_sampled = sub.sampled_sps.saturating_add(spans);
                if if_sampled <= sub.allocated_sps && if_sampled <= self.max_total_sps {
                    sub.sampled_sps = if_sampled;
                    return Decision::Sampled;
                }
                // Over its allocation: not sampled; the counter is left alone so that a smaller
                // trace may still fit this second.
                return Decision::NotSampled;
            }
        }
        Decision::NotSampled
    }
}
