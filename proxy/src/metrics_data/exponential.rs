//! A base-2 exponential histogram (OTLP `ExponentialHistogram`), aggregated as the collector's
//! `spanmetrics` connector does with `lightstep/go-expohisto`: scale starts at 20 and drops just
//! enough to keep each range (positive, negative) within `max_size` buckets; exact zeros go to the
//! zero count; min and max are kept.
//!
//! Bucket `i` at scale `s` holds the values in `(2^(i·2^-s), 2^((i+1)·2^-s)]`, so a value `v`
//! maps to `ceil(log2(v)·2^s) − 1`. Exact powers of two are mapped from their bits (no logarithm);
//! other values at positive scales use `floor(ln(v)·log2(e)·2^s)` like the Go code, so results
//! match it except where the platform's `ln` rounds differently within an ulp of a boundary.
//!
//! Merging two histograms gives the same scale and buckets as recording every value into one
//! (the merged scale is the largest one at which the union of both ranges fits), which is what
//! lets each core aggregate alone and the merger combine them on flush.

/// The largest (finest) scale, where every histogram starts.
pub const MAX_SCALE: i32 = 20;
/// `max_size` when the configuration leaves it at 0.
pub const DEFAULT_MAX_SIZE: u32 = 160;
/// The smallest `max_size` go-expohisto accepts (smaller values are raised to it).
pub const MIN_MAX_SIZE: u32 = 2;
/// The largest `max_size` go-expohisto accepts (larger values are lowered to it).
pub const MAX_MAX_SIZE: u32 = 16384;

/// IEEE 754 double: bits of the significand.
const SIGNIFICAND_WIDTH: u32 = 52;
const SIGNIFICAND_MASK: u64 = (1 << SIGNIFICAND_WIDTH) - 1;
const EXPONENT_BIAS: i32 = 1023;
/// Exponent of the smallest normal double (2^-1022).
const MIN_NORMAL_EXPONENT: i32 = -1022;
/// Exponent of the largest normal double.
const MAX_NORMAL_EXPONENT: i32 = 1023;

/// go-expohisto's handling of a configured `max_size`: 0 or negative means the default, and the
/// rest is clamped to `[2, 16384]`.
pub fn effective_max_size(configured: i64) -> u32 {
    if configured <= 0 {
        return DEFAULT_MAX_SIZE;
    }
    u32::try_from(configured.clamp(i64::from(MIN_MAX_SIZE), i64::from(MAX_MAX_SIZE)))
        .unwrap_or(DEFAULT_MAX_SIZE)
}

/// The unbiased base-2 exponent of a normal double (`f × 2^k`, `f` in `[1, 2)`).
fn normal_exponent(v: f64) -> i32 {
    ((v.to_bits() >> SIGNIFICAND_WIDTH) & 0x7ff) as i32 - EXPONENT_BIAS
}

/// The index of the bucket holding `v` (positive, finite) at `scale` (−10 ≤ scale ≤ 20).
pub fn map_to_index(v: f64, scale: i32) -> i32 {
    let significand = v.to_bits() & SIGNIFICAND_MASK;
    if scale > 0 {
        if v <= f64::MIN_POSITIVE {
            return (MIN_NORMAL_EXPONENT << scale) - 1;
        }
        if significand == 0 {
            // An exact power of two is the upper (inclusive) boundary of the bucket below.
            return (normal_exponent(v) << scale) - 1;
        }
        let factor = std::f64::consts::LOG2_E * f64::from(scale).exp2();
        let index = (v.ln() * factor).floor() as i32;
        let max = ((MAX_NORMAL_EXPONENT + 1) << scale) - 1;
        return index.min(max);
    }
    let shift = -scale;
    if v < f64::MIN_POSITIVE {
        let index = MIN_NORMAL_EXPONENT >> shift;
        return if shift < 2 { index - 1 } else { index };
    }
    let correction = if significand == 0 { -1 } else { 0 };
    (normal_exponent(v) + correction) >> shift
}

/// How many halvings make `[low, high]` span fewer than `size` indexes.
fn change_scale(mut low: i32, mut high: i32, size: u32) -> i32 {
    let mut change = 0;
    while i64::from(high) - i64::from(low) >= i64::from(size) {
        high >>= 1;
        low >>= 1;
        change += 1;
    }
    change
}

