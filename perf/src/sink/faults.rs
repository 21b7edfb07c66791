//! Fault injection: answer slowly, or refuse a fraction of requests with a chosen status.

use std::time::Duration;

use crate::grpc::GrpcStatus;

/// How the sink misbehaves. Changeable while it runs ([`super::Sink::set_faults`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Wait this long before answering each request (a slow backend).
    pub delay: Duration,
    /// Fraction of requests to refuse, 0.0..=1.0.
    pub fail_fraction: f64,
    /// Status of refused requests (HTTP requests get the matching HTTP status).
    pub fail_status: GrpcStatus,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::none()
    }
}

impl Faults {
    /// A well-behaved sink.
    pub fn none() -> Self {
        Faults {
            delay: Duration::ZERO,
            fail_fraction: 0.0,
            fail_status: GrpcStatus::UNAVAILABLE,
        }
    }

    /// Refuses every request with `status`.
    pub fn fail_all(status: GrpcStatus) -> Self {
        Faults {
            fail_fraction: 1.0,
            fail_status: status,
            ..Faults::none()
        }
    }

    /// Whether the request with this index (0-based, counting well-formed requests) is refused.
    ///
    /// Deterministic and evenly spread rather than random, so a test can say exactly which
    /// requests fail: with 0.25, requests 3, 7, 11, ... fail.
    pub fn fails(&self, index: u64) -> bool {
        let f = self.fail_fraction.clamp(0.0, 1.0);
        let before = (index as f64 * f).floor();
        let after = ((index + 1) as f64 * f).floor();
        after > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_is_spread_evenly() {
        let f = Faults {
            fail_fraction: 0.25,
            ..Faults::none()
        };
        let failed: Vec<u64> = (0..12).filter(|&i| f.fails(i)).collect();
        assert_eq!(failed, vec![3, 7, 11]);
        assert!((0..100).all(|i| Faults::fail_all(GrpcStatus::INTERNAL).fails(i)));
        assert!((0..100).all(|i| !Faults::none().fails(i)));
        let third = Faults {
            fail_fraction: 1.0 / 3.0,
            ..Faults::none()
        };
        assert_eq!((0..300).filter(|&i| third.fails(i)).count(), 100);
    }
}
