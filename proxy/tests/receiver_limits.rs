//! Slow and abusive clients against the real binary: handshake and header timeouts, the per-core
//! connection limit, idle GOAWAY, refused streams, unanswered keepalive pings, slow bodies and
//! abrupt disconnects. Every limit is short (200–300 ms); the tests wait by polling with deadlines.
//! After each abuse a normal export must still succeed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use prost::Message;
use support::{export, http_post, make_request, Tailgate};
use tailgate_proto::compression::Compression;

const DEADLINE: Duration = Duration::from_secs(10);

fn start(grpc: &str, http: &str) -> Tailgate {
    let config = format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
{grpc}
      http:
        endpoint: 127.0.0.1:0
{http}
exporters:
  nop:
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [nop]}}
"
    );
    Tailgate::start(&config, &["--cores", "1"])
}

fn http_addr(tg: &Tailgate) -> SocketAddr {
    tg.addr("receivers::otlp::http")
}

/// The value of the series `name` whose labels include every `k="v"` of `labels`.
fn series(tg: &Tailgate, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn wait_series(tg: &Tailgate, name: &str, labels: &[(&str, &str)], at_least: f64) {
    let until = Instant::now() + DEADLINE;
    loop {
        let v = series(tg, name, labels);
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < until,
            "{name}{labels:?} stayed at {v}, wanted {at_least}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads until the peer closes (EOF or reset); returns what was read. Panics past `DEADLINE`.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body), without waiting for the
/// connection to close. Panics past `DEADLINE`.
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return text,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}; read so far: {text:?}"),
        }
    }
}

async fn export_ok(tg: &Tailgate, seed: u32) {
    let (code, msg) = export(
        tg.grpc(),
        &make_request(seed, 1, 1, 3),
        Compression::Identity,
    )
    .await;
    assert_eq!(code, 0, "{msg}");
    let body = make_request(seed + 1, 1, 1, 3).encode_to_vec();
    let (status, text) = http_post(
        http_addr(tg),
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &body,
    );
    assert_eq!(status, 200, "{text}");
}

/// An export on a new connection; `None` (not a panic) when the connection is refused.
async fn try_export(addr: SocketAddr, seed: u32) -> Option<u32> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (client, conn) = h2::client::handshake(tcp).await.ok()?;
    tokio::spawn(conn);
    Some(
        support::send_on_client(client, addr, &make_request(seed, 1, 1, 2))
            .await
            .0,
    )
}

