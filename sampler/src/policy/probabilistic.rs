//! `probabilistic`: the collector's hash, bit for bit, so that a trace gets the same decision
//! here and in the collector (see `testdata/gen_vectors.go` for the reference vectors).
//!
//! hash = FNV-1a 64 over the salt bytes then the 16 trace-ID bytes; sampled iff
//! `hash <= threshold`, where threshold = ⌊round₆₄(MaxUint64 × ratio)⌋ as Go's `big.Float`
//! computes it (product rounded to 64 significant bits, nearest-even, then truncated).

/// The salt the collector uses when `hash_salt` is empty.
pub const DEFAULT_HASH_SALT: &str = "default-hash-seed";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 continued from `state` over `bytes`.
#[inline]
pub fn fnv1a64(mut state: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        state ^= u64::from(*b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// The collector's `hashTraceID(salt, id)`.
pub fn hash_trace_id(salt: &str, trace_id: &[u8]) -> u64 {
    fnv1a64(fnv1a64(FNV_OFFSET, salt.as_bytes()), trace_id)
}

/// The collector's `calculateThreshold(ratio)`: MaxUint64 × ratio in 64-bit-precision binary
/// floating point (round to nearest even), converted to an integer by truncation, saturating.
pub fn threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio.is_infinite() {
        return u64::MAX;
    }
    let bits = ratio.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mantissa, exp) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    // Exact product: at most 53 + 64 = 117 bits.
    let product = u128::from(mantissa) * u128::from(u64::MAX);
    let (q, e) = round_to_64_bits(product, exp);
    if e >= 0 {
        if e >= 64 || q > (u128::from(u64::MAX) >> e) {
            u64::MAX
        } else {
            u64::try_from(q << e).unwrap_or(u64::MAX)
        }
    } else {
        let shift = (-e) as u32;
        if shift >= 128 {
            0
        } else {
            u64::try_from(q >> shift).unwrap_or(u64::MAX)
        }
    }
}

/// Rounds `value × 2^exp` to 64 significant bits (nearest, ties to even).
fn round_to_64_bits(value: u128, exp: i32) -> (u128, i32) {
    let len = 128 - value.leading_zeros();
    if len <= 64 {
        return (value, exp);
    }
    let s = len - 64;
    let mut q = value >> s;
    let rem = value & ((1u128 << s) - 1);
    let half = 1u128 << (s - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q += 1;
    }
    (q, exp + s as i32)
}

/// A configured probabilistic sampler.
#[derive(Debug, Clone)]
pub struct Probabilistic {
    salted_state: u64,
    threshold: u64,
}

impl Probabilistic {
    /// From the config (`sampling_percentage` in percent).
    pub fn new(hash_salt: &str, sampling_percentage: f64) -> Self {
        let salt = if hash_salt.is_empty() {
            DEFAULT_HASH_SALT
        } else {
            hash_salt
        };
        Probabilistic {
            salted_state: fnv1a64(FNV_OFFSET, salt.as_bytes()),
            threshold: threshold(sampling_percentage / 100.0),
        }
    }

    /// Sampled?
    #[inline]
    pub fn samples(&self, trace_id: &[u8; 16]) -> bool {
        fnv1a64(self.salted_state, trace_id) <= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // FNV-1a 64 of "" and "a" (published test vectors).
        assert_eq!(fnv1a64(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn threshold_edges() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(-1.0), 0);
        assert_eq!(threshold(1.0), u64::MAX);
        assert_eq!(threshold(2.0), u64::MAX);
        assert_eq!(threshold(0.5), (1u64 << 63) - 1);
    }
}
