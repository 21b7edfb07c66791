//! The process-wide stop request (SIGTERM/SIGINT, or a core failing at start-up) that cores sleep on.
//!
//! A signal handler may only set a flag, so a small thread turns each signal into [`Latch::set`],
//! which also wakes every task waiting in [`Latch::wait`] (glommio queues a waker used from
//! another thread onto its executor and wakes it). Cores therefore sleep until asked to stop
//! instead of polling the flag: the 50 ms poll it replaces woke each idle core and each listener
//! ~20 times a second.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

/// The process-wide stop request: a [`Latch`] set by SIGTERM/SIGINT or a failed start-up.
pub type Shutdown = Latch;

/// A one-way flag set once, that tasks on any core can wait for (stop requests, the start-up
/// "all cores built" go-ahead).
#[derive(Default)]
pub struct Latch {
    flag: AtomicBool,
    /// One waker per waiting task (deduplicated with `will_wake`); drained by `set`.
    wakers: Mutex<Vec<Waker>>,
}

impl Latch {
    /// Whether stopping was requested.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Requests the stop and wakes every waiting task.
    pub fn set(&self) {
        self.flag.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *self.lock());
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once [`Latch::set`] was called (at once if it already was).
    pub async fn wait(&self) {
        poll_fn(|cx| {
            let mut wakers = self.lock();
            // Checked under the lock `set` drains after storing, so no wake-up is lost.
            if self.is_set() {
                return Poll::Ready(());
            }
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Turns SIGTERM and SIGINT into `shutdown.set()` on a thread of its own; the handle stops it.
pub fn on_signals(shutdown: Arc<Shutdown>) -> Result<signal_hook::iterator::Handle, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handler: {e}"))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("tailgate-signals".to_owned())
        .spawn(move || {
            for _ in signals.forever() {
                shutdown.set();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::future::Future;

    #[test]
    fn waiters_on_another_thread_wake_when_set() {
        let stop = Arc::new(Shutdown::default());
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || futures_lite::future::block_on(stop.wait()))
            })
            .collect();
        assert!(!stop.is_set());
        stop.set();
        for t in waiting {
            t.join().unwrap();
        }
        // Already set: resolves at once.
        futures_lite::future::block_on(stop.wait());
        assert!(stop.is_set());
    }

    #[test]
    fn a_task_polled_again_registers_once() {
        let stop = Shutdown::default();
        let mut wait = std::pin::pin!(stop.wait());
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        for _ in 0..5 {
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(stop.lock().len(), 1);
        stop.set();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