// === raw HTTP/2 frames ===

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK block of literal fields (no indexing, new names): a gRPC export request head.
fn grpc_head() -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", support::EXPORT_PATH),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        b.push(0);
        b.push(k.len() as u8);
        b.extend_from_slice(k.as_bytes());
        b.push(v.len() as u8);
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// Frames in `bytes` as (type, flags, stream id, payload).
fn parse_frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        if rest.len() < 9 + len {
            break;
        }
        let id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        out.push((rest[3], rest[4], id, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const REFUSED_STREAM: u32 = 7;

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_after_the_handshake_and_header_timeouts() {
    let tg = start(
        "        tailgate: {handshake_timeout: 200ms}",
        "        read_header_timeout: 200ms",
    );
    for (addr, reason, metric) in [
        (
            tg.grpc(),
            "handshake_timeout",
            "otelcol_receiver_connections_refused_total",
        ),
        (
            http_addr(&tg),
            "header_timeout",
            "otelcol_receiver_connections_closed_total",
        ),
    ] {
        let started = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        read_until_closed(&mut s);
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{reason}: closed too early"
        );
        wait_series(&tg, metric, &[("reason", reason)], 1.0);
    }
    export_ok(&tg, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_core_limit_are_closed_and_counted() {
    let tg = start("        tailgate: {max_connections_per_core: 2}", "");
    // Two live h2 connections hold the core's two places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        held.push(client);
    }
    wait_series(
        &tg,
        "otelcol_receiver_open_connections",
        &[("transport", "grpc")],
        2.0,
    );
    let mut extra = TcpStream::connect(tg.grpc()).unwrap();
    read_until_closed(&mut extra);
    wait_series(
        &tg,
        "otelcol_receiver_connections_refused_total",
        &[("transport", "grpc"), ("reason", "max_connections")],
        1.0,
    );
    // The held connections keep working.
    for (i, client) in held.iter().enumerate() {
        let (code, _) = support::send_on_client(
            client.clone(),
            tg.grpc(),
            &make_request(10 + i as u32, 1, 1, 2),
        )
        .await;
        assert_eq!(code, 0);
    }
    // Once one is gone, a new connection gets its place.
    drop(held.pop());
    let until = Instant::now() + DEADLINE;
    loop {
        if try_export(tg.grpc(), 20).await == Some(0) {
            break;
        }
        assert!(Instant::now() < until, "no place freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2_connection_gets_goaway_after_max_connection_idle() {
    let tg = start(
        "        keepalive: {server_parameters: {max_connection_idle: 200ms}}",
        "        idle_timeout: 200ms",
    );
    let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(conn);
    let (code, _) =
        support::send_on_client(client.clone(), tg.grpc(), &make_request(30, 1, 1, 2)).await;
    assert_eq!(code, 0);
    // The client keeps its handle; the server's GOAWAY ends the connection.
    let ended = tokio::time::timeout(DEADLINE, driver).await;
    assert!(ended.is_ok(), "the idle connection was not closed");
    drop(client);
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "grpc"), ("reason", "idle")],
        1.0,
    );
    // HTTP/1: a kept-alive connection is closed after idle_timeout.
    let mut s = TcpStream::connect(http_addr(&tg)).unwrap();
    let body = make_request(31, 1, 1, 2).encode_to_vec();
    write!(
        s,
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut s)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "http"), ("reason", "idle")],
        1.0,
    );
    export_ok(&tg, 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_headers_and_bodies_are_cut() {
    let tg = start(
        "",
        "        read_header_timeout: 300ms\n        read_timeout: 300ms",
    );
    // Headers one byte every 50 ms: the head is not complete after 300 ms.
    let started = Instant::now();
    let mut s = TcpStream::connect(http_addr(&tg)).unwrap();
    let head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n";
    let mut cut = false;
    for b in head {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > DEADLINE {
            break;
        }
    }
    if !cut {
        read_until_closed(&mut s);
    }
    assert!(started.elapsed() >= Duration::from_millis(290));
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "http"), ("reason", "header_timeout")],
        1.0,
    );
    // A body that stops half way.
    let mut s = TcpStream::connect(http_addr(&tg)).unwrap();
    s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nabc")
        .unwrap();
    read_until_closed(&mut s);
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "http"), ("reason", "read_timeout")],
        1.0,
    );
    export_ok(&tg, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_max_concurrent_streams_are_refused_and_counted() {
    let tg = start("        max_concurrent_streams: 2", "");
    let mut s = TcpStream::connect(tg.grpc()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(h2_frame(4, 0, 0, &[])); // SETTINGS
                                        // Three streams opened at once, ignoring the server's limit of two (END_HEADERS, no END_STREAM).
    for id in [1, 3, 5] {
        out.extend(h2_frame(1, 0x4, id, &grpc_head()));
    }
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let until = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !parse_frames(&seen)
        .iter()
        .any(|f| f.0 == RST_STREAM && f.2 == 5)
    {
        assert!(Instant::now() < until, "stream 5 was not refused");
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    let rst = parse_frames(&seen)
        .into_iter()
        .find(|f| f.0 == RST_STREAM && f.2 == 5)
        .unwrap();
    assert_eq!(
        u32::from_be_bytes(rst.3[..4].try_into().unwrap()),
        REFUSED_STREAM
    );
    // Finish stream 1, wait for its trailers, then open stream 7: tailgate sees the gap left by 5
    // and counts it.
    s.write_all(&h2_frame(0, 0x1, 1, &[0, 0, 0, 0, 0])).unwrap();
    while !parse_frames(&seen)
        .iter()
        .any(|f| f.0 == HEADERS && f.2 == 1 && f.1 & 0x1 != 0)
    {
        assert!(Instant::now() < until, "stream 1 was not answered");
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    s.write_all(&h2_frame(1, 0x4 | 0x1, 7, &grpc_head()))
        .unwrap();
    wait_series(
        &tg,
        "otelcol_receiver_refused_streams_total",
        &[("transport", "grpc")],
        1.0,
    );
    drop(s);
    export_ok(&tg, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_keepalive_ping_closes_the_connection() {
    let tg = start(
        "        keepalive: {server_parameters: {time: 200ms, timeout: 200ms}}",
        "",
    );
    // A peer that completes the preface, then reads but never answers anything.
    let mut s = TcpStream::connect(tg.grpc()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    s.write_all(&out).unwrap();
    let started = Instant::now();
    let seen = read_until_closed(&mut s);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "closed too early"
    );
    let frames = parse_frames(&seen);
    assert!(
        frames.iter().any(|f| f.0 == PING && f.1 & 1 == 0),
        "no ping before the close: {frames:?}"
    );
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "grpc"), ("reason", "keepalive_timeout")],
        1.0,
    );
    // A client that answers pings keeps its connection across several keepalive periods.
    let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(conn);
    let answered = series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("reason", "keepalive_timeout")],
    );
    tokio::time::sleep(Duration::from_millis(1000)).await; // time passing is what is tested here
    assert!(!driver.is_finished(), "a live client was disconnected");
    let (code, _) = support::send_on_client(client, tg.grpc(), &make_request(60, 1, 1, 2)).await;
    assert_eq!(code, 0);
    assert_eq!(
        series(
            &tg,
            "otelcol_receiver_connections_closed_total",
            &[("reason", "keepalive_timeout")]
        ),
        answered
    );
    let _ = GOAWAY;
    export_ok(&tg, 61).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnects_mid_body_leave_the_receiver_serving() {
    let tg = start("", "");
    // gRPC: headers and half a message, then the socket is dropped.
    let mut s = TcpStream::connect(tg.grpc()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    out.extend(h2_frame(1, 0x4, 1, &grpc_head()));
    out.extend(h2_frame(0, 0, 1, &[0, 0, 0, 1, 0, 1, 2, 3]));
    s.write_all(&out).unwrap();
    // A half close (FIN, not RST: an RST could discard the frames unread) cuts the stream
    // mid-body; the server then closes the connection.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    read_until_closed(&mut s);
    // HTTP: a body cut short.
    let mut s = TcpStream::connect(http_addr(&tg)).unwrap();
    s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nabc")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    read_until_closed(&mut s);
    for transport in ["grpc", "http"] {
        let until = Instant::now() + DEADLINE;
        while series(
            &tg,
            "otelcol_receiver_open_connections",
            &[("transport", transport)],
        ) > 0.0
        {
            assert!(
                Instant::now() < until,
                "{transport} connection not released"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for transport in ["grpc", "http"] {
        wait_series(
            &tg,
            "otelcol_receiver_failed_requests_total",
            &[("transport", transport)],
            1.0,
        );
    }
    export_ok(&tg, 70).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_h2_connection_gets_goaway_after_max_connection_age() {
    let tg = start(
        "        keepalive: {server_parameters: {max_connection_age: 200ms, max_connection_age_grace: 200ms}}",
        "",
    );
    let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(conn);
    let (code, _) =
        support::send_on_client(client.clone(), tg.grpc(), &make_request(90, 1, 1, 2)).await;
    assert_eq!(code, 0);
    let ended = tokio::time::timeout(DEADLINE, driver).await;
    assert!(ended.is_ok(), "the old connection was not closed");
    drop(client);
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "grpc"), ("reason", "max_age")],
        1.0,
    );
    export_ok(&tg, 91).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_http_headers_get_431_and_are_counted() {
    let tg = start("", "        tailgate: {max_header_list_size: 4096}");
    let big = "x".repeat(8192);
    let (status, _) = http_post(
        http_addr(&tg),
        "/v1/traces",
        &[("content-type", "application/x-protobuf"), ("x-big", &big)],
        b"",
    );
    assert_eq!(status, 431);
    wait_series(
        &tg,
        "otelcol_receiver_connections_closed_total",
        &[("transport", "http"), ("reason", "header_too_large")],
        1.0,
    );
    export_ok(&tg, 95).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_goaway_to_open_h2_connections() {
    let tg = start("", "");
    let mut s = TcpStream::connect(tg.grpc()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    out.extend(h2_frame(PING, 0, 0, b"stopping"));
    s.write_all(&out).unwrap();
    // The ping's answer shows the connection is past its handshake, in the serve loop.
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !parse_frames(&seen)
        .iter()
        .any(|f| f.0 == PING && f.1 & 1 == 1)
    {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before answering the ping");
        seen.extend_from_slice(&buf[..n]);
    }
    let stopped = std::thread::spawn(move || tg.terminate());
    // Without the notice the process would exit and close the socket with no GOAWAY.
    while !parse_frames(&seen).iter().any(|f| f.0 == GOAWAY) {
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "closed without a GOAWAY: {:?}", parse_frames(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // A client that leaves on GOAWAY lets the process finish at once.
    drop(s);
    assert!(stopped.join().unwrap().success());
}

/// Peak resident memory of process `pid` (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Issue 17's JSON bomb: 18–92 KiB of gzip that inflates to 19.5 MiB of `{"resourceSpans":[{},…]}`
/// (6.5 M empty objects, under the default 20 MiB body limit). It used to be answered 200 after
/// seconds with a peak of 1.4 GiB; now the decode budget refuses it with 413, the core's memory
/// stays bounded, and the next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_json_bomb_gets_413_within_bounded_memory() {
    let tg = start("", "");
    let mut json = b"{\"resourceSpans\":[".to_vec();
    json.extend_from_slice(&b"{},".repeat(6_500_000));
    json.extend_from_slice(b"{}]}");
    let body = Compression::Gzip.compress(&json).unwrap();
    drop(json);
    let before = peak_rss(tg.child.id());
    let (status, text) = http_post(
        http_addr(&tg),
        "/v1/traces",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &body,
    );
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("OverBudget"), "{text}");
    let after = peak_rss(tg.child.id());
    // The body inflates to 19.5 MiB; the transcoder's output stays under a third of that.
    assert!(
        after < before + (96 << 20),
        "peak RSS went from {} to {} MiB",
        before >> 20,
        after >> 20
    );
    export_ok(&tg, 97).await;
}

// === bytes in flight, body deadline, limiter at the start (issue 17) ===

/// Issue 17: streams that send part of a message and stall used to hold their bytes, and their
/// stream, for ever (window released as chunks arrived, no body deadline). Now the core holds at
/// most `max_request_bytes_in_flight_per_core` of them (a stream whose next chunk would pass it
/// is answered UNAVAILABLE at once) and the others are answered DEADLINE_EXCEEDED at
/// `body_timeout`, after which nothing is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_grpc_streams_stay_under_the_budget_and_end_at_the_body_timeout() {
    const BUDGET: u64 = 3 << 20;
    let tg = start(
        &format!(
            "        max_recv_msg_size_mib: 1
        tailgate: {{max_request_bytes_in_flight_per_core: {BUDGET}, body_timeout: 500ms}}"
        ),
        "",
    );
    let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // 8 streams × 768 KiB of a declared 1 MiB message: 6 MiB, twice the budget.
    let started = Instant::now();
    let payload = bytes::Bytes::from(vec![0x0a; 768 << 10]);
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(support::stalled_export(&client, tg.grpc(), 1 << 20, &payload).await);
    }
    let grpc = ("transport", "grpc");
    wait_series(
        &tg,
        "otelcol_receiver_refused_requests_total",
        &[grpc, ("reason", "bytes_in_flight")],
        1.0,
    );
    let held = series(&tg, "otelcol_receiver_request_bytes_in_flight", &[grpc]);
    assert!(held <= BUDGET as f64, "{held} bytes held");
    let mut codes = Vec::new();
    for (resp, _send) in streams {
        let resp = tokio::time::timeout(DEADLINE, resp)
            .await
            .expect("a stalled stream was never answered")
            .unwrap();
        codes.push(support::header_status(&resp).expect("no grpc-status").0);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(490),
        "{:?}",
        started.elapsed()
    );
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes, [4, 14], "DEADLINE_EXCEEDED and UNAVAILABLE");
    wait_series(
        &tg,
        "otelcol_receiver_refused_requests_total",
        &[grpc, ("reason", "body_timeout")],
        1.0,
    );
    let peak = series(
        &tg,
        "otelcol_receiver_request_bytes_in_flight_peak",
        &[grpc],
    );
    assert!(
        peak > 0.0 && peak <= BUDGET as f64,
        "peak {peak} bytes, budget {BUDGET}"
    );
    let until = Instant::now() + DEADLINE;
    while series(&tg, "otelcol_receiver_request_bytes_in_flight", &[grpc]) > 0.0 {
        assert!(
            Instant::now() < until,
            "bytes still held after every answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    export_ok(&tg, 100).await;
}

/// Writes `head` and then the body a byte every 50 ms (at most `DEADLINE`) from another thread;
/// returns what the server answered before closing and how long that took.
fn trickle(addr: SocketAddr, head: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..(DEADLINE.as_millis() / 50) {
            if w.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50)); // pacing the trickle, not waiting
        }
    });
    let answer = String::from_utf8_lossy(&read_until_closed(&mut s)).into_owned();
    let took = started.elapsed();
    drop(s);
    writer.join().unwrap();
    (answer, took)
}

/// A body trickled a byte every 50 ms used to be read for `read_timeout` (1 m by default) and
/// then cut without an answer; now it is answered 408 at `body_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_body_trickled_past_the_body_timeout_gets_408() {
    let tg = start("", "        tailgate: {body_timeout: 300ms}");
    let (answer, took) = trickle(
        http_addr(&tg),
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(took >= Duration::from_millis(290), "{took:?}");
    wait_series(
        &tg,
        "otelcol_receiver_refused_requests_total",
        &[("transport", "http"), ("reason", "body_timeout")],
        1.0,
    );
    export_ok(&tg, 110).await;
}

/// Two stalled bodies of 800 KB where the core may hold 1.5 MiB: the second is answered 503 (the
/// first is still held), and both are released when their connections go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_past_the_bytes_in_flight_budget_get_503() {
    let tg = start(
        "",
        "        max_request_body_size: 1048576
        tailgate: {max_request_bytes_in_flight_per_core: 1572864}",
    );
    let http = ("transport", "http");
    let head = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000000\r\n\r\n";
    let part = vec![b'x'; 800_000];
    let mut first = TcpStream::connect(http_addr(&tg)).unwrap();
    first.write_all(head.as_bytes()).unwrap();
    first.write_all(&part).unwrap();
    wait_series(
        &tg,
        "otelcol_receiver_request_bytes_in_flight",
        &[http],
        800_000.0,
    );
    let mut second = TcpStream::connect(http_addr(&tg)).unwrap();
    second.write_all(head.as_bytes()).unwrap();
    second.write_all(&part).unwrap();
    let answer = read_response(&mut second);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("in flight"), "{answer}");
    wait_series(
        &tg,
        "otelcol_receiver_refused_requests_total",
        &[http, ("reason", "bytes_in_flight")],
        1.0,
    );
    let peak = series(
        &tg,
        "otelcol_receiver_request_bytes_in_flight_peak",
        &[http],
    );
    assert!(peak <= 1_572_864.0, "peak {peak}");
    drop(first);
    let until = Instant::now() + DEADLINE;
    while series(&tg, "otelcol_receiver_request_bytes_in_flight", &[http]) > 0.0 {
        assert!(
            Instant::now() < until,
            "bytes still held after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    export_ok(&tg, 120).await;
}

/// A memory_limiter over its limit used to be asked only after the whole body was read and
/// decoded; now a new request is refused as soon as its head arrives (the body is never sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_memory_limiter_refuses_requests_before_their_body_is_read() {
    // 1 MiB: the process is always above it, so the limiter refuses from its first check.
    let tg = Tailgate::start(
        "
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:0}
      http: {endpoint: 127.0.0.1:0}
processors:
  memory_limiter: {check_interval: 1s, limit_mib: 1}
exporters:
  nop:
service:
  telemetry: {metrics: {address: 127.0.0.1:0}}
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter], exporters: [nop]}
",
        &["--cores", "1"],
    );
    let mut s = TcpStream::connect(http_addr(&tg)).unwrap();
    s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let answer = read_response(&mut s);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("high memory usage"), "{answer}");
    // gRPC: headers only, the message never sent.
    let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut c = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{}{}", tg.grpc(), support::EXPORT_PATH))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (resp, _send) = c.send_request(req, false).unwrap();
    let resp = tokio::time::timeout(DEADLINE, resp)
        .await
        .expect("the stream was not answered before its body")
        .unwrap();
    let (code, message) = support::header_status(&resp).expect("no grpc-status");
    assert_eq!(code, 14, "{message}");
    assert!(message.contains("high memory usage"), "{message}");
    for transport in ["grpc", "http"] {
        wait_series(
            &tg,
            "otelcol_receiver_refused_requests_total",
            &[("transport", transport), ("reason", "memory_limiter")],
            1.0,
        );
    }
}