/// One range of buckets: `counts[i]` is the bucket with index `offset + i`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    /// Index of the first bucket (0 when there is none).
    pub offset: i32,
    /// Counts of consecutive buckets; empty when nothing was recorded in this range.
    pub counts: Vec<u64>,
}

impl Buckets {
    /// Index of the last bucket (meaningful when not empty).
    fn end(&self) -> i32 {
        self.offset + self.counts.len() as i32 - 1
    }

    /// `[low, high]` of the indexes after shifting right by `shift` (`None` when empty).
    fn range_at(&self, shift: i32) -> Option<(i32, i32)> {
        (!self.counts.is_empty()).then(|| (self.offset >> shift, self.end() >> shift))
    }

    /// The range once `index` is added.
    fn range_with(&self, index: i32) -> (i32, i32) {
        match self.range_at(0) {
            None => (index, index),
            Some((low, high)) => (low.min(index), high.max(index)),
        }
    }

    /// Adds `n` to bucket `index`, growing the range as needed (the caller checked the size).
    fn add(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        } else if index > self.end() {
            self.counts.resize((index - self.offset) as usize + 1, 0);
        }
        self.counts[(index - self.offset) as usize] += n;
    }

    /// Merges `2^by` adjacent buckets into one (index `i` becomes `i >> by`).
    fn downscale(&mut self, by: i32) {
        if by == 0 || self.counts.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.counts);
        let old_offset = self.offset;
        self.offset = old_offset >> by;
        for (i, c) in old.into_iter().enumerate() {
            let index = (old_offset + i as i32) >> by;
            let at = (index - self.offset) as usize;
            if at >= self.counts.len() {
                self.counts.resize(at + 1, 0);
            }
            self.counts[at] += c;
        }
    }
}

/// A base-2 exponential histogram of `f64` observations.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialHistogram {
    max_size: u32,
    scale: i32,
    count: u64,
    zero_count: u64,
    sum: f64,
    min: f64,
    max: f64,
    positive: Buckets,
    negative: Buckets,
}

impl ExponentialHistogram {
    /// An empty histogram at [`MAX_SCALE`] holding at most `max_size` buckets per range
    /// (clamped as [`effective_max_size`] does).
    pub fn new(max_size: u32) -> Self {
        ExponentialHistogram {
            max_size: effective_max_size(i64::from(max_size)),
            scale: MAX_SCALE,
            count: 0,
            zero_count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            positive: Buckets::default(),
            negative: Buckets::default(),
        }
    }

    /// Records one observation. NaN and infinities are ignored (span durations never are).
    pub fn record(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        if v == 0.0 {
            self.zero_count += 1;
            return;
        }
        self.sum += v;
        let magnitude = v.abs();
        let positive = v > 0.0;
        let index = map_to_index(magnitude, self.scale);
        let side = if positive {
            &self.positive
        } else {
            &self.negative
        };
        let (low, high) = side.range_with(index);
        let change = change_scale(low, high, self.max_size);
        let index = if change > 0 {
            self.downscale(change);
            map_to_index(magnitude, self.scale)
        } else {
            index
        };
        let side = if positive {
            &mut self.positive
        } else {
            &mut self.negative
        };
        side.add(index, 1);
    }

    fn downscale(&mut self, by: i32) {
        self.positive.downscale(by);
        self.negative.downscale(by);
        self.scale -= by;
    }

