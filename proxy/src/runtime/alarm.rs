//! A re-armable one-shot timer for one core: set, moved or cleared from anywhere on the core,
//! awaited by one task.
//!
//! Why: a periodic `Timer::new(tick)` loop wakes its core every tick whether or not anything is
//! due. At a low request rate those wake-ups dominate (each executor park/unpark costs several
//! `io_uring_enter` calls and a `membarrier`), so periodic work (tail_sampling's decisions, the
//! batch timeout) arms an [`Alarm`] only for the instant something is actually due, and moves it
//! when work done on another wake-up (a request) made it unnecessary. Moving costs a timer-map
//! update in the reactor, no system call: glommio computes the sleep from its timers when it parks.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use glommio::timer::Timer;

/// How far away a cleared alarm sleeps (it is simply re-armed on wake-up).
const IDLE: Duration = Duration::from_secs(3600);

/// A one-shot, re-armable timer (see the module docs). Not `Send`: one per core.
pub struct Alarm {
    /// The reactor timer the waiting task polls; `reset` keeps its waker registered.
    timer: RefCell<Timer>,
    /// When the alarm rings; `None` while cleared.
    due: Cell<Option<Instant>>,
}

impl Alarm {
    /// A cleared alarm. Must be made on a glommio executor.
    pub fn new() -> Self {
        Alarm {
            timer: RefCell::new(Timer::new(IDLE)),
            due: Cell::new(None),
        }
    }

    /// When it rings next, if set.
    pub fn due(&self) -> Option<Instant> {
        self.due.get()
    }

    /// Rings at `when` (moving an earlier or later setting).
    pub fn set_at(&self, when: Instant) {
        if self.due.get() == Some(when) {
            return;
        }
        self.due.set(Some(when));
        self.timer
            .borrow_mut()
            .reset(when.saturating_duration_since(Instant::now()));
    }

    /// Rings at `when` unless it is already set to ring earlier.
    pub fn set_no_later_than(&self, when: Instant) {
        match self.due.get() {
            Some(d) if d <= when => {}
            _ => self.set_at(when),
        }
    }

    /// Stops it ringing until set again.
    pub fn clear(&self) {
        if self.due.take().is_some() {
            self.timer.borrow_mut().reset(IDLE);
        }
    }

    /// Waits until the alarm rings (its set time has come), then clears it. Only one task may
    /// wait at a time.
    pub async fn ring(&self) {
        poll_fn(|cx| {
            let mut timer = self.timer.borrow_mut();
            loop {
                match Pin::new(&mut *timer).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => match self.due.get() {
                        Some(d) if d <= Instant::now() => {
                            self.due.set(None);
                            timer.reset(IDLE);
                            return Poll::Ready(());
                        }
                        // Cleared, or the idle sleep ended: sleep again.
                        _ => {
                            let left = self
                                .due
                                .get()
                                .map_or(IDLE, |d| d.saturating_duration_since(Instant::now()));
                            timer.reset(left);
                        }
                    },
                }
            }
        })
        .await
    }
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::rc::Rc;

    use crate::runtime::on_test_executor as on_executor;

    #[test]
    fn rings_once_at_the_set_time_and_moves() {
        on_executor(async {
            let alarm = Rc::new(Alarm::new());
            let start = Instant::now();
            alarm.set_at(start + Duration::from_secs(60));
            // Moved earlier while a task waits.
            let waiter = {
                let alarm = alarm.clone();
                glommio::spawn_local(async move {
                    alarm.ring().await;
                    Instant::now()
                })
            };
            glommio::yield_if_needed().await;
            alarm.set_at(start + Duration::from_millis(20));
            let rang = waiter.await;
            assert!(rang >= start + Duration::from_millis(20));
            assert!(rang < start + Duration::from_secs(30));
            assert_eq!(alarm.due(), None);
            // Set no later than: an earlier setting stays, a later one is ignored.
            let t = Instant::now();
            alarm.set_no_later_than(t + Duration::from_millis(10));
            alarm.set_no_later_than(t + Duration::from_secs(60));
            assert_eq!(alarm.due(), Some(t + Duration::from_millis(10)));
            alarm.ring().await;
            assert!(Instant::now() >= t + Duration::from_millis(10));
        });
    }

    #[test]
    fn a_cleared_alarm_does_not_ring() {
        on_executor(async {
            let alarm = Rc::new(Alarm::new());
            alarm.set_at(Instant::now() + Duration::from_millis(5));
            alarm.clear();
            let rang = Rc::new(Cell::new(false));
            let waiter = {
                let (alarm, rang) = (alarm.clone(), rang.clone());
                glommio::spawn_local(async move {
                    alarm.ring().await;
                    rang.set(true);
                })
            };
            // Longer than the cleared setting: the waiter must still be waiting.
            glommio::timer::Timer::new(Duration::from_millis(30)).await;
            assert!(!rang.get());
            let t = Instant::now();
            alarm.set_at(t);
            waiter.await;
            assert!(rang.get() && Instant::now() >= t);
        });
    }
}
