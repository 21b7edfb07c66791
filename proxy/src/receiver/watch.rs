//! Per-connection watchdogs: idle, age, keepalive and slow-client limits on glommio timers.
//!
//! h2 and hyper's http1 have no timers of their own here, so each connection gets one small
//! watchdog task. The hot path only writes a few `Cell`s (last read time, open streams, HTTP
//! phase); nothing is allocated or locked per request, and the watchdog never needs waking from
//! it: it sleeps until the earliest deadline that can be due, re-reads the cells and either acts
//! or sleeps again. It acts by posting an [`Action`] that the connection's serve loop picks up.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncRead, AsyncWrite};
use glommio::timer::Timer;

use super::limits::{GrpcLimits, HttpLimits, IDLE_GOAWAY_GRACE};
use crate::runtime::io::BoxIo;

/// Why a connection was closed (or sent GOAWAY) by a limit: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No stream (gRPC) or request (HTTP) for the idle limit.
    Idle,
    /// gRPC `max_connection_age`.
    MaxAge,
    /// gRPC keepalive ping not answered within `timeout`.
    KeepaliveTimeout,
    /// HTTP headers not complete within `read_header_timeout`.
    HeaderTimeout,
    /// HTTP body not complete within `read_timeout`.
    ReadTimeout,
    /// HTTP response write blocked longer than `write_timeout`.
    WriteTimeout,
    /// HTTP request head larger than `tailgate.max_header_list_size`.
    HeaderTooLarge,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 7] = [
        Reason::Idle,
        Reason::MaxAge,
        Reason::KeepaliveTimeout,
        Reason::HeaderTimeout,
        Reason::ReadTimeout,
        Reason::WriteTimeout,
        Reason::HeaderTooLarge,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Idle => "idle",
            Reason::MaxAge => "max_age",
            Reason::KeepaliveTimeout => "keepalive_timeout",
            Reason::HeaderTimeout => "header_timeout",
            Reason::ReadTimeout => "read_timeout",
            Reason::WriteTimeout => "write_timeout",
            Reason::HeaderTooLarge => "header_too_large",
        }
    }

    /// Whether the reason can happen on a gRPC (else HTTP) connection.
    pub fn applies_to_grpc(self) -> bool {
        matches!(
            self,
            Reason::Idle | Reason::MaxAge | Reason::KeepaliveTimeout
        )
    }

    /// Whether the reason can happen on an HTTP/1 connection.
    pub fn applies_to_http(self) -> bool {
        !matches!(self, Reason::MaxAge | Reason::KeepaliveTimeout)
    }
}

/// What the watchdog asks the serve loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send GOAWAY and let open streams finish (h2 `graceful_shutdown`).
    GoAway(Reason),
    /// Close the connection now.
    Close(Reason),
}

/// Where an HTTP/1 connection is in its request cycle (Go's `http.Server` deadlines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the next request since then.
    Idle(Instant),
    /// Reading a request head since its first byte (or the connection's start).
    Head(Instant),
    /// Reading a request body since its head ended.
    Body(Instant),
    /// Handling a request; no read deadline.
    Busy,
}

/// Connection state shared by the serve loop, its IO wrapper, its stream tasks and its watchdog.
pub struct Activity {
    /// When bytes were last read (keepalive pings go out after `time` of silence).
    last_read: Cell<Instant>,
    /// Since when a write has been blocked on a client that does not read.
    write_stalled: Cell<Option<Instant>>,
    /// HTTP/1 phase (gRPC connections stay `Busy`).
    phase: Cell<Phase>,
    /// Open gRPC streams.
    streams: Cell<u32>,
    /// When the last gRPC stream closed (or the connection started).
    idle_since: Cell<Instant>,
    /// Posted by the watchdog, taken by the serve loop.
    action: Cell<Option<Action>>,
    /// The serve loop, waiting for an action.
    waker: Cell<Option<Waker>>,
}

impl Activity {
    /// State of a connection that starts now, in `phase`.
    pub fn new(phase: Phase) -> Rc<Activity> {
        let now = Instant::now();
        Rc::new(Activity {
            last_read: Cell::new(now),
            write_stalled: Cell::new(None),
            phase: Cell::new(phase),
            streams: Cell::new(0),
            idle_since: Cell::new(now),
            action: Cell::new(None),
            waker: Cell::new(None),
        })
    }

    /// Sets the HTTP/1 phase.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.set(phase);
    }

    /// A gRPC stream opened; the guard closes it when dropped.
    pub fn stream_opened(self: &Rc<Self>) -> StreamGuard {
        self.streams.set(self.streams.get() + 1);
        StreamGuard(self.clone())
    }

    fn post(&self, action: Action) {
        self.action.set(Some(action));
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Resolves with the watchdog's next action.
    pub fn next_action(&self) -> NextAction<'_> {
        NextAction(self)
    }
}

/// Closes a gRPC stream in [`Activity`] when dropped (also when the stream task is cancelled).
pub struct StreamGuard(Rc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let a = &self.0;
        let open = a.streams.get().saturating_sub(1);
        a.streams.set(open);
        if open == 0 {
            a.idle_since.set(Instant::now());
        }
    }
}

/// Future of [`Activity::next_action`].
pub struct NextAction<'a>(&'a Activity);

