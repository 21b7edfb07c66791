//! A realistic span corpus, generated from a seed, for compression and throughput work.
//!
//! Synthetic load (the perf rig's default 225-byte spans with repeated attribute values) compresses
//! far better than real traffic, which makes gzip look cheaper and better than it is. Real agents
//! see random 16/8-byte trace and span IDs, URLs and user IDs that differ per request, durations and
//! timestamps that vary in every span, several services per request, and now and then a large
//! attribute: a SQL statement or an exception stack trace of a few KiB. This module makes requests
//! like that, deterministically: the same seed gives the same bytes on every machine and version
//! (a tiny SplitMix64 generator lives here so no `rand` release can change the output).
//!
//! Nothing is checked in: a request of [`SPANS_PER_REQUEST`] spans is about 0.5 MB and takes a few
//! milliseconds to make. Used by `benches/codec.rs` and available to the perf rig
//! (`tailgate_perf::gen::corpus`).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, SpanKind},
    status::StatusCode,
    ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message as _;

/// Spans per request, as an agent's batch processor sends them (the throughput scenarios' size).
pub const SPANS_PER_REQUEST: usize = 1000;

/// Deterministic source of realistic `ExportTraceServiceRequest`s.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The only source of randomness, so output depends on the seed alone.
    rng: SplitMix64,
    /// Start time of the next request's spans; advances so successive requests look like a stream.
    clock_ns: u64,
}

impl Corpus {
    /// A corpus whose requests are a pure function of `seed`.
    pub fn new(seed: u64) -> Self {
        Corpus {
            rng: SplitMix64(seed),
            // 2026-01-01T00:00:00Z: real timestamps, so the varints are full-width as on the wire.
            clock_ns: 1_767_225_600_000_000_000,
        }
    }

