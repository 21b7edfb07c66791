//! The per-core budget of request bytes in flight: bytes of request bodies a listener holds while
//! they are still arriving (a partial gRPC message in its reserved buffer, an HTTP body being
//! collected), up to the end of their decoding.
//!
//! Without it, what a core holds for slow or stalled clients was bounded only by connections ×
//! streams × message size (4,096 × 100 × 4 MiB for gRPC, 4,096 × 20 MiB for HTTP). Each request
//! takes a [`Charge`] and grows it with what it holds; a chunk that would take the core past
//! the budget refuses the request instead (gRPC UNAVAILABLE, HTTP 503: clients retry), and the
//! bytes already held are given back when the charge is dropped. The receivers keep releasing h2
//! flow-control window as they read: refusing (and so resetting) the stream bounds what is held,
//! where withholding window would leave up to a connection window per connection unaccounted in
//! h2's buffers.
//!
//! One core, one writer: plain `Cell`s, no atomics.

use std::cell::Cell;
use std::rc::Rc;

use crate::telemetry::metrics::Local;

/// One listener's budget on one core.
pub struct InFlight {
    /// Most bytes held at once.
    limit: u64,
    /// Bytes held now.
    used: Cell<u64>,
    /// Most bytes held since start (for the `_peak` gauge and tests).
    peak: Cell<u64>,
    /// `otelcol_receiver_request_bytes_in_flight` (this core's slot).
    gauge: Local,
    /// `otelcol_receiver_request_bytes_in_flight_peak` (this core's slot).
    peak_gauge: Local,
}

/// The next chunk would take the core past its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// The budget, bytes.
    pub limit: u64,
}

impl InFlight {
    /// A budget of `limit` bytes reporting into `gauge` and `peak_gauge`.
    pub fn new(limit: u64, gauge: Local, peak_gauge: Local) -> Rc<InFlight> {
        Rc::new(InFlight {
            limit,
            used: Cell::new(0),
            peak: Cell::new(0),
            gauge,
            peak_gauge,
        })
    }

    /// The budget, bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// A charge of nothing yet, for one request.
    pub fn charge(self: &Rc<Self>) -> Charge {
        Charge {
            budget: self.clone(),
            held: 0,
        }
    }

    fn take(&self, n: u64) -> Result<(), OverBudget> {
        let used = self.used.get().saturating_add(n);
        if used > self.limit {
            return Err(OverBudget { limit: self.limit });
        }
        self.used.set(used);
        self.gauge.add(n);
        if used > self.peak.get() {
            self.peak.set(used);
            self.peak_gauge.set(used);
        }
        Ok(())
    }

    fn give_back(&self, n: u64) {
        self.used.set(self.used.get().saturating_sub(n));
        self.gauge.sub(n);
    }
}

/// What one request holds of its core's budget; given back when dropped (answered, refused, or
/// its task cancelled with the connection).
pub struct Charge {
    budget: Rc<InFlight>,
    held: u64,
}

impl Charge {
    /// Takes `n` more bytes, or refuses when the core would pass its budget (nothing is taken).
    pub fn grow(&mut self, n: usize) -> Result<(), OverBudget> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.budget.take(n)?;
        self.held += n;
        Ok(())
    }

    /// Grows the charge to `total` bytes if it is less (a charge never shrinks: what a request
    /// held stays charged until it ends), or refuses as [`Charge::grow`] does.
    pub fn reach(&mut self, total: usize) -> Result<(), OverBudget> {
        let total = u64::try_from(total).unwrap_or(u64::MAX);
        if total <= self.held {
            return Ok(());
        }
        let n = total - self.held;
        self.budget.take(n)?;
        self.held = total;
        Ok(())
    }

    /// Bytes this request holds.
    pub fn held(&self) -> u64 {
        self.held
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::telemetry::metrics::{Kind, Registry};

    #[test]
    fn charges_are_refused_past_the_budget_and_given_back_on_drop() {
        let r = Registry::new(1);
        let g = r.register("g", "", Kind::Gauge, &[]);
        let p = r.register("p", "", Kind::Gauge, &[]);
        let budget = InFlight::new(100, g.local(0), p.local(0));
        let mut a = budget.charge();
        let mut b = budget.charge();
        a.grow(60).unwrap();
        assert_eq!(b.grow(41), Err(OverBudget { limit: 100 }));
        b.grow(40).unwrap();
        assert_eq!((budget.used(), g.total(), p.total()), (100, 100, 100));
        assert!(a.grow(1).is_err());
        assert_eq!(a.held(), 60);
        drop(a);
        assert_eq!((budget.used(), g.total(), p.total()), (40, 40, 100));
        drop(b);
        assert_eq!((budget.used(), g.total()), (0, 0));
        let mut c = budget.charge();
        c.reach(70).unwrap();
        c.reach(50).unwrap();
        assert_eq!((c.held(), budget.used()), (70, 70));
        assert!(c.reach(101).is_err());
        c.reach(100).unwrap();
        assert_eq!(budget.used(), 100);
    }
}