    /// Adds everything `other` recorded, at the largest scale where both fit.
    pub fn merge(&mut self, other: &ExponentialHistogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        self.zero_count += other.zero_count;
        self.sum += other.sum;
        let mut target = self.scale.min(other.scale);
        let mut change = 0;
        for (mine, theirs) in [
            (&self.positive, &other.positive),
            (&self.negative, &other.negative),
        ] {
            let a = mine.range_at(self.scale - target);
            let b = theirs.range_at(other.scale - target);
            let (low, high) = match (a, b) {
                (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
                (Some(r), None) | (None, Some(r)) => r,
                (None, None) => continue,
            };
            change = change.max(change_scale(low, high, self.max_size));
        }
        target -= change;
        self.downscale(self.scale - target);
        let shift = other.scale - target;
        for (mine, theirs) in [
            (&mut self.positive, &other.positive),
            (&mut self.negative, &other.negative),
        ] {
            for (i, &c) in theirs.counts.iter().enumerate() {
                if c > 0 {
                    mine.add((theirs.offset + i as i32) >> shift, c);
                }
            }
        }
    }

    /// The bucket limit per range.
    pub fn max_size(&self) -> u32 {
        self.max_size
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The scale as OTLP reports it: 0 when every observation was zero (go-expohisto's rule).
    pub fn scale(&self) -> i32 {
        if self.count == self.zero_count {
            0
        } else {
            self.scale
        }
    }

    /// Observations that were exactly zero.
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// Smallest and largest observation (`None` when empty).
    pub fn min_max(&self) -> Option<(f64, f64)> {
        (self.count > 0).then_some((self.min, self.max))
    }

    /// Buckets of the positive values.
    pub fn positive(&self) -> &Buckets {
        &self.positive
    }

    /// Buckets of the negative values (by magnitude).
    pub fn negative(&self) -> &Buckets {
        &self.negative
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The spec's formula `ceil(log2(v)·2^s) − 1`, for values away from bucket boundaries.
    fn spec_index(v: f64, scale: i32) -> i32 {
        ((v.log2() * f64::from(scale).exp2()).ceil()) as i32 - 1
    }

    #[test]
    fn powers_of_two_are_upper_boundaries() {
        // 1 = 2^0 is the upper boundary of bucket -1 at every scale; 2 of bucket 2^s - 1.
        for scale in [-4, -1, 0, 1, 3, 10, 20] {
            assert_eq!(map_to_index(1.0, scale), -1, "scale {scale}");
            let up = if scale >= 0 {
                (1 << scale) - 1
            } else {
                0 >> -scale
            };
            assert_eq!(map_to_index(2.0, scale), up, "scale {scale}");
        }
        assert_eq!(map_to_index(4.0, 0), 1);
        assert_eq!(map_to_index(0.25, 0), -3);
        assert_eq!(map_to_index(1024.0, 20), (10 << 20) - 1);
        // Just above a power of two falls in the next bucket.
        assert_eq!(map_to_index(f64::from_bits(4.0f64.to_bits() + 1), 0), 2);
        assert_eq!(map_to_index(f64::from_bits(1.0f64.to_bits() + 1), 20), 0);
    }

    #[test]
    fn indexes_follow_the_spec_formula() {
        // Known vectors: scale 0 buckets are (2^i, 2^(i+1)]; scale 1 halves them at sqrt(2).
        assert_eq!(map_to_index(3.0, 0), 1);
        assert_eq!(map_to_index(5.0, 0), 2);
        assert_eq!(map_to_index(1.3, 1), 0); // (1, 1.414]
        assert_eq!(map_to_index(1.5, 1), 1); // (1.414, 2]
        assert_eq!(map_to_index(3.0, 1), 3); // (2.828, 4]
        assert_eq!(map_to_index(0.7, 1), -2); // (0.5, 0.707]
        assert_eq!(map_to_index(100.0, -1), 3); // base 4: (4^3, 4^4]
        assert_eq!(map_to_index(100.0, -2), 1); // base 16: (16, 256]
        for scale in [1, 2, 5, 8, 12, 16, 20] {
            for v in [0.003, 0.9, 1.7, 5.0, 42.0, 123.456, 999.0, 7_000.5, 1e9] {
                assert_eq!(
                    map_to_index(v, scale),
                    spec_index(v, scale),
                    "v {v} scale {scale}"
                );
            }
        }
    }

    #[test]
    fn one_value_stays_at_scale_20() {
        let mut h = ExponentialHistogram::new(160);
        h.record(42.0);
        assert_eq!(h.scale(), 20);
        assert_eq!(h.positive().offset, spec_index(42.0, 20));
        assert_eq!(h.positive().counts, vec![1]);
        assert_eq!(
            (h.count(), h.sum(), h.min_max()),
            (1, 42.0, Some((42.0, 42.0)))
        );
    }

    #[test]
    fn zeros_keep_scale_0_and_no_buckets() {
        let mut h = ExponentialHistogram::new(0);
        h.record(0.0);
        h.record(0.0);
        assert_eq!((h.scale(), h.zero_count(), h.count()), (0, 2, 2));
        assert!(h.positive().counts.is_empty());
        h.record(3.0);
        assert_eq!(h.scale(), 20);
        assert_eq!(h.min_max(), Some((0.0, 3.0)));
    }

    #[test]
    fn downscales_to_fit_max_size() {
        // 1..=1024: 1.0 tops bucket -1 and 1024 = 2^10 tops bucket 10·2^s − 1, a span of 10·2^s
        // indexes, which must stay under 160: scale 3 (80 indexes, 81 buckets), not 4 (160).
        let mut h = ExponentialHistogram::new(160);
        for v in 1..=1024 {
            h.record(f64::from(v));
        }
        assert_eq!(h.scale(), 3);
        let p = h.positive();
        assert_eq!(p.offset, -1, "1.0 is the top of bucket -1");
        assert_eq!(p.counts.len(), 81);
        assert_eq!(h.count(), 1024);
        // Every value is in the bucket the formula names at the final scale.
        let mut expected = vec![0u64; 81];
        for v in 1..=1024 {
            expected[(map_to_index(f64::from(v), 3) - p.offset) as usize] += 1;
        }
        assert_eq!(p.counts, expected);
        // Without 1.0 the span is 2^s − 1 ..= 10·2^s − 1: scale 4 fits (144 < 160).
        let mut h = ExponentialHistogram::new(160);
        for v in 2..=1024 {
            h.record(f64::from(v));
        }
        assert_eq!((h.scale(), h.positive().offset), (4, 15));
        assert_eq!(h.positive().counts.len(), 145);
    }

    #[test]
    fn max_size_is_respected_and_clamped() {
        assert_eq!(effective_max_size(0), 160);
        assert_eq!(effective_max_size(-5), 160);
        assert_eq!(effective_max_size(1), 2);
        assert_eq!(effective_max_size(1 << 20), 16384);
        let mut h = ExponentialHistogram::new(4);
        for v in [0.001, 1.0, 1e3, 1e6] {
            h.record(v);
        }
        assert!(h.positive().counts.len() <= 4, "{h:?}");
        assert_eq!(h.positive().counts.iter().sum::<u64>(), 4);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let values: Vec<f64> = (0..500)
            .map(|i| f64::from((i * 7919) % 1000) * 0.37 + f64::from(i % 3) * 1e-3)
            .collect();
        for max_size in [2, 8, 20, 160] {
            let mut one = ExponentialHistogram::new(max_size);
            let mut parts = [
                ExponentialHistogram::new(max_size),
                ExponentialHistogram::new(max_size),
                ExponentialHistogram::new(max_size),
            ];
            for (i, v) in values.iter().enumerate() {
                one.record(*v);
                // Uneven split: part 0 sees the small values, the others a mix.
                parts[if *v < 50.0 { 0 } else { 1 + i % 2 }].record(*v);
            }
            let mut merged = ExponentialHistogram::new(max_size);
            for p in &parts {
                merged.merge(p);
            }
            assert_eq!(merged.scale(), one.scale(), "max_size {max_size}");
            assert_eq!(merged.positive(), one.positive(), "max_size {max_size}");
            assert_eq!(merged.zero_count(), one.zero_count());
            assert_eq!(merged.count(), one.count());
            assert_eq!(merged.min_max(), one.min_max());
            assert!((merged.sum() - one.sum()).abs() < 1e-6);
        }
    }

    #[test]
    fn negative_values_use_their_own_range() {
        let mut h = ExponentialHistogram::new(160);
        h.record(-2.0);
        h.record(3.0);
        assert_eq!(h.negative().offset, map_to_index(2.0, 20));
        assert_eq!(h.negative().counts, vec![1]);
        assert_eq!(h.min_max(), Some((-2.0, 3.0)));
        assert_eq!(h.sum(), 1.0);
    }
}
