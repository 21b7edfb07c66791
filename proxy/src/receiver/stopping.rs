//! Tells one core's open connections that the process is stopping, so each can end the way the
//! collector's servers do (grpc-go `GracefulStop`: GOAWAY, in-flight streams finish; net/http
//! `Shutdown`: idle keep-alive connections close, a request in progress is answered first).
//!
//! Each connection waits on its own slot (one waker, replaced on every poll), so a busy connection
//! polled many times registers nothing new; the list of slots is pruned of closed connections as
//! it grows.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// The per-core stop notice, shared by every connection of one listener.
#[derive(Default)]
pub struct Stopping {
    stopped: Cell<bool>,
    slots: RefCell<Vec<Weak<Slot>>>,
}

/// One connection's place on the notice.
#[derive(Default)]
pub struct Slot {
    waker: RefCell<Option<Waker>>,
}

impl Stopping {
    /// Marks the core as stopping and wakes every waiting connection.
    pub fn stop(&self) {
        self.stopped.set(true);
        for slot in self.slots.take() {
            if let Some(slot) = slot.upgrade() {
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// A slot for a new connection (dropping it takes the connection off the notice).
    pub fn slot(&self) -> Rc<Slot> {
        let slot = Rc::new(Slot::default());
        let mut slots = self.slots.borrow_mut();
        if slots.len() == slots.capacity() {
            slots.retain(|s| s.strong_count() > 0);
        }
        slots.push(Rc::downgrade(&slot));
        slot
    }

    /// Resolves once [`Stopping::stop`] has been called.
    pub async fn wait(&self, slot: &Slot) {
        std::future::poll_fn(|cx| {
            if self.stopped.get() {
                return Poll::Ready(());
            }
            *slot.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    #[test]
    fn waiters_wake_on_stop_and_closed_slots_are_pruned() {
        let stopping = Stopping::default();
        let slot = stopping.slot();
        let mut wait = pin!(stopping.wait(&slot));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        for _ in 0..100 {
            drop(stopping.slot());
        }
        assert!(stopping.slots.borrow().len() <= 65, "closed slots kept");
        stopping.stop();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        // Connections that arrive later see the notice at once.
        let late = stopping.slot();
        assert!(pin!(stopping.wait(&late)).poll(&mut cx).is_ready());
    }
}
