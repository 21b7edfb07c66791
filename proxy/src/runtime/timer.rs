//! `hyper::rt::Timer` on glommio timers, which hyper's http1 header-read timeout needs.
//!
//! The OTLP/HTTP receiver no longer uses it: its deadlines run on `receiver/watch.rs` (one timer per
//! connection, none per request; each sleep here costs an `Arc`, a `Box` and a spawned task). Kept
//! for hyper connections that want hyper's own timers.
//!
//! hyper wants `Send + Sync` sleeps while glommio timers are core-local, so a sleep is a shared
//! flag + waker that a detached glommio timer task sets; the task belongs to the core that created
//! the sleep, which is the core polling it (hyper connections never move between threads here).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The timer handed to hyper's connection builders.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioTimer;

#[derive(Default)]
struct State {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// A sleep driven by a glommio timer task.
pub struct GlommioSleep {
    state: Arc<State>,
}

impl Future for GlommioSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self.state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Re-check: the timer may have fired between the load and storing the waker.
        if self.state.fired.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl hyper::rt::Sleep for GlommioSleep {}

impl hyper::rt::Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let state = Arc::new(State::default());
        let s = Arc::downgrade(&state);
        glommio::spawn_local(async move {
            glommio::timer::Timer::new(duration).await;
            // A dropped sleep leaves nothing to wake.
            if let Some(s) = s.upgrade() {
                s.fired.store(true, Ordering::Release);
                if let Some(w) = s.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    w.wake();
                }
            }
        })
        .detach();
        Box::pin(GlommioSleep { state })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}
