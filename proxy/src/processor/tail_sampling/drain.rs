//! A gateway's drain on SIGTERM under membership (issue 18, docs/membership-design.md §9): the
//! process-wide phase every core follows.
//!
//! Without membership a SIGTERM stops the listeners at once and the stages flush: every pending
//! trace is decided early on a fragment. With membership the leaving gateway must keep *receiving*
//! while it finishes what it holds, because the spans of its traces are still on their way:
//!
//! 1. `announce`: readiness fails (the admin endpoint reads the stop latch), this gateway puts
//!    itself in its own leaving set, so it owns nothing and each core claims every trace it holds
//!    to the trace's new owner; core 0 sends `drain` to every member, which puts this gateway in
//!    their leaving sets (they forward its claimed traces' spans here, and new traces elsewhere).
//! 2. `deciding`: held traces decide on their normal timers; unmarked data of traces it does not
//!    hold goes to their owners. Ends when no core has a pending trace and no span entered an
//!    engine for [`QUIET`], or `grace` after SIGTERM.
//! 3. `handing over`: each core sends its decided traces still inside the late-span window to
//!    their owners as `decisions`; once every core has, core 0 sends `done` (members drop this
//!    gateway's claims: late spans then follow ownership and meet the imported decision). Ends
//!    then, or after [`HANDOVER_TIMEOUT`].
//! 4. `closing`: the drain every gateway runs (listeners stop, stages flush, queues send).
//!
//! The phase is advanced by whichever core looks first (each core's membership tick); the
//! transitions are compare-and-swaps, so every core sees one sequence.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long no span may have entered an engine before `deciding` ends (with nothing pending).
pub const QUIET: Duration = Duration::from_secs(1);

/// How long `handing over` may take before `closing` starts anyway.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A drain phase (the value of the `tailgate_membership_drain_phase` gauge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// No SIGTERM yet.
    Running = 0,
    /// Announcing the drain to the members.
    Announce = 1,
    /// Deciding the traces held here.
    Deciding = 2,
    /// Sending decisions to the new owners.
    HandingOver = 3,
    /// The ordinary drain: listeners stop, stages flush.
    Closing = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Running,
            1 => Phase::Announce,
            2 => Phase::Deciding,
            3 => Phase::HandingOver,
            _ => Phase::Closing,
        }
    }

    /// The phase's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Announce => "announce",
            Phase::Deciding => "deciding",
            Phase::HandingOver => "handing_over",
            Phase::Closing => "closing",
        }
    }
}

/// The drain state every core of the process shares.
pub struct DrainState {
    phase: AtomicU8,
    /// When SIGTERM arrived.
    started: OnceLock<Instant>,
    /// When `handing over` began.
    handing_since: OnceLock<Instant>,
    /// Per core: its engine holds a pending trace.
    pending: Box<[AtomicBool]>,
    /// Nanoseconds after `started` at which a span last entered an engine.
    last_insert: AtomicU64,
    /// Cores that have sent their decisions.
    handed: AtomicUsize,
    /// Core 0 sent `done`.
    done: AtomicBool,
    /// `membership.grace`: the longest `deciding` may take.
    grace: Duration,
}

