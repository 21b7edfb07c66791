//! The membership model test (`docs/membership-design.md` §4.6): a deterministic discrete-event
//! simulation of agents and gateways running [`Rules`] over random membership histories, view
//! skews below `grace − decision_wait − margin`, delivery orders and retried batches.
//!
//! Properties, checked on every history:
//! 1. every span of every trace is decided at exactly one gateway, which decided the trace once;
//! 2. no span is inserted into any engine twice (retries are deduplicated);
//! 3. no span moves more than twice, and never forward after forward (no loops);
//! 4. every span is decided by the end;
//! 5. once every view agrees and `grace` has passed, nothing is forwarded or handed over.
//!
//! Also: no claim ever meets a fragment decided before it (`splits_decided_before_claim == 0`).
//!
//! Simplifications (the proxy shell, not the rules, owns these): one core per gateway; a leaving
//! gateway keeps serving until the end of the run (its drain is bounded by `grace` in the proxy,
//! which the run outlasts); a restarted gateway's old process exits only once it holds nothing,
//! and the new incarnation joins then. Members are `jump` ordinals (cheap to build in a debug
//! test); the rules never look at the mode.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use tailgate_routing::membership::{
    ClaimEntry, Held, Incarnation, Mark, Out, PeerRef, Route, RuleConfig, Rules, View,
};
use tailgate_routing::{Member, Mode, RoutingTable};

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

/// Timing under test: decision_wait shorter than the skew, so deferral matters.
const DECISION_WAIT: u64 = 2 * S;
const SKEW: u64 = 3 * S;
const MARGIN: u64 = 500 * MS;
const GRACE: u64 = DECISION_WAIT + SKEW + MARGIN;
/// Every message (spans, forwards, claims, hand-overs, redirects) takes up to this long; below
/// `margin / 2`, which is what the margin is for (hand-overs wait `skew + margin / 2`).
const MAX_LATENCY: u64 = 240 * MS;
/// Restarted gateways come back once the old process can hold nothing (see module docs).
const RESTART_AFTER: u64 = SKEW + 2 * GRACE + S;

// === the generated history ===

/// One membership event.
#[derive(Clone, Debug)]
enum Event {
    /// A new gateway (new address).
    Join,
    /// Endpoint removed and drain at the same instant.
    Leave(usize),
    /// maxSurge 1: a new gateway joins, then an old one leaves `gap_ms` later.
    Rolling(usize, u64),
    /// Same-address restart: leave, then a new incarnation joins on the same endpoint.
    Restart(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Join),
        (0usize..8).prop_map(Event::Leave),
        (0usize..8, 200u64..4_000).prop_map(|(i, g)| Event::Rolling(i, g)),
        (0usize..8).prop_map(Event::Restart),
    ]
}

#[derive(Clone, Debug)]
struct History {
    initial: usize,
    /// (gap before it in ms, event): gaps down to 100 ms put two changes inside one decision_wait.
    events: Vec<(u64, Event)>,
    agents: usize,
    /// Bit i: agent i stamps its table hash (a tailgate agent) or not (a collector agent).
    stamps: u8,
    traces: usize,
    /// Seeds every random choice below the structure: view delays, latencies, trace layout, retries.
    seed: u64,
}

fn history() -> impl Strategy<Value = History> {
    (
        2usize..=6,
        prop::collection::vec((100u64..6_000, event()), 1..=8),
        1usize..=4,
        any::<u8>(),
        1usize..=40,
        any::<u64>(),
    )
        .prop_map(|(initial, events, agents, stamps, traces, seed)| History {
            initial,
            events,
            agents,
            stamps,
            traces,
            seed,
        })
}

/// splitmix64: a tiny deterministic generator for the details under the shrinkable structure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// === the simulated world ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    Forward,
    HandOver,
}

/// A span in flight, with the moves it made so far.
#[derive(Clone, Debug)]
struct SpanCopy {
    id: usize,
    hops: Vec<Hop>,
}

#[derive(Clone, Debug)]
enum Msg {
    Spans {
        trace: [u8; 16],
        spans: Vec<SpanCopy>,
        mark: Option<Mark>,
        /// (sender endpoint, incarnation, seq) for gateway-sent batches.
        batch: Option<(Arc<str>, Incarnation, u64)>,
        stamp: Option<u64>,
    },
    Claims {
        from: Arc<str>,
        inc: Incarnation,
        entries: Vec<ClaimEntry>,
    },
    Redirect {
        trace: [u8; 16],
        holder: PeerRef,
        holder_decided: bool,
        holder_anchored: bool,
    },
}