    /// The next request, holding `spans` spans from traces of 1–40 spans spread over 3–6 services.
    pub fn next_request(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let rng = &mut self.rng;
        let n_services = 3 + rng.below(4) as usize;
        // Distinct services from the pool, in a random order.
        let mut pool: Vec<usize> = (0..SERVICES.len()).collect();
        for i in 0..n_services {
            let j = i + rng.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        let services: Vec<Service> = pool[..n_services]
            .iter()
            .map(|&i| Service::new(i, rng))
            .collect();

        let mut buckets: Vec<Vec<Span>> = vec![Vec::new(); n_services * SCOPES.len()];
        let mut made = 0;
        while made < spans {
            let len = (1 + rng.below(40) as usize).min(spans - made);
            self.clock_ns += rng.below(5_000_000);
            let trace = make_trace(rng, len, self.clock_ns, n_services);
            for (service, scope, span) in trace {
                buckets[service * SCOPES.len() + scope].push(span);
            }
            made += len;
        }

        let resource_spans = services
            .into_iter()
            .enumerate()
            .map(|(s, service)| ResourceSpans {
                resource: Some(Resource {
                    attributes: service.attributes,
                    ..Default::default()
                }),
                scope_spans: SCOPES
                    .iter()
                    .enumerate()
                    .filter_map(|(c, &(name, version))| {
                        let spans = std::mem::take(&mut buckets[s * SCOPES.len() + c]);
                        (!spans.is_empty()).then(|| ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: name.into(),
                                version: version.into(),
                                ..Default::default()
                            }),
                            spans,
                            schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
                        })
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    /// The next request, protobuf-encoded.
    pub fn next_request_bytes(&mut self, spans: usize) -> Vec<u8> {
        self.next_request(spans).encode_to_vec()
    }
}

/// `count` encoded requests of `spans` spans each from `Corpus::new(seed)`.
pub fn requests(seed: u64, count: usize, spans: usize) -> Vec<Vec<u8>> {
    let mut corpus = Corpus::new(seed);
    (0..count)
        .map(|_| corpus.next_request_bytes(spans))
        .collect()
}

// === generator ===

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data; fixed here so
/// the corpus never changes under us.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-high (bias is irrelevant for test data).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| char::from(DIGITS[self.below(16) as usize]))
            .collect()
    }

    /// Log-uniform duration between `lo` and `hi` nanoseconds: many fast spans, a tail of slow ones.
    fn duration(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = (lo.max(1) as f64, hi.max(lo + 1) as f64);
        let u = self.below(1 << 53) as f64 / (1u64 << 53) as f64;
        (lo * (hi / lo).powf(u)) as u64
    }
}

// === content ===

/// (service.name, language) pairs; a request carries a few of them.
const SERVICES: &[(&str, &str)] = &[
    ("frontend", "nodejs"),
    ("checkout", "go"),
    ("cart", "dotnet"),
    ("payment", "java"),
    ("orders", "java"),
    ("inventory", "go"),
    ("shipping", "rust"),
    ("recommendation", "python"),
    ("ad", "java"),
    ("currency", "cpp"),
    ("email", "ruby"),
    ("quote", "php"),
];

/// Instrumentation scopes: index 0 HTTP, 1 database, 2 RPC/messaging, 3 manual.
const SCOPES: &[(&str, &str)] = &[
    ("io.opentelemetry.http", "2.10.0"),
    ("io.opentelemetry.jdbc", "2.10.0"),
    ("io.opentelemetry.grpc-1.6", "2.10.0"),
    ("com.example.manual", "1.4.2"),
];

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH",
];
const ROUTES: &[&str] = &[
    "/api/v1/users/{id}",
    "/api/v1/orders/{id}",
    "/api/v1/orders/{id}/items",
    "/api/v2/cart/{id}",
    "/api/v2/products/{id}/reviews",
    "/api/v1/search",
    "/api/v1/checkout/{id}/confirm",
    "/healthz",
];
const STATUS: &[i64] = &[
    200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 301, 400, 401, 404, 404, 409, 500, 503,
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "okhttp/4.12.0",
    "Go-http-client/2.0",
    "python-requests/2.32.3",
];
const DB: &[(&str, &str)] = &[
    ("postgresql", "orders"),
    ("postgresql", "users"),
    ("mysql", "catalog"),
    ("redis", "0"),
];
const TABLES: &[&str] = &[
    "orders",
    "order_items",
    "users",
    "products",
    "inventory",
    "payments",
];
const COLUMNS: &[&str] = &[
    "id",
    "user_id",
    "created_at",
    "updated_at",
    "status",
    "total_cents",
    "currency",
    "sku",
    "quantity",
    "shipping_address_id",
    "email",
    "display_name",
];
const RPCS: &[(&str, &str)] = &[
    ("oteldemo.CartService", "GetCart"),
    ("oteldemo.CurrencyService", "Convert"),
    ("oteldemo.ProductCatalogService", "GetProduct"),
    ("oteldemo.ShippingService", "GetQuote"),
    ("oteldemo.PaymentService", "Charge"),
];
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "java.sql.SQLTransientConnectionException",
        "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
    ),
    (
        "java.lang.NullPointerException",
        "Cannot invoke \"com.example.orders.Order.getItems()\" because \"order\" is null",
    ),
    (
        "io.grpc.StatusRuntimeException",
        "DEADLINE_EXCEEDED: deadline exceeded after 4.999s",
    ),
];
const FRAMES: &[&str] = &[
    "com.example.orders.OrderService.process(OrderService.java:",
    "com.example.orders.OrderController.create(OrderController.java:",
    "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:",
    "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:",
    "io.grpc.stub.ClientCalls.blockingUnaryCall(ClientCalls.java:",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:",
    "java.base/java.lang.Thread.run(Thread.java:",
];

/// One resource of a request: a service instance with its pod and host.
struct Service {
    attributes: Vec<KeyValue>,
}

impl Service {
    fn new(index: usize, rng: &mut SplitMix64) -> Self {
        let (name, lang) = SERVICES[index];
        let pod = format!("{name}-{}-{}", rng.hex(10), rng.hex(5));
        let attributes = vec![
            kv("service.name", name),
            kv("service.namespace", "shop"),
            kv(
                "service.version",
                &format!("1.{}.{}", rng.below(20), rng.below(10)),
            ),
            kv("service.instance.id", &uuid(rng)),
            kv("deployment.environment.name", "production"),
            kv(
                "host.name",
                &format!("ip-10-0-{}-{}.ec2.internal", rng.below(256), rng.below(256)),
            ),
            kv("k8s.namespace.name", "shop"),
            kv("k8s.pod.name", &pod),
            kv("k8s.node.name", &format!("node-{}", rng.hex(6))),
            kv("telemetry.sdk.name", "opentelemetry"),
            kv("telemetry.sdk.language", lang),
            kv("telemetry.sdk.version", "1.28.0"),
        ];
        Service { attributes }
    }
}