impl Future for NextAction<'_> {
    type Output = Action;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Action> {
        if let Some(a) = self.0.action.take() {
            return Poll::Ready(a);
        }
        let w = match self.0.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.0.waker.set(Some(w));
        Poll::Pending
    }
}

// === the IO wrapper ===

/// A connection that records reads and blocked writes in its [`Activity`].
pub struct Watched {
    io: BoxIo,
    activity: Rc<Activity>,
}

impl Watched {
    /// Wraps `io`.
    pub fn new(io: BoxIo, activity: Rc<Activity>) -> Watched {
        Watched { io, activity }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                let now = Instant::now();
                let a = &self.activity;
                a.last_read.set(now);
                if let Phase::Idle(_) = a.phase.get() {
                    a.phase.set(Phase::Head(now));
                }
            }
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        let a = &self.activity;
        match r {
            Poll::Pending => {
                if a.write_stalled.get().is_none() {
                    a.write_stalled.set(Some(Instant::now()));
                }
            }
            Poll::Ready(_) => a.write_stalled.set(None),
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

// === watchdogs ===

async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        Timer::new(deadline - now).await;
    }
}

/// ±10 % of `d`, as grpc-go jitters `max_connection_age` so connections made together do not all
/// reconnect together.
fn jittered(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let tenth = d / 10;
    let span = tenth.as_nanos().saturating_mul(2).max(1);
    let offset = Duration::from_nanos(u64::try_from(u128::from(r) % span).unwrap_or(0));
    d.saturating_sub(tenth) + offset
}

/// Watches one gRPC connection: idle and age GOAWAYs, keepalive pings. Runs until it posts a
/// `Close` or is dropped with its connection.
pub async fn grpc(activity: Rc<Activity>, limits: GrpcLimits, mut ping: Option<h2::PingPong>) {
    let start = Instant::now();
    let age = limits.max_connection_age.map(|a| start + jittered(a));
    // (when the GOAWAY went out, the grace after which the connection is closed outright)
    let mut goaway: Option<(Instant, Option<Duration>, Reason)> = None;
    loop {
        let now = Instant::now();
        let mut next = now + limits.keepalive_time;
        if let Some((at, Some(grace), reason)) = goaway {
            if now >= at + grace {
                activity.post(Action::Close(reason));
                return;
            }
            next = next.min(at + grace);
        }
        if goaway.is_none() {
            if let Some(deadline) = age {
                if now >= deadline {
                    activity.post(Action::GoAway(Reason::MaxAge));
                    goaway = Some((now, limits.max_connection_age_grace, Reason::MaxAge));
                    continue;
                }
                next = next.min(deadline);
            }
            if let Some(idle) = limits.max_connection_idle {
                // With streams open, the earliest the idle limit can be due is `idle` from now.
                let since = if activity.streams.get() == 0 {
                    activity.idle_since.get()
                } else {
                    now
                };
                if now >= since + idle {
                    activity.post(Action::GoAway(Reason::Idle));
                    let grace = limits.max_connection_age_grace.or(Some(IDLE_GOAWAY_GRACE));
                    goaway = Some((now, grace, Reason::Idle));
                    continue;
                }
                next = next.min(since + idle);
            }
        }
        let quiet_until = activity.last_read.get() + limits.keepalive_time;
        if now >= quiet_until {
            if !keepalive(&mut ping, limits.keepalive_timeout).await {
                activity.post(Action::Close(Reason::KeepaliveTimeout));
                return;
            }
            continue;
        }
        sleep_until(next.min(quiet_until)).await;
    }
}

/// Pings the client; false when it does not answer within `timeout`.
async fn keepalive(ping: &mut Option<h2::PingPong>, timeout: Duration) -> bool {
    let Some(p) = ping.as_mut() else {
        return true;
    };
    if p.send_ping(h2::Ping::opaque()).is_err() {
        // The connection is gone (or a ping is still pending, which h2 refuses): nothing to do.
        return true;
    }
    let pong = async { std::future::poll_fn(|cx| p.poll_pong(cx)).await.is_ok() };
    let late = async {
        Timer::new(timeout).await;
        false
    };
    future::or(pong, late).await
}

/// Watches one HTTP/1 connection: header, body, idle and stalled-write deadlines. Posts a
/// `Close` when one passes; returns at once when no limit is set.
pub async fn http(activity: Rc<Activity>, limits: HttpLimits) {
    let Some(period) = limits.period() else {
        return;
    };
    loop {
        let now = Instant::now();
        let (deadline, reason) = match activity.phase.get() {
            Phase::Idle(since) => (limits.idle.map(|d| since + d), Reason::Idle),
            Phase::Head(since) => (limits.read_header.map(|d| since + d), Reason::HeaderTimeout),
            Phase::Body(since) => (limits.read.map(|d| since + d), Reason::ReadTimeout),
            Phase::Busy => (None, Reason::Idle),
        };
        if deadline.is_some_and(|d| now >= d) {
            activity.post(Action::Close(reason));
            return;
        }
        let stalled = activity
            .write_stalled
            .get()
            .and_then(|s| limits.write.map(|w| s + w));
        if stalled.is_some_and(|d| now >= d) {
            activity.post(Action::Close(Reason::WriteTimeout));
            return;
        }
        // A phase that starts while we sleep has its deadline at least `period` away.
        let next = [deadline, stalled, Some(now + period)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + period);
        sleep_until(next).await;
    }
}
