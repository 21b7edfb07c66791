//! What one sending queue holds, against its two limits: `queue_size` in the unit of the
//! collector's `sizer` (requests, items or bytes) and tailgate's always-on byte cap.
//!
//! As in exporterhelper's memory queue (core v0.123.0): a request is admitted only if the size
//! held plus its own stays within the capacity (so a request larger than the whole capacity is
//! always refused), a request of size 0 is accepted and not queued (the OTLP specification's
//! empty envelope), and what a consumer is sending stays counted until the attempt (with its
//! retries) is over, so the limits bound the memory the queue pins, not only what waits.
//! Sans-IO: no executor, unit-tested on its own.

use std::cell::Cell;
use std::rc::Rc;

use crate::config::common::{QueueShape, Sizer};

/// What one admitted request holds until it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// In the sizer's unit.
    pub size: u64,
    /// Bytes of its body.
    pub bytes: u64,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `queue_size` (in the sizer's unit) would be exceeded.
    Capacity,
    /// The byte cap (`sending_queue.tailgate.max_bytes_per_core`) would be exceeded.
    Bytes,
}

/// The outcome of [`Occupancy::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queue it; release `Held` when its send is over.
    Taken(Held),
    /// Size 0 in the sizer's unit: accepted, nothing to send (the collector drops it too).
    Empty,
    /// Refused.
    Full(Full),
}

/// Size and bytes one queue holds (waiting and being sent) against its limits.
#[derive(Debug)]
pub struct Occupancy {
    sizer: Sizer,
    capacity: u64,
    /// Shared with the other backends of a loadbalancing exporter on this core, whose share
    /// changes with the number of backends; a plain exporter's own.
    max_bytes: Rc<Cell<u64>>,
    size: Cell<u64>,
    bytes: Cell<u64>,
}