/// One trace of `len` spans: a root, then children of random earlier spans. Returns each span
/// with its service and scope index.
fn make_trace(
    rng: &mut SplitMix64,
    len: usize,
    start_ns: u64,
    services: usize,
) -> Vec<(usize, usize, Span)> {
    let trace_id = rng.bytes::<16>().to_vec();
    let mut out: Vec<(usize, usize, Span)> = Vec::with_capacity(len);
    for i in 0..len {
        let (parent, service, begin, budget) = if i == 0 {
            (Vec::new(), rng.below(services as u64) as usize, start_ns, 0)
        } else {
            let p = &out[rng.below(i as u64) as usize];
            let pspan = &p.2;
            let pdur = pspan.end_time_unix_nano - pspan.start_time_unix_nano;
            let offset = rng.below(pdur / 2 + 1);
            // Children mostly stay in the parent's service; a third cross to another one.
            let service = if rng.chance(333) {
                rng.below(services as u64) as usize
            } else {
                p.0
            };
            (
                pspan.span_id.clone(),
                service,
                pspan.start_time_unix_nano + offset,
                pdur - offset,
            )
        };
        let scope = if i == 0 { 0 } else { rng.below(4) as usize };
        let duration = if i == 0 {
            rng.duration(200_000, 3_000_000_000)
        } else {
            rng.duration(20_000, budget.max(20_001))
        };
        let mut span = Span {
            trace_id: trace_id.clone(),
            span_id: rng.bytes::<8>().to_vec(),
            parent_span_id: parent,
            start_time_unix_nano: begin,
            end_time_unix_nano: begin + duration,
            ..Default::default()
        };
        fill(rng, &mut span, scope, i == 0);
        out.push((service, scope, span));
    }
    out
}

/// Name, kind, attributes, status and events of a span by the instrumentation that made it.
fn fill(rng: &mut SplitMix64, span: &mut Span, scope: usize, root: bool) {
    let mut status = StatusCode::Unset;
    match scope {
        0 => {
            let method = *rng.pick(METHODS);
            let route = *rng.pick(ROUTES);
            let path = route.replace("{id}", &rng.below(10_000_000).to_string());
            let code = *rng.pick(STATUS);
            span.name = format!("{method} {route}");
            span.kind = if root {
                SpanKind::Server
            } else {
                SpanKind::Client
            } as i32;
            span.attributes = vec![
                kv("http.request.method", method),
                kv("http.route", route),
                kv("url.path", &path),
                kv("url.scheme", "https"),
                int("http.response.status_code", code),
                kv("server.address", "shop.example.com"),
                int("server.port", 443),
                kv(
                    "client.address",
                    &format!(
                        "10.{}.{}.{}",
                        rng.below(256),
                        rng.below(256),
                        rng.below(256)
                    ),
                ),
                kv("user_agent.original", rng.pick::<&str>(AGENTS)),
                kv("user.id", &format!("u-{}", rng.hex(12))),
                int("http.request.body.size", rng.below(4096) as i64),
            ];
            if rng.chance(300) {
                span.attributes.push(kv(
                    "url.query",
                    &format!(
                        "q={}&page={}&session={}",
                        rng.hex(6),
                        rng.below(50),
                        rng.hex(24)
                    ),
                ));
            }
            if code >= 500 {
                status = StatusCode::Error;
            }
        }
        1 => {
            let (system, db) = *rng.pick(DB);
            let table = *rng.pick(TABLES);
            // A few percent of statements are the big generated ones ORMs produce.
            let statement = if rng.chance(40) {
                long_statement(rng, table)
            } else {
                format!(
                    "SELECT {}, {} FROM {table} WHERE id = ${} LIMIT {}",
                    rng.pick(COLUMNS),
                    rng.pick(COLUMNS),
                    1 + rng.below(3),
                    1 + rng.below(100)
                )
            };
            span.name = format!("SELECT {db}.{table}");
            span.kind = SpanKind::Client as i32;
            span.attributes = vec![
                kv("db.system", system),
                kv("db.namespace", db),
                kv("db.operation.name", "SELECT"),
                kv("db.collection.name", table),
                kv("db.query.text", &statement),
                kv(
                    "server.address",
                    &format!("{system}-{}.shop.svc", rng.below(3)),
                ),
                int("server.port", 5432),
                int("db.response.returned_rows", rng.below(500) as i64),
            ];
        }
        2 => {
            let (service, method) = *rng.pick(RPCS);
            span.name = format!("{service}/{method}");
            span.kind = SpanKind::Client as i32;
            let code = if rng.chance(30) { 4 } else { 0 };
            span.attributes = vec![
                kv("rpc.system", "grpc"),
                kv("rpc.service", service),
                kv("rpc.method", method),
                int("rpc.grpc.status_code", code),
                kv(
                    "server.address",
                    &format!("{}.shop.svc", service.to_lowercase()),
                ),
                int("server.port", 8080),
                kv(
                    "network.peer.address",
                    &format!("10.1.{}.{}", rng.below(256), rng.below(256)),
                ),
            ];
            if code != 0 {
                status = StatusCode::Error;
            }
        }
        _ => {
            span.name = format!("process {}", rng.pick(TABLES));
            span.kind = SpanKind::Internal as i32;
            span.attributes = vec![
                kv("code.function", "process"),
                kv("code.namespace", "com.example.orders.OrderService"),
                int("thread.id", rng.below(200) as i64),
                int("app.items", rng.below(30) as i64),
            ];
        }
    }
    // Exceptions on a few percent of spans, with the stack trace as an event attribute.
    if status == StatusCode::Error || rng.chance(15) {
        status = StatusCode::Error;
        let (ty, message) = *rng.pick(EXCEPTIONS);
        span.events.push(Event {
            time_unix_nano: span.end_time_unix_nano - rng.below(1000),
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", ty),
                kv("exception.message", message),
                kv("exception.stacktrace", &stack_trace(rng, ty, message)),
            ],
            dropped_attributes_count: 0,
        });
    }
    if status == StatusCode::Error {
        span.status = Some(Status {
            message: "request failed".into(),
            code: StatusCode::Error as i32,
        });
    }
}