#[derive(Debug)]
enum Ev {
    /// Membership change `k` takes effect in DNS.
    Change(usize),
    /// Agent `a` applies change `k`.
    AgentView(usize, usize),
    /// Gateway process `p` applies change `k`.
    GatewayView(usize, usize),
    /// An agent sends span `s`.
    Emit(usize),
    /// A message reaches whatever process serves `to` now.
    Deliver(Arc<str>, Msg),
    /// Process `p`'s decision timer for a trace.
    Decide(usize, [u8; 16]),
    /// Process `p` releases hand-overs held back until its view settled.
    Poll(usize),
}

enum Tr {
    Pending {
        first_seen: u64,
        /// `first_seen + decision_wait`, or later when deferred.
        deadline: u64,
        spans: Vec<SpanCopy>,
    },
    Decided {
        at: u64,
    },
}

struct Gateway {
    endpoint: Arc<str>,
    inc: Incarnation,
    rules: Rules,
    engine: BTreeMap<[u8; 16], Tr>,
    version: usize,
    seq: u64,
}

impl Gateway {
    fn held(&self, trace: &[u8; 16], now: u64) -> Held {
        held_in(&self.engine, trace, now)
    }
}

/// What the model engine answers for `Engine::holds`: decided traces stay visible for the late
/// window, as the engine's slot and decision caches keep them.
fn held_in(engine: &BTreeMap<[u8; 16], Tr>, trace: &[u8; 16], now: u64) -> Held {
    match engine.get(trace) {
        None => Held::No,
        Some(Tr::Pending { first_seen, .. }) => Held::Pending {
            first_seen: *first_seen,
        },
        Some(Tr::Decided { at }) if now < at + GRACE => Held::Decided {
            kept: true,
            at: *at,
        },
        Some(Tr::Decided { .. }) => Held::No,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanState {
    /// Emitted or in flight.
    Free,
    /// Buffered in a pending trace at process p.
    Buffered(usize),
    /// Decided at process p.
    Decided(usize),
}

struct Span {
    trace: [u8; 16],
    agent: usize,
    at: u64,
    state: SpanState,
}

struct Agent {
    table: Arc<RoutingTable>,
    version: usize,
    stamps: bool,
}

struct World {
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    rng: Rng,
    cfg: RuleConfig,
    /// Member sets per change (endpoint → ordinal) and their tables.
    tables: Vec<Arc<RoutingTable>>,
    change_at: Vec<u64>,
    /// Processes ever started; `serving` maps an endpoint to the one that answers it now.
    gateways: Vec<Gateway>,
    serving: BTreeMap<Arc<str>, usize>,
    /// Restarts waiting: at change k, endpoint e gets a new process.
    restarts: HashMap<usize, Vec<Arc<str>>>,
    agents: Vec<Agent>,
    spans: Vec<Span>,
    /// Decisions per trace: (process, at).
    decisions: HashMap<[u8; 16], Vec<(usize, u64)>>,
    /// When the last forward or hand-over was sent.
    last_move: u64,
    /// When the last view was applied anywhere.
    last_view: u64,
    violations: Vec<String>,
    log: String,
    /// False for the negative control: claims are never sent (ownership only, as the collector).
    claims: bool,
}

impl World {
    fn at(&mut self, when: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((when, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn send(&mut self, to: &Arc<str>, msg: Msg, may_retry: bool) {
        let latency = self.rng.below(MAX_LATENCY);
        let retry = may_retry && self.rng.chance(10);
        if retry {
            let again = self.rng.below(MAX_LATENCY);
            self.at(self.now + again, Ev::Deliver(to.clone(), msg.clone()));
        }
        self.at(self.now + latency, Ev::Deliver(to.clone(), msg));
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations
                .push(format!("t={}ms {what}", self.now / MS));
        }
    }

    fn start_gateway(&mut self, endpoint: Arc<str>, k: usize) -> usize {
        let p = self.gateways.len();
        let view = Arc::new(View::plain(&endpoint, (*self.tables[k]).clone(), k as u64));
        let rules = Rules::new(self.cfg, view, self.now);
        self.gateways.push(Gateway {
            endpoint: endpoint.clone(),
            // Incarnations grow with restarts, as unix-ns-based ones do.
            inc: Incarnation(self.now + p as u64),
            rules,
            engine: BTreeMap::new(),
            version: k,
            seq: 0,
        });
        self.serving.insert(endpoint, p);
        p
    }

    fn run(&mut self) {
        while let Some(Reverse((when, id))) = self.queue.pop() {
            self.now = when;
            let Some(ev) = self.events.remove(&id) else {
                continue;
            };
            match ev {
                Ev::Change(k) => self.change(k),
                Ev::AgentView(a, k) => {
                    if k > self.agents[a].version {
                        self.agents[a].version = k;
                        self.agents[a].table = self.tables[k].clone();
                        self.last_view = self.last_view.max(self.now);
                    }
                }
                Ev::GatewayView(p, k) => self.gateway_view(p, k),
                Ev::Emit(s) => self.emit(s),
                Ev::Deliver(to, msg) => {
                    let Some(&p) = self.serving.get(&to) else {
                        self.violation(format!("message to {to}, which nobody serves"));
                        continue;
                    };
                    self.deliver(p, msg);
                }
                Ev::Decide(p, trace) => self.decide(p, trace),
                Ev::Poll(p) => {
                    let now = self.now;
                    let g = &mut self.gateways[p];
                    let engine = &g.engine;
                    let outs = g.rules.poll(now, |t| held_in(engine, t, now));
                    self.outs(p, outs);
                }
            }
        }
    }

    fn change(&mut self, k: usize) {
        for endpoint in self.restarts.remove(&k).unwrap_or_default() {
            let _ = writeln!(self.log, "{}ms: {endpoint} restarts", self.now / MS);
            self.start_gateway(endpoint, k);
        }
        // Processes serving an endpoint listed in change k that do not exist yet start now
        // (joins), with that view: a joiner's resolver answers before it serves.
        let members: Vec<Arc<str>> = self.tables[k]
            .members()
            .iter()
            .map(|m| Arc::from(m.endpoint()))
            .collect();
        for m in members {
            if !self.serving.contains_key(&m) {
                self.start_gateway(m, k);
            }
        }
        for a in 0..self.agents.len() {
            let d = self.rng.below(SKEW);
            self.at(self.now + d, Ev::AgentView(a, k));
        }
        let serving: Vec<usize> = self.serving.values().copied().collect();
        for p in serving {
            let d = self.rng.below(SKEW);
            self.at(self.now + d, Ev::GatewayView(p, k));
        }
    }

    fn gateway_view(&mut self, p: usize, k: usize) {
        if k <= self.gateways[p].version || self.serving.get(&self.gateways[p].endpoint) != Some(&p)
        {
            return;
        }
        self.last_view = self.last_view.max(self.now);
        let now = self.now;
        let g = &mut self.gateways[p];
        g.version = k;
        let view = Arc::new(View::plain(
            &g.endpoint,
            (*self.tables[k]).clone(),
            k as u64,
        ));
        let held: Vec<([u8; 16], Held)> = g.engine.keys().map(|t| (*t, g.held(t, now))).collect();
        let outs = g.rules.on_view(now, view, held);
        self.outs(p, outs);
    }

    fn emit(&mut self, s: usize) {
        let span = &self.spans[s];
        let agent = &self.agents[span.agent];
        let trace = span.trace;
        let Some(to) = agent.table.member_for_trace(&trace) else {
            self.violation("an agent with an empty table".into());
            return;
        };
        let to: Arc<str> = Arc::from(to.endpoint());
        let stamp = agent.stamps.then(|| agent.table.fingerprint());
        let msg = Msg::Spans {
            trace,
            spans: vec![SpanCopy {
                id: s,
                hops: vec![],
            }],
            mark: None,
            batch: None,
            stamp,
        };
        // Agents' own retries are the exporter's business (and not deduplicated by design).
        self.send(&to, msg, false);
    }

    fn watch(&self, trace: &[u8; 16]) -> bool {
        std::env::var("MODEL_TRACE").is_ok_and(|w| w == hex::encode(&trace[..4]))
    }

    fn deliver(&mut self, p: usize, msg: Msg) {
        let now = self.now;
        let watched = match &msg {
            Msg::Spans { trace, .. } | Msg::Redirect { trace, .. } => self.watch(trace),
            Msg::Claims { entries, .. } => entries.iter().any(|e| self.watch(&e.trace)),
        };
        if watched {
            let g = &self.gateways[p];
            eprintln!(
                "{}ms at p{p} {} v{}: {msg:?}",
                now / MS,
                g.endpoint,
                g.version
            );
        }
        match msg {
            Msg::Spans {
                trace,
                spans,
                mark,
                batch,
                stamp,
            } => {
                if let Some((from, inc, seq)) = &batch {
                    if !self.gateways[p].rules.accept_batch(from, *inc, 0, *seq) {
                        return;
                    }
                }
                let g = &mut self.gateways[p];
                let held = g.held(&trace, now);
                let mut outs = Vec::new();
                let route = g
                    .rules
                    .route(now, &trace, held, mark.as_ref(), stamp, &mut outs);
                if self.watch(&trace) {
                    eprintln!("    held {held:?} -> {route:?} {outs:?}");
                }
                match route {
                    Route::Local { not_before } => self.insert(p, trace, spans, not_before),
                    Route::Forward { to, reason } => self.move_spans(
                        p,
                        trace,
                        spans,
                        &to,
                        Mark::Forward { reason },
                        Hop::Forward,
                    ),
                    Route::HandOver { to } => {
                        self.move_spans(p, trace, spans, &to, Mark::HandOver, Hop::HandOver)
                    }
                }
                self.outs(p, outs);
            }
            Msg::Claims { from, inc, entries } => {
                let g = &mut self.gateways[p];
                let engine = &g.engine;
                let held = |t: &[u8; 16]| held_in(engine, t, now);
                if std::env::var("MODEL_TRACE").is_ok() {
                    for e in &entries {
                        if let h @ Held::Decided { .. } = held(&e.trace) {
                            eprintln!(
                                "{}ms p{p}: claim from {from} for {} meets {h:?}",
                                now / MS,
                                hex::encode(&e.trace[..4])
                            );
                        }
                    }
                }
                let outs = g.rules.on_claims(now, &from, inc, &entries, held);
                self.outs(p, outs);
            }
            Msg::Redirect {
                trace,
                holder,
                holder_decided,
                holder_anchored,
            } => {
                let g = &mut self.gateways[p];
                let held = g.held(&trace, now);
                if std::env::var("MODEL_TRACE").is_ok() {
                    let t = hex::encode(&trace[..4]);
                    eprintln!(
                        "{}ms p{p}: redirect for {t} to {holder:?}, held {held:?}",
                        now / MS
                    );
                }
                let outs =
                    g.rules
                        .on_redirect(now, &trace, holder, holder_decided, holder_anchored, held);
                self.outs(p, outs);
            }
        }
    }

    fn insert(&mut self, p: usize, trace: [u8; 16], spans: Vec<SpanCopy>, not_before: Option<u64>) {
        let now = self.now;
        for s in &spans {
            if self.spans[s.id].state != SpanState::Free {
                let state = self.spans[s.id].state;
                self.violation(format!(
                    "P2: span {} inserted at {p} but is {state:?}",
                    s.id
                ));
            }
        }
        // Forget decisions past the late window, as the engine's slot and caches do.
        if matches!(self.gateways[p].engine.get(&trace), Some(Tr::Decided { at }) if now >= at + GRACE)
        {
            self.gateways[p].engine.remove(&trace);
        }
        match self.gateways[p].engine.get_mut(&trace) {
            None => {
                for s in &spans {
                    self.spans[s.id].state = SpanState::Buffered(p);
                }
                let deadline = (now + DECISION_WAIT).max(not_before.unwrap_or(0));
                self.gateways[p].engine.insert(
                    trace,
                    Tr::Pending {
                        first_seen: now,
                        deadline,
                        spans,
                    },
                );
                self.at(deadline, Ev::Decide(p, trace));
            }
            Some(Tr::Pending { spans: held, .. }) => {
                for s in &spans {
                    self.spans[s.id].state = SpanState::Buffered(p);
                }
                held.extend(spans);
            }
            Some(Tr::Decided { .. }) => {
                // A late span, answered from the decision.
                for s in &spans {
                    self.spans[s.id].state = SpanState::Decided(p);
                }
            }
        }
    }

    fn move_spans(
        &mut self,
        p: usize,
        trace: [u8; 16],
        mut spans: Vec<SpanCopy>,
        to: &PeerRef,
        mark: Mark,
        hop: Hop,
    ) {
        for s in &mut spans {
            s.hops.push(hop);
            // Never a forward of a forwarded span (no loop), and at most two moves (one forward
            // and one hand-over, or hand-overs only).
            if s.hops.len() > 2 || s.hops == [Hop::Forward, Hop::Forward] {
                let hops = s.hops.clone();
                self.violation(format!(
                    "P3: span {} of {} moved {hops:?} (now {p} → {})",
                    s.id,
                    hex::encode(&trace[..4]),
                    to.endpoint
                ));
            }
            self.spans[s.id].state = SpanState::Free;
        }
        self.last_move = self.last_move.max(self.now);
        let g = &mut self.gateways[p];
        g.seq += 1;
        let batch = Some((g.endpoint.clone(), g.inc, g.seq));
        let msg = Msg::Spans {
            trace,
            spans,
            mark: Some(mark),
            batch,
            stamp: Some(g.rules.view().hash()),
        };
        self.send(&to.endpoint, msg, true);
    }

    fn outs(&mut self, p: usize, outs: Vec<Out>) {
        if let Some(at) = self.gateways[p].rules.next_poll() {
            self.at(at.max(self.now), Ev::Poll(p));
        }
        for out in outs {
            match out {
                Out::Claims { .. } if !self.claims => {}
                Out::Claims { to, entries } => {
                    let g = &self.gateways[p];
                    let msg = Msg::Claims {
                        from: g.endpoint.clone(),
                        inc: g.inc,
                        entries,
                    };
                    self.send(&to.endpoint, msg, true);
                }
                Out::Redirect {
                    to,
                    trace,
                    holder,
                    holder_decided,
                    holder_anchored,
                } => {
                    let msg = Msg::Redirect {
                        trace,
                        holder,
                        holder_decided,
                        holder_anchored,
                    };
                    self.send(&to.endpoint, msg, true);
                }
                Out::HandOver { trace, to } => {
                    // take_pending: the fragment leaves this engine whole.
                    if let Some(Tr::Pending { .. }) = self.gateways[p].engine.get(&trace) {
                        if let Some(Tr::Pending { spans, .. }) =
                            self.gateways[p].engine.remove(&trace)
                        {
                            self.move_spans(p, trace, spans, &to, Mark::HandOver, Hop::HandOver);
                        }
                    }
                }
                Out::Decisions { .. } => {
                    self.violation("decisions are only exported by a drain".into());
                }
            }
        }
    }

    fn decide(&mut self, p: usize, trace: [u8; 16]) {
        let now = self.now;
        let g = &mut self.gateways[p];
        // A fragment taken away and a new one started later has its own timer: only act when the
        // pending trace's own deadline is due.
        let due = match g.engine.get(&trace) {
            Some(Tr::Pending { deadline, .. }) => *deadline <= now,
            _ => false,
        };
        if !due {
            return;
        }
        let Some(Tr::Pending { spans, .. }) = g.engine.insert(trace, Tr::Decided { at: now })
        else {
            return;
        };
        for s in &spans {
            self.spans[s.id].state = SpanState::Decided(p);
        }
        if self.watch(&trace) {
            eprintln!("{}ms p{p} decides", now / MS);
        }
        self.decisions.entry(trace).or_default().push((p, now));
    }
}

/// The member set of each change and when it takes effect.
type Changes = Vec<(u64, Vec<Member>)>;
/// Change index → endpoints that come back as a new process (same-address restarts).
type Restarts = HashMap<usize, Vec<Arc<str>>>;

/// Builds the member sets of every change and the times they take effect.
fn plan(h: &History) -> (Changes, Restarts, String) {
    let mut log = String::new();
    let mut next_ordinal = 0u32;
    let mut fresh = || {
        let m = Member::with_ordinal(format!("gw-{next_ordinal}:4317"), next_ordinal);
        next_ordinal += 1;
        m
    };
    let mut current: Vec<Member> = (0..h.initial).map(|_| fresh()).collect();
    let mut changes: Vec<(u64, Vec<Member>)> = vec![(0, current.clone())];
    let mut restarts: HashMap<usize, Vec<Arc<str>>> = HashMap::new();
    // Pending later changes (time, add, remove), for rolling and restart.
    let mut later: Vec<Later> = Vec::new();
    // Endpoints whose restart removed them (only those come back as a new process).
    let mut restarting: Vec<usize> = Vec::new();
    let mut t = 0u64;
    for (n, (gap_ms, ev)) in h.events.iter().enumerate() {
        t += gap_ms * MS;
        let _ = writeln!(log, "{}ms: {ev:?}", t / MS);
        match ev {
            Event::Join => later.push((t, Some(fresh()), None, None)),
            Event::Leave(i) => {
                if let Some(m) = current.get(i % current.len().max(1)) {
                    later.push((t, None, Some(m.endpoint().to_owned()), None));
                }
            }
            Event::Rolling(i, gap) => {
                let old = current
                    .get(i % current.len().max(1))
                    .map(|m| m.endpoint().to_owned());
                later.push((t, Some(fresh()), None, None));
                later.push((t + gap * MS, None, old, None));
            }
            Event::Restart(i) => {
                if let Some(m) = current.get(i % current.len().max(1)).cloned() {
                    later.push((t, None, Some(m.endpoint().to_owned()), Some(n)));
                    later.push((t + RESTART_AFTER, Some(m), None, Some(n)));
                }
            }
        }
        // Apply everything due up to t in time order, keeping at least one member.
        later.sort_by_key(|(at, ..)| *at);
        let due: Vec<_> = later.iter().filter(|(at, ..)| *at <= t).cloned().collect();
        later.retain(|(at, ..)| *at > t);
        for item in due {
            apply(
                &mut current,
                &mut changes,
                &mut restarts,
                &mut restarting,
                item,
            );
        }
    }
    later.sort_by_key(|(at, ..)| *at);
    for item in later {
        apply(
            &mut current,
            &mut changes,
            &mut restarts,
            &mut restarting,
            item,
        );
    }
    (changes, restarts, log)
}

/// A scheduled membership edit: (when, add, remove, the same-address restart it belongs to).
type Later = (u64, Option<Member>, Option<String>, Option<usize>);

fn apply(
    current: &mut Vec<Member>,
    changes: &mut Vec<(u64, Vec<Member>)>,
    restarts: &mut HashMap<usize, Vec<Arc<str>>>,
    restarting: &mut Vec<usize>,
    (at, add, remove, restart): Later,
) {
    if let Some(r) = remove {
        if current.len() > 1 && current.iter().any(|m| m.endpoint() == r) {
            current.retain(|m| m.endpoint() != r);
            if let Some(token) = restart {
                restarting.push(token);
            }
        } else {
            return;
        }
    }
    if let (Some(token), Some(_)) = (restart, &add) {
        // The second half of a restart: only if its own first half removed the endpoint.
        let Some(i) = restarting.iter().position(|t| *t == token) else {
            return;
        };
        restarting.remove(i);
    }
    let mut restarted = None;
    if let Some(a) = add {
        if current.iter().any(|m| m.endpoint() == a.endpoint()) {
            return;
        }
        // An endpoint that served before comes back as a new process.
        if changes
            .iter()
            .any(|(_, set)| set.iter().any(|m| m.endpoint() == a.endpoint()))
        {
            restarted = Some(Arc::from(a.endpoint()));
        }
        current.push(a);
    }
    let at = at.max(changes.last().map_or(0, |(t, _)| *t));
    changes.push((at, current.clone()));
    if let Some(e) = restarted {
        restarts.entry(changes.len() - 1).or_default().push(e);
    }
}

/// Runs one history: (violations, log, runs of spans moved).
fn simulate(h: &History, claims: bool) -> (Vec<String>, String, u64) {
    let cfg = RuleConfig::try_new(DECISION_WAIT, SKEW, MARGIN, GRACE).expect("valid timing");
    let (changes, restarts, mut log) = plan(h);
    let tables: Vec<Arc<RoutingTable>> = changes
        .iter()
        .map(|(_, set)| Arc::new(RoutingTable::build(Mode::Jump, set.clone()).expect("valid set")))
        .collect();
    let mut rng = Rng(h.seed);
    let last_change = changes.last().map_or(0, |(t, _)| *t);
    // Traces start from 1 s before the first change to 2 s after the last.
    let mut spans = Vec::new();
    for n in 0..h.traces {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&rng.next().to_le_bytes());
        trace[8..].copy_from_slice(&(n as u64).to_le_bytes());
        let start = rng.below(last_change + 3 * S);
        let count = 1 + rng.below(30);
        for _ in 0..count {
            spans.push(Span {
                trace,
                agent: rng.below(h.agents as u64) as usize,
                at: start + rng.below(DECISION_WAIT / 2),
                state: SpanState::Free,
            });
        }
    }
    let mut w = World {
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        rng,
        cfg,
        tables: tables.clone(),
        change_at: changes.iter().map(|(t, _)| *t).collect(),
        gateways: Vec::new(),
        serving: BTreeMap::new(),
        restarts,
        agents: (0..h.agents)
            .map(|a| Agent {
                table: tables[0].clone(),
                version: 0,
                stamps: h.stamps & (1 << a) != 0,
            })
            .collect(),
        spans,
        decisions: HashMap::new(),
        last_move: 0,
        last_view: 0,
        violations: Vec::new(),
        log: String::new(),
        claims,
    };
    for m in tables[0].members() {
        w.start_gateway(Arc::from(m.endpoint()), 0);
    }
    for k in 1..w.change_at.len() {
        let at = w.change_at[k] + S; // traffic is already flowing when the first change comes
        w.at(at, Ev::Change(k));
    }
    for s in 0..w.spans.len() {
        let at = w.spans[s].at;
        w.at(at, Ev::Emit(s));
    }
    w.run();

    // P1 and P4.
    let mut by_trace: BTreeMap<[u8; 16], Vec<SpanState>> = BTreeMap::new();
    for s in &w.spans {
        by_trace.entry(s.trace).or_default().push(s.state);
    }
    for (trace, states) in &by_trace {
        let decisions = w.decisions.get(trace).cloned().unwrap_or_default();
        let id = hex::encode(&trace[..4]);
        if decisions.len() != 1 {
            w.violation(format!(
                "P1: trace {id} decided {decisions:?} (process, ns)"
            ));
            continue;
        }
        let (p, _) = decisions[0];
        for st in states {
            match st {
                SpanState::Decided(q) if *q == p => {}
                SpanState::Decided(q) => w.violation(format!(
                    "P1: a span of {id} decided at {q}, the trace at {p}"
                )),
                other => w.violation(format!("P4: a span of {id} ends {other:?}")),
            }
        }
    }
    // P5: nothing moves once every view agrees and grace has passed.
    if w.last_move > w.last_view + GRACE {
        let (m, v) = (w.last_move / MS, w.last_view / MS);
        w.violation(format!("P5: a span moved at {m}ms, views agreed at {v}ms"));
    }
    let splits: u64 = w
        .gateways
        .iter()
        .map(|g| g.rules.counters().splits_decided_before_claim)
        .sum();
    if splits > 0 {
        w.violation(format!(
            "{splits} claims met a fragment decided before them"
        ));
    }
    let moved = w.gateways.iter().map(|g| {
        let c = g.rules.counters();
        c.forwarded_claim + c.forwarded_not_owner + c.handed_over_claim + c.fragments_handed_over
    });
    let moved: u64 = moved.sum();
    for (k, set) in changes.iter().enumerate() {
        let names: Vec<_> = set.1.iter().map(|m| m.endpoint().to_owned()).collect();
        let _ = writeln!(
            log,
            "change {k} at {}ms: {names:?}",
            (w.change_at[k] + S * u64::from(k > 0)) / MS
        );
    }
    log.push_str(&w.log);
    (w.violations, log, moved)
}

/// Cases per run: ~20 s in a debug build on 2 shared cores (measured, see the report).
const CASES: u32 = 8192;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        // Deterministic (§4.6): the same histories on every run and machine. `census` below
        // samples many more.
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_span_of_a_trace_reaches_one_decision_point(h in history()) {
        let (violations, log, _) = simulate(&h, true);
        prop_assert!(violations.is_empty(), "{}\nhistory:\n{log}", violations.join("\n"));
    }
}

/// The model must be able to fail: without claims (ownership only, as the collector routes)
/// the same kind of history splits traces, and the full rules keep it whole.
#[test]
fn the_model_sees_splits_without_claims() {
    let mut clean = 0;
    let mut split = 0;
    for seed in 0..20 {
        let h = History {
            initial: 3,
            events: vec![(1_000, Event::Join), (1_500, Event::Leave(0))],
            agents: 4,
            stamps: 0,
            traces: 40,
            seed,
        };
        let (violations, log, moved) = simulate(&h, true);
        assert!(violations.is_empty(), "{violations:?}\n{log}");
        assert!(moved > 0, "the history must move something");
        clean += 1;
        let (violations, _, _) = simulate(&h, false);
        if violations.iter().any(|v| v.contains("P1")) {
            split += 1;
        }
    }
    assert_eq!(clean, 20);
    assert!(
        split >= 10,
        "only {split} of 20 runs without claims split a trace"
    );
}

/// Regression: the swap the model test found in step 3 (`docs/membership-design.md` §4.7). The
/// owner under the middle view (gw-2) chose to hand its fragment of `a5fc4061` to the old holder
/// (gw-0), then left; gw-0, owner again, received gw-2's claim and ordered the opposite hand-over;
/// both fired and the trace was decided on two gateways. Set `MODEL_TRACE=a5fc4061` and run with
/// `--nocapture` to print every message of that trace.
#[test]
fn replay_the_middle_owner_leaves_before_its_hand_over() {
    let h = History {
        initial: 2,
        events: vec![
            (4314, Event::Leave(1)),
            (3965, Event::Join),
            (680, Event::Leave(1)),
        ],
        agents: 1,
        stamps: 0,
        traces: 24,
        seed: 6103479588368803214,
    };
    assert_clean(&h);
}

/// Runs `h` and fails with its log on any violation (properties 1–5, at most two moves).
fn assert_clean(h: &History) {
    let (violations, log, _) = simulate(h, true);
    assert!(violations.is_empty(), "{}\n{log}", violations.join("\n"));
}

/// How often each property fails over many random histories (no shrinking): `cargo test -p
/// tailgate-routing --test membership_model census -- --ignored --nocapture`.
#[test]
#[ignore = "measurement"]
fn census() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let n: usize = std::env::var("CENSUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let mut runner = TestRunner::deterministic();
    let strategy = history();
    let mut failed = 0;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..n {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let h = tree.current();
        let (violations, _, _) = simulate(&h, true);
        if !violations.is_empty() {
            failed += 1;
            if std::env::var("CENSUS_SHOW").is_ok_and(|k| violations.iter().any(|v| v.contains(&k)))
            {
                eprintln!("{h:?}\n{}", violations.join("\n"));
            }
            let mut seen: Vec<String> = violations
                .iter()
                .map(|v| {
                    let v = v.split_once(' ').map_or(v.as_str(), |(_, rest)| rest);
                    v.split(':').next().unwrap_or(v).chars().take(12).collect()
                })
                .collect();
            seen.sort();
            seen.dedup();
            for k in seen {
                *kinds.entry(k).or_default() += 1;
            }
        }
    }
    eprintln!("{failed} of {n} histories violate a property: {kinds:?}");
}

/// Regression: a decided holder that bounces a redirect must tell the owner. gw-3 decided
/// `a5f54fa6` on its normal timer just after losing it; the owner gw-2 redirected it to gw-4 (the
/// first claimant), gw-3 bounced the redirect, gw-4 handed its spans to gw-3, but gw-2 still named
/// gw-4 and released its own fragment there: a second decision point (found by `census` once the
/// swap above was fixed).
#[test]
fn replay_a_decided_holder_bounces_a_redirect() {
    let h = History {
        initial: 3,
        events: vec![
            (1599, Event::Leave(3)),
            (1279, Event::Restart(5)),
            (142, Event::Leave(0)),
            (4831, Event::Leave(0)),
            (4633, Event::Rolling(4, 1489)),
            (1177, Event::Restart(0)),
            (347, Event::Rolling(1, 3287)),
        ],
        agents: 2,
        stamps: 141,
        traces: 36,
        seed: 7790650347189621159,
    };
    assert_clean(&h);
}

/// Regression (third move): gw-0 and gw-2 each held a fragment; the owner gw-3 heard gw-2 first
/// and redirected gw-0 there, while gw-1, the previous owner, carried out its choice of gw-0. With
/// "first claim wins" gw-0 then pulled gw-2's fragment back (a third move); with ties broken by
/// endpoint at the owner, gw-0 keeps from the start.
#[test]
fn replay_a_late_release_lands_on_the_keeper() {
    let h = History {
        initial: 4,
        events: vec![
            (3325, Event::Leave(4)),
            (373, Event::Leave(1)),
            (461, Event::Leave(2)),
            (2805, Event::Leave(3)),
            (2307, Event::Leave(0)),
        ],
        agents: 3,
        stamps: 228,
        traces: 39,
        seed: 1459101363963171119,
    };
    assert_clean(&h);
}
/// Regression (third move): an owner ranked gw-0's claim sent just before a hand-over anchored
/// it, and redirected gw-0 to an unanchored holder; gw-0 now keeps and tells the owner.
#[test]
fn replay_an_anchored_fragment_is_not_redirected_to_an_unanchored_one() {
    let h = History {
        initial: 4,
        events: vec![
            (3615, Event::Restart(7)),
            (1062, Event::Rolling(3, 3583)),
            (2558, Event::Rolling(2, 3785)),
            (562, Event::Restart(1)),
            (612, Event::Restart(3)),
            (1350, Event::Rolling(7, 744)),
            (1059, Event::Leave(2)),
            (3874, Event::Rolling(6, 2650)),
        ],
        agents: 2,
        stamps: 244,
        traces: 17,
        seed: 7114053521437705213,
    };
    assert_clean(&h);
}
/// Regression (third move): the owners under two successive views heard gw-3's and gw-4's claims
/// in opposite orders; "first claim wins" redirected each to the other and the fragments crossed
/// (spans moved three and four times). Ties broken by endpoint agree whatever the order.
#[test]
fn replay_successive_owners_pick_the_same_keeper() {
    let h = History {
        initial: 5,
        events: vec![
            (745, Event::Restart(0)),
            (744, Event::Rolling(6, 2177)),
            (2607, Event::Join),
            (1787, Event::Join),
            (115, Event::Rolling(0, 3364)),
        ],
        agents: 3,
        stamps: 172,
        traces: 14,
        seed: 14968417283093731977,
    };
    assert_clean(&h);
}
/// Regression (split): a core that does not own the trace broke a tie between two claims and
/// redirected the standing holder, which was the owner itself; the owner's record of the third
/// holder was overwritten by the redirect and that holder decided alone. Only the owner breaks
/// ties by endpoint.
#[test]
fn replay_a_non_owner_does_not_break_ties() {
    let h = History {
        initial: 3,
        events: vec![
            (4302, Event::Leave(3)),
            (3971, Event::Leave(3)),
            (5211, Event::Rolling(3, 3091)),
            (543, Event::Rolling(3, 2174)),
            (4971, Event::Leave(1)),
            (4862, Event::Restart(7)),
        ],
        agents: 2,
        stamps: 180,
        traces: 23,
        seed: 3686560160441552412,
    };
    assert_clean(&h);
}
/// Regression (third move, found by the proptest at 8,192 cases): gw-4 had handed its fragment to
/// gw-3, then a previous owner's release brought gw-4 a fresh one; kept there, it anchored gw-4,
/// whose claim outranked gw-3's at the owner, and gw-3's forwarded spans moved a third time. The
/// hand-over now goes on to gw-3 (anchored, lower endpoint).
#[test]
fn replay_a_hand_over_follows_an_anchored_keeper() {
    let h = History {
        initial: 3,
        events: vec![
            (1919, Event::Rolling(2, 2957)),
            (2956, Event::Join),
            (3417, Event::Leave(7)),
            (2594, Event::Rolling(3, 853)),
            (736, Event::Leave(2)),
            (1791, Event::Leave(1)),
            (2161, Event::Restart(0)),
        ],
        agents: 4,
        stamps: 19,
        traces: 20,
        seed: 11448265399404861069,
    };
    assert_clean(&h);
}