impl Occupancy {
    /// An empty queue of `shape` (its `max_bytes` is read from `max_bytes`, which the caller may
    /// change later).
    pub fn new(shape: &QueueShape, max_bytes: Rc<Cell<u64>>) -> Occupancy {
        Occupancy {
            sizer: shape.sizer,
            capacity: shape.capacity,
            max_bytes,
            size: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    /// Admits a request of `items` items and `bytes` bytes if both limits allow it.
    pub fn admit(&self, items: u64, bytes: u64) -> Admit {
        let size = self.sizer.size_of(items, bytes);
        if size == 0 {
            return Admit::Empty;
        }
        if self.size.get().saturating_add(size) > self.capacity {
            return Admit::Full(Full::Capacity);
        }
        if self.bytes.get().saturating_add(bytes) > self.max_bytes.get() {
            return Admit::Full(Full::Bytes);
        }
        self.size.set(self.size.get() + size);
        self.bytes.set(self.bytes.get() + bytes);
        Admit::Taken(Held { size, bytes })
    }

    /// Gives back what `held` took.
    pub fn release(&self, held: Held) {
        self.size.set(self.size.get().saturating_sub(held.size));
        self.bytes.set(self.bytes.get().saturating_sub(held.bytes));
    }

    /// Held now, in the sizer's unit.
    pub fn size(&self) -> u64 {
        self.size.get()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// `queue_size`, in the sizer's unit.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// Smallest default byte cap: one request at the gRPC receiver's default size limit (4 MiB) fits.
pub const MIN_DEFAULT_MAX_BYTES: u64 = 4 << 20;

/// The byte cap of one exporter's queue on one core when `max_bytes_per_core` is not set.
///
/// With a memory_limiter (`soft_limit`: the lowest soft limit configured, in bytes): half of it,
/// split evenly over the cores and the `exporters` that queue (otlp, otlphttp, loadbalancing). So
/// all queues full together stay at half the soft limit, where memory_limiter would start refusing
/// every client: the other half is left for requests being received, batches and tail_sampling.
/// Without one, [`DEFAULT_QUEUE_BYTES_PER_CORE`](crate::config::common::DEFAULT_QUEUE_BYTES_PER_CORE).
/// Never below [`MIN_DEFAULT_MAX_BYTES`].
pub fn default_max_bytes(soft_limit: Option<u64>, cores: usize, exporters: usize) -> u64 {
    let Some(soft) = soft_limit else {
        return crate::config::common::DEFAULT_QUEUE_BYTES_PER_CORE;
    };
    let shares = (cores.max(1) as u64).saturating_mul(exporters.max(1) as u64);
    (soft / 2 / shares).max(MIN_DEFAULT_MAX_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(sizer: Sizer, capacity: u64, max_bytes: u64) -> Occupancy {
        let shape = QueueShape {
            sizer,
            capacity,
            consumers: 1,
            max_bytes,
        };
        Occupancy::new(&shape, Rc::new(Cell::new(max_bytes)))
    }

    fn taken(a: Admit) -> Held {
        match a {
            Admit::Taken(h) => h,
            other => panic!("not taken: {other:?}"),
        }
    }

    #[test]
    fn requests_count_one_each_whatever_their_size() {
        let q = queue(Sizer::Requests, 2, u64::MAX);
        let a = taken(q.admit(1000, 50_000));
        taken(q.admit(0, 10));
        assert_eq!(q.admit(1, 1), Admit::Full(Full::Capacity));
        assert_eq!(q.size(), 2);
        q.release(a);
        taken(q.admit(5, 5));
        assert_eq!((q.size(), q.bytes()), (2, 15));
    }

    #[test]
    fn items_count_spans_and_a_request_past_the_room_left_is_refused() {
        let q = queue(Sizer::Items, 100, u64::MAX);
        let a = taken(q.admit(60, 1));
        assert_eq!(a.size, 60);
        // 60 + 41 > 100: refused whole, even though 40 would fit (the collector does not split).
        assert_eq!(q.admit(41, 1), Admit::Full(Full::Capacity));
        taken(q.admit(40, 1));
        assert_eq!(q.size(), 100);
        // Bigger than the whole queue: never admitted.
        q.release(a);
        assert_eq!(q.admit(101, 1), Admit::Full(Full::Capacity));
        // No spans: accepted, not queued (the collector's empty-request rule).
        assert_eq!(q.admit(0, 30), Admit::Empty);
        assert_eq!(q.size(), 40);
    }

    #[test]
    fn bytes_count_the_serialized_body() {
        let q = queue(Sizer::Bytes, 1000, u64::MAX);
        let a = taken(q.admit(3, 700));
        assert_eq!(a.size, 700);
        assert_eq!(q.admit(1, 301), Admit::Full(Full::Capacity));
        taken(q.admit(1, 300));
        q.release(a);
        assert_eq!((q.size(), q.bytes()), (300, 300));
        assert_eq!(q.admit(0, 0), Admit::Empty);
    }

    #[test]
    fn the_byte_cap_binds_whatever_the_sizer() {
        for sizer in [Sizer::Requests, Sizer::Items, Sizer::Bytes] {
            let q = queue(sizer, 1 << 40, 1000);
            let a = taken(q.admit(1, 600));
            assert_eq!(q.admit(1, 401), Admit::Full(Full::Bytes), "{sizer:?}");
            taken(q.admit(1, 400));
            assert_eq!(q.bytes(), 1000);
            q.release(a);
            assert_eq!(q.bytes(), 400);
        }
    }

    #[test]
    fn the_default_cap_is_half_the_soft_limit_over_cores_and_exporters() {
        const MIB: u64 = 1 << 20;
        // The deploy agent: limit 512 MiB, spike 128 MiB → soft 384 MiB; 2 cores, 1 exporter.
        assert_eq!(default_max_bytes(Some(384 * MIB), 2, 1), 96 * MIB);
        assert_eq!(default_max_bytes(Some(384 * MIB), 4, 2), 24 * MIB);
        // Never below one maximum-size request.
        assert_eq!(
            default_max_bytes(Some(10 * MIB), 8, 1),
            MIN_DEFAULT_MAX_BYTES
        );
        assert_eq!(default_max_bytes(Some(384 * MIB), 0, 0), 192 * MIB);
        assert_eq!(
            default_max_bytes(None, 2, 1),
            crate::config::common::DEFAULT_QUEUE_BYTES_PER_CORE
        );
    }

    #[test]
    fn a_shared_byte_cap_is_read_at_each_admission() {
        let cap = Rc::new(Cell::new(1000));
        let shape = QueueShape {
            sizer: Sizer::Requests,
            capacity: 100,
            consumers: 1,
            max_bytes: 1000,
        };
        let q = Occupancy::new(&shape, cap.clone());
        taken(q.admit(1, 500));
        // A loadbalancing exporter gained backends: this one's share shrank below what it holds.
        cap.set(400);
        assert_eq!(q.admit(1, 1), Admit::Full(Full::Bytes));
        cap.set(600);
        taken(q.admit(1, 100));
    }
}
