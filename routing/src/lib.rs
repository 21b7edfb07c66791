//! Sans-IO trace-ID routing for the agent's `loadbalancing` exporter.
//!
//! An agent must send every span of a trace to the same gateway, whichever agent receives it, or tail
//! sampling sees half traces. This crate decides *which* gateway: it turns a member set (what the
//! static, dns or k8s resolver found) into an immutable [`RoutingTable`] and maps a routing key (a
//! 16-byte trace ID, or a service name for `routing_key: service`) to a member index. It has no
//! runtime and no sockets, so every placement rule is deterministic and tested here; the proxy's
//! resolvers build tables off the data path and publish them, and the per-core exporters read them.
//!
//! A table is a **pure function of the member set** (order, duplicates and history do not matter;
//! in `jump` mode the ordinals carry the order), so agents that started at different times and saw
//! different resolver histories route identically. Lookups are allocation-free and take no lock.
//!
//! # Modes
//! - [`Mode::Jump`]: jump consistent hash (Lamping & Veach) over stable ordinals, StatefulSet pod
//!   ordinals (`gateway-3.gateway-headless:4317`) or static-list positions. Exact balance, minimal
//!   movement. A missing or failed-over ordinal is skipped by re-jumping with a derived key, so only
//!   its own keys move. Lookup cost grows with `ln n` (one float division per jump step).
//! - [`Mode::Slots`]: 65,536 slots, each given to the member with the highest rendezvous (HRW) score
//!   for that slot: for unordered address sets (DNS A records). Lookup is one mix and one load.
//! - [`Mode::Collector`]: the collector contrib v0.115.0 `loadbalancing` ring bit for bit (sorted
//!   endpoints, 100 crc32 points each on 36,000 positions, crc32 of the raw key, next point
//!   clockwise), flattened to one owner per position. For migrating a fleet node by node; proven
//!   against vectors from a standard-library Go re-implementation (`testdata/collector_ring.go`).
//!
//! Defaults ([`Mode::default_for`]): `static` → `jump` (see [`Member::static_list`]), `k8s` → `jump`
//! when every member has a pod ordinal (`return_hostnames: true`), else `slots`; `dns` → `slots`.
//! Our own config keys live in a `tailgate:` block of the exporter, e.g.
//! `loadbalancing: {tailgate: {hashing: collector}}` (parsed with [`Mode`]'s `FromStr`); see
//! `docs/routing.md`.
//!
//! # Failover
//! [`RoutingTable::failover`] gives the keys of unhealthy members to a deterministic fallback owner
//! and leaves every other key in place: `jump` re-jumps, `slots` takes each slot's next-highest HRW
//! score, `collector` takes the next healthy ring point. It depends only on (member set, unhealthy
//! set), so every agent that agrees on both agrees on the owners.
//!
//! # Measured balance and movement
//! `cargo run --release -p tailgate-routing --example balance` (1,000,000 random trace IDs, seed
//! 0x5eed; 2026-11-25). max/mean = most loaded member over the mean (1.000 is perfect); add / remove =
//! fraction of keys whose gateway changes when one member joins / leaves (ideal `1/(n+1)` / `1/n`).
//! Members: pod names for `jump` (remove = highest ordinal), DNS-style `10.1.x.y:4317` for the others
//! (remove = the middle member). The tests check that moved keys only go to the new member or come
//! from the removed one, for every mode.
//!
//! | n | ideal add / remove | jump max/mean | jump add / remove | slots max/mean | slots add / remove | collector max/mean | collector add / remove |
//! |---|---|---|---|---|---|---|---|
//! | 2 | 33.3% / 50.0% | 1.003 | 33.4% / 50.1% | 1.002 | 33.9% / 49.9% | 1.072 | 32.2% / 53.6% |
//! | 3 | 25.0% / 33.3% | 1.002 | 25.0% / 33.4% | 1.016 | 24.8% / 32.9% | 1.111 | 24.2% / 37.0% |
//! | 4 | 20.0% / 25.0% | 1.002 | 20.0% / 25.0% | 1.019 | 20.0% / 25.5% | 1.030 | 19.7% / 25.1% |
//! | 5 | 16.7% / 20.0% | 1.002 | 16.7% / 20.0% | 1.019 | 16.7% / 20.4% | 1.096 | 18.4% / 19.3% |
//! | 8 | 11.1% / 12.5% | 1.005 | 11.1% / 12.5% | 1.026 | 10.9% / 12.5% | 1.137 | 10.6% / 14.2% |
//! | 12 | 7.7% / 8.3% | 1.006 | 7.7% / 8.3% | 1.019 | 7.7% / 8.3% | 1.187 | 8.5% / 7.8% |
//! | 16 | 5.9% / 6.2% | 1.008 | 5.9% / 6.3% | 1.018 | 5.9% / 6.2% | 1.259 | 5.8% / 6.7% |
//! | 32 | 3.0% / 3.1% | 1.013 | 3.0% / 3.1% | 1.037 | 3.2% / 3.1% | 1.367 | 2.7% / 3.6% |
//! | 64 | 1.5% / 1.6% | 1.023 | 1.5% / 1.5% | 1.082 | 1.4% / 1.6% | 1.298 | 1.4% / 1.6% |
//!
//! Jump's residual imbalance is sampling noise (1 M keys / 64 members ≈ 0.8 % per member); slots add
//! the slot granularity (2^13 slots gave 1.25 at 64 members, hence 2^16); the collector's ring is
//! coarse (100 points per member) and its moved fractions follow its uneven shares.
//!
//! # Cost
//! CPU time per trace-ID lookup, which other load on the machine does not inflate
//! (`cargo run --release -p tailgate-routing --example cost`: thread run time from
//! `/proc/thread-self/schedstat`, 20 M lookups over 4096 IDs, loop overhead subtracted; 2026-11-25,
//! ranges over three runs because cache and SMT sharing with other jobs vary):
//!
//! | mode | 3 members | 16 members | 64 members |
//! |---|---|---|---|
//! | jump | 12–14 ns | 19–29 ns | 37–43 ns |
//! | slots | 1.5–4 ns | 1.5–4 ns | 1.5–4 ns |
//! | collector | 6–10 ns | 6–10 ns | 6–10 ns |
//!
//! `slots` is one mix and one load. `jump` pays ~ln n steps of the paper's loop (a float division
//! each). `collector` pays a slice-by-16 crc32 of the 16 bytes (crc32fast's general path took ~13 ns)
//! and one load from its 72 KiB table. For `jump` and `collector` the exporter should look up once per
//! run of same-trace spans (they are adjacent in a batch), not once per span.
//!
//! Criterion, wall clock: `cargo bench -p tailgate-routing --bench routing` (2026-11-25, 2 cores shared
//! with builds at a load average of ~15: the `baseline` loop alone measured 3.9 ns, so lookups are
//! inflated several times; re-measure on a quiet machine). Lookup per trace ID and table build:
//!
//! | mode | lookup 3 | lookup 16 | lookup 64 | build 3 | build 16 | build 64 | failover 16 |
//! |---|---|---|---|---|---|---|---|
//! | jump | 47 ns | 97 ns | 162 ns | 0.75 µs | 3.2 µs | 12.9 µs | 1.8 µs |
//! | slots | 35 ns | 35 ns | 36 ns | 2.6 ms | 9.2 ms | 22.9 ms | 9.8 ms |
//! | collector | 43 ns | 47 ns | 41 ns | 196 µs | 253 µs | 765 µs | 316 µs |
//!
//! Builds and failovers happen once per membership or health change, off the data path.
//!
//! # Layout
//! - [`member`]: [`Member`] (endpoint + optional ordinal), ordinal parsing, static lists.
//! - [`mode`]: [`Mode`], its config names, [`ResolverKind`] and the default mode per resolver.
//! - [`table`]: [`RoutingTable`]: build from a set, route a key, fail over, fingerprint.
//! - [`membership`]: the sans-IO gateway membership rules (views, claims, deferral, dedup).
//! - [`hash`]: the frozen key mixing and jump consistent hash shared by `jump` and `slots`.
//! - `jump` (private): the ordinal table with re-jumps.
//! - [`slots`]: the rendezvous-assigned slot table.
//! - [`collector`]: the collector's ring, flattened.
//! - [`measure`]: reproducible trace IDs, balance and movement (tests, example, benches).
//! - [`error`]: [`TableError`], [`UnknownMode`].

pub mod collector;
pub mod error;
pub mod hash;
pub mod health;
mod jump;
pub mod measure;
pub mod member;
pub mod membership;
pub mod mode;
pub mod slots;
pub mod table;

pub use error::{TableError, UnknownMode};
pub use member::{parse_ordinal, Member, MAX_ORDINAL};
pub use mode::{Mode, ResolverKind};
pub use table::{RouteKey, RoutingTable, MAX_MEMBERS};