impl DrainState {
    /// A running process with `cores` cores.
    pub fn new(cores: usize, grace: Duration) -> Self {
        Self {
            phase: AtomicU8::new(Phase::Running as u8),
            started: OnceLock::new(),
            handing_since: OnceLock::new(),
            pending: (0..cores.max(1)).map(|_| AtomicBool::new(true)).collect(),
            last_insert: AtomicU64::new(0),
            handed: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            grace,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// True from SIGTERM on.
    pub fn draining(&self) -> bool {
        self.phase() != Phase::Running
    }

    /// SIGTERM: starts `announce` (once).
    pub fn begin(&self, now: Instant) {
        if self.step(Phase::Running, Phase::Announce) {
            let _ = self.started.set(now);
        }
    }

    /// The latest instant the drain phases may end: `grace` + [`HANDOVER_TIMEOUT`] after
    /// SIGTERM, plus a second of slack for the ticks (a failsafe: the phases normally end sooner).
    pub fn deadline(&self) -> Option<Instant> {
        self.started
            .get()
            .map(|s| *s + self.grace + HANDOVER_TIMEOUT + Duration::from_secs(1))
    }

    /// Moves `from` → `to`; true if this call did.
    fn step(&self, from: Phase, to: Phase) -> bool {
        let moved = self
            .phase
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved {
            tracing::info!(phase = to.name(), "membership drain");
        }
        moved
    }

    /// Core 0 has announced the drain to every member.
    pub fn announced(&self) {
        self.step(Phase::Announce, Phase::Deciding);
    }

    /// A span entered an engine at `now` (only recorded while draining).
    pub fn note_insert(&self, now: Instant) {
        if let Some(s) = self.started.get() {
            let at = u64::try_from(now.saturating_duration_since(*s).as_nanos()).unwrap_or(0);
            self.last_insert.fetch_max(at, Ordering::AcqRel);
        }
    }

    /// Whether core `core`'s engine holds a pending trace.
    pub fn report_pending(&self, core: usize, pending: bool) {
        if let Some(p) = self.pending.get(core) {
            p.store(pending, Ordering::Release);
        }
    }

    /// Core `core` has sent its decisions (count each core once).
    pub fn handed_over(&self) {
        self.handed.fetch_add(1, Ordering::AcqRel);
    }

    /// Every core has sent its decisions.
    pub fn all_handed(&self) -> bool {
        self.handed.load(Ordering::Acquire) >= self.pending.len()
    }

    /// Core 0 sent `done`.
    pub fn done_sent(&self) {
        self.done.store(true, Ordering::Release);
    }

    /// Advances the phase when its end condition holds at `now`.
    pub fn advance(&self, now: Instant) {
        let Some(started) = self.started.get().copied() else {
            return;
        };
        let since = now.saturating_duration_since(started);
        match self.phase() {
            Phase::Deciding => {
                let idle = self.pending.iter().all(|p| !p.load(Ordering::Acquire));
                let last = Duration::from_nanos(self.last_insert.load(Ordering::Acquire));
                let quiet = since.saturating_sub(last) >= QUIET;
                let over = (idle && quiet) || since >= self.grace;
                if over && self.step(Phase::Deciding, Phase::HandingOver) {
                    let _ = self.handing_since.set(now);
                }
            }
            Phase::HandingOver => {
                let timed_out = self
                    .handing_since
                    .get()
                    .is_some_and(|h| now.saturating_duration_since(*h) >= HANDOVER_TIMEOUT);
                if self.done.load(Ordering::Acquire) || timed_out {
                    self.step(Phase::HandingOver, Phase::Closing);
                }
            }
            Phase::Running | Phase::Announce | Phase::Closing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_run_in_order_on_their_conditions() {
        let d = DrainState::new(2, Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(d.phase(), Phase::Running);
        d.advance(t0);
        assert_eq!(d.phase(), Phase::Running, "nothing moves before SIGTERM");
        d.begin(t0);
        d.begin(t0 + Duration::from_secs(1));
        assert_eq!(d.phase(), Phase::Announce);
        d.announced();
        assert_eq!(d.phase(), Phase::Deciding);
        // Pending traces on one core hold `deciding`, however quiet.
        d.report_pending(0, false);
        d.advance(t0 + Duration::from_secs(5));
        assert_eq!(d.phase(), Phase::Deciding);
        d.report_pending(1, false);
        // A span a moment ago: not quiet yet.
        d.note_insert(t0 + Duration::from_millis(4_500));
        d.advance(t0 + Duration::from_secs(5));
        assert_eq!(d.phase(), Phase::Deciding);
        d.advance(t0 + Duration::from_millis(5_500));
        assert_eq!(d.phase(), Phase::HandingOver);
        d.handed_over();
        assert!(!d.all_handed());
        d.handed_over();
        assert!(d.all_handed());
        d.advance(t0 + Duration::from_secs(6));
        assert_eq!(d.phase(), Phase::HandingOver, "closing waits for done");
        d.done_sent();
        d.advance(t0 + Duration::from_secs(6));
        assert_eq!(d.phase(), Phase::Closing);
    }

    #[test]
    fn grace_and_the_handover_timeout_bound_the_phases() {
        let d = DrainState::new(1, Duration::from_secs(3));
        let t0 = Instant::now();
        d.begin(t0);
        d.announced();
        d.advance(t0 + Duration::from_millis(2_999));
        assert_eq!(d.phase(), Phase::Deciding, "a pending trace holds it");
        let t1 = t0 + Duration::from_secs(3);
        d.advance(t1);
        assert_eq!(d.phase(), Phase::HandingOver);
        d.advance(t1 + HANDOVER_TIMEOUT - Duration::from_millis(1));
        assert_eq!(d.phase(), Phase::HandingOver);
        d.advance(t1 + HANDOVER_TIMEOUT);
        assert_eq!(d.phase(), Phase::Closing);
        assert!(d.deadline().is_some_and(|at| at > t1 + HANDOVER_TIMEOUT));
    }
}