/// An ORM-style statement of roughly 1–4 KiB: many columns and a long `IN` list of random ids.
fn long_statement(rng: &mut SplitMix64, table: &str) -> String {
    let target = 1024 + rng.below(3 * 1024) as usize;
    let mut s = String::with_capacity(target + 64);
    s.push_str("SELECT ");
    for (i, c) in COLUMNS.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("t0.{c} AS {c}_{i}"));
    }
    s.push_str(&format!(" FROM {table} t0 WHERE t0.id IN ("));
    let mut first = true;
    while s.len() < target {
        if !first {
            s.push_str(", ");
        }
        first = false;
        s.push_str(&rng.below(100_000_000).to_string());
    }
    s.push_str(") ORDER BY t0.created_at DESC");
    s
}

/// A Java-style stack trace of roughly 1–4 KiB with varying line numbers.
fn stack_trace(rng: &mut SplitMix64, ty: &str, message: &str) -> String {
    let target = 1024 + rng.below(3 * 1024) as usize;
    let mut s = format!("{ty}: {message}\n");
    while s.len() < target {
        s.push_str("\tat ");
        s.push_str(rng.pick::<&str>(FRAMES));
        s.push_str(&(20 + rng.below(900)).to_string());
        s.push_str(")\n");
    }
    s
}

fn uuid(rng: &mut SplitMix64) -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(3),
        rng.hex(3),
        rng.hex(12)
    )
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(requests(7, 2, 300), requests(7, 2, 300));
        assert_ne!(requests(7, 1, 300), requests(8, 1, 300));
        // Successive requests of one corpus differ (fresh IDs, later timestamps).
        let two = requests(7, 2, 300);
        assert_ne!(two[0], two[1]);
    }

    #[test]
    fn requests_hold_the_asked_span_count_and_decode() {
        for spans in [1, 37, SPANS_PER_REQUEST] {
            let bytes = Corpus::new(1).next_request_bytes(spans);
            assert_eq!(crate::scan::count_spans(&bytes), Ok(spans));
            let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
            let services = req.resource_spans.len();
            assert!((1..=6).contains(&services), "{services} services");
        }
    }

    #[test]
    fn a_few_percent_of_spans_carry_a_large_attribute() {
        let req = Corpus::new(3).next_request(SPANS_PER_REQUEST);
        let spans: Vec<&Span> = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let large = spans.iter().filter(|s| s.encoded_len() > 1024).count();
        assert!(
            (10..=100).contains(&large),
            "{large} of {} spans over 1 KiB",
            spans.len()
        );
        let ids: std::collections::HashSet<&[u8]> =
            spans.iter().map(|s| s.span_id.as_slice()).collect();
        assert_eq!(ids.len(), spans.len(), "span ids are random and distinct");
        assert!(spans
            .iter()
            .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8));
        // Mean size between the synthetic load's 225 bytes and a few KiB.
        let mean = spans.iter().map(|s| s.encoded_len()).sum::<usize>() / spans.len();
        assert!((250..=1000).contains(&mean), "mean span {mean} bytes");
    }
}
