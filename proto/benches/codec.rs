//! Compression codecs on the realistic corpus (`tailgate_proto::corpus`): compress and decompress
//! CPU nanoseconds per span and the ratio, for every gzip implementation we could use (miniz_oxide,
//! zlib-rs, libdeflate) at several levels, zstd at its fast levels, and tailgate's own
//! `Compression::{Gzip, Zstd}` path (whatever flate2 backend the workspace builds).
//!
//! The table is measured first, in two interleaved rounds (every codec once, then every codec
//! again) so a burst of load from other work on the shared machine shows as a disagreement between
//! rounds instead of skewing one codec; time is the thread's CPU time. Criterion benches of the
//! same functions follow (wall time, one request each), for per-codec history and filtering.
//! Set `CODEC_TABLE_ONLY=1` to print the table and skip criterion.
//!
//! Run: `cargo bench -p tailgate-proto --bench codec` (figures in `docs/perf.md`, "Codecs on the
//! realistic corpus").

// criterion_group! generates an undocumented pub function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::{Criterion, Throughput};
use tailgate_proto::corpus::{requests, SPANS_PER_REQUEST};
use tailgate_proto::{Compression, DEFAULT_MAX_DECODED_SIZE};

/// Requests in the table's corpus (8 × 1,000 spans, about 4 MB).
const REQUESTS: usize = 8;
/// The corpus seed: fixed so every run measures the same bytes.
const SEED: u64 = 19;
/// CPU time spent per codec, operation and round.
const BUDGET: Duration = Duration::from_millis(400);

type CompressFn = Box<dyn FnMut(&[u8]) -> Vec<u8>>;
/// Decompress `z`, whose decoded size is `len` (one-shot APIs need it; streams ignore it).
type DecompressFn = Box<dyn FnMut(&[u8], usize) -> Vec<u8>>;

/// One implementation at one level.
struct Codec {
    name: String,
    compress: CompressFn,
    decompress: DecompressFn,
}

fn codecs() -> Vec<Codec> {
    let mut out = Vec::new();
    for (name, c) in [
        ("tailgate gzip (Compression::Gzip)", Compression::Gzip),
        (
            "tailgate zstd (Compression::Zstd, stream, level 1)",
            Compression::Zstd,
        ),
    ] {
        out.push(Codec {
            name: name.into(),
            compress: Box::new(move |x| c.compress(x).expect("compress")),
            decompress: Box::new(move |z, _| {
                c.decompress(z, DEFAULT_MAX_DECODED_SIZE)
                    .expect("decompress")
            }),
        });
    }
    for level in [1u8, 6] {
        out.push(Codec {
            name: format!("gzip miniz_oxide {level}"),
            compress: Box::new(move |x| miniz_gzip(x, level)),
            decompress: Box::new(miniz_gunzip),
        });
    }
    for level in [1, 2, 3, 6] {
        out.push(Codec {
            name: format!("gzip zlib-rs {level}"),
            compress: Box::new(move |x| zlib_rs_gzip(x, level)),
            decompress: Box::new(zlib_rs_gunzip),
        });
    }
    for level in [1, 2, 3, 6] {
        let mut comp =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level"));
        let mut dec = libdeflater::Decompressor::new();
        out.push(Codec {
            name: format!("gzip libdeflate {level}"),
            compress: Box::new(move |x| {
                let mut z = vec![0; comp.gzip_compress_bound(x.len())];
                let n = comp.gzip_compress(x, &mut z).expect("libdeflate");
                z.truncate(n);
                z
            }),
            decompress: Box::new(move |z, len| {
                let mut x = vec![0; len];
                let n = dec.gzip_decompress(z, &mut x).expect("libdeflate");
                x.truncate(n);
                x
            }),
        });
    }
    for level in [-3, -2, -1, 1, 2, 3] {
        let mut comp = zstd::bulk::Compressor::new(level).expect("zstd level");
        let mut dec = zstd::bulk::Decompressor::new().expect("zstd");
        out.push(Codec {
            name: format!("zstd bulk {level}"),
            compress: Box::new(move |x| comp.compress(x).expect("zstd")),
            decompress: Box::new(move |z, len| dec.decompress(z, len).expect("zstd")),
        });
    }
    out
}

// === gzip framing for the raw-deflate APIs ===

/// The 10-byte gzip header flate2 writes (no name, no mtime, OS unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

fn miniz_gzip(x: &[u8], level: u8) -> Vec<u8> {
    let body = miniz_oxide::deflate::compress_to_vec(x, level);
    let mut z = Vec::with_capacity(body.len() + 18);
    z.extend_from_slice(&GZIP_HEADER);
    z.extend_from_slice(&body);
    z.extend_from_slice(&crc32fast::hash(x).to_le_bytes());
    z.extend_from_slice(&(x.len() as u32).to_le_bytes());
    z
}

fn miniz_gunzip(z: &[u8], len: usize) -> Vec<u8> {
    let body = &z[10..z.len() - 8];
    let x = miniz_oxide::inflate::decompress_to_vec_with_limit(body, len).expect("inflate");
    // A gzip reader checks the CRC; count its cost as the others do.
    assert_eq!(
        crc32fast::hash(&x).to_le_bytes(),
        z[z.len() - 8..z.len() - 4]
    );
    x
}

fn zlib_rs_gzip(x: &[u8], level: i32) -> Vec<u8> {
    let config = zlib_rs::DeflateConfig {
        // 16 + 15: gzip wrapper, 32 KiB window.
        window_bits: 31,
        ..zlib_rs::DeflateConfig::new(level)
    };
    let mut z = vec![0; zlib_rs::compress_bound(x.len()) + 18];
    let (done, rc) = zlib_rs::compress_slice(&mut z, x, config);
    assert_eq!(rc, zlib_rs::ReturnCode::Ok);
    let n = done.len();
    z.truncate(n);
    z
}

fn zlib_rs_gunzip(z: &[u8], len: usize) -> Vec<u8> {
    let mut x = vec![0; len];
    let (done, rc) =
        zlib_rs::decompress_slice(&mut x, z, zlib_rs::InflateConfig { window_bits: 31 });
    assert_eq!(rc, zlib_rs::ReturnCode::Ok);
    let n = done.len();
    x.truncate(n);
    x
}

// === the table ===

/// CPU nanoseconds per span of `op` over the corpus, repeated until `BUDGET` is spent.
fn per_span(mut op: impl FnMut(usize)) -> f64 {
    let start = ThreadTime::now();
    let mut spans = 0usize;
    while start.elapsed() < BUDGET {
        for i in 0..REQUESTS {
            op(i);
            spans += SPANS_PER_REQUEST;
        }
    }
    start.elapsed().as_nanos() as f64 / spans as f64
}

struct Row {
    ratio: f64,
    compress: Vec<f64>,
    decompress: Vec<f64>,
}

fn table(corpus: &[Vec<u8>]) {
    let raw: usize = corpus.iter().map(Vec::len).sum();
    let mut codecs = codecs();
    let mut rows: Vec<Row> = Vec::new();
    let mut packed: Vec<Vec<Vec<u8>>> = Vec::new();
    for c in &mut codecs {
        let z: Vec<Vec<u8>> = corpus.iter().map(|x| (c.compress)(x)).collect();
        for (x, z) in corpus.iter().zip(&z) {
            assert_eq!(&(c.decompress)(z, x.len()), x, "{} round trip", c.name);
        }
        let zsum: usize = z.iter().map(Vec::len).sum();
        rows.push(Row {
            ratio: raw as f64 / zsum as f64,
            compress: Vec::new(),
            decompress: Vec::new(),
        });
        packed.push(z);
    }
    for _round in 0..2 {
        for ((c, row), z) in codecs.iter_mut().zip(&mut rows).zip(&packed) {
            row.compress.push(per_span(|i| {
                drop(black_box((c.compress)(black_box(&corpus[i]))))
            }));
            row.decompress.push(per_span(|i| {
                drop(black_box((c.decompress)(black_box(&z[i]), corpus[i].len())))
            }));
        }
    }
    println!(
        "\ncorpus: seed {SEED}, {REQUESTS} requests × {SPANS_PER_REQUEST} spans, {raw} bytes ({} bytes/span)",
        raw / (REQUESTS * SPANS_PER_REQUEST)
    );
    println!("CPU ns per span, round 1 / round 2 (interleaved), ratio = raw / compressed\n");
    println!("| codec | level/impl | ratio | compress ns/span | decompress ns/span |");
    println!("|---|---|---:|---:|---:|");
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for (c, row) in codecs.iter().zip(&rows) {
        let (family, rest) = c.name.split_once(' ').unwrap_or((&c.name, ""));
        println!(
            "| {family} | {rest} | {:.2} | {} | {} |",
            row.ratio,
            fmt(&row.compress),
            fmt(&row.decompress)
        );
    }
    println!();
}

// === criterion ===

fn criterion_benches(c: &mut Criterion, corpus: &[Vec<u8>]) {
    let x = &corpus[0];
    let mut group = c.benchmark_group("codec");
    group
        .throughput(Throughput::Elements(SPANS_PER_REQUEST as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for mut codec in codecs() {
        let z = (codec.compress)(x);
        group.bench_function(format!("compress/{}", codec.name), |b| {
            b.iter(|| (codec.compress)(black_box(x)))
        });
        group.bench_function(format!("decompress/{}", codec.name), |b| {
            b.iter(|| (codec.decompress)(black_box(&z), x.len()))
        });
    }
    group.finish();
}

fn main() {
    let corpus = requests(SEED, REQUESTS, SPANS_PER_REQUEST);
    // `cargo test --benches` runs this with `--bench` absent: check round trips only.
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        for mut c in codecs() {
            let z = (c.compress)(&corpus[0]);
            assert_eq!((c.decompress)(&z, corpus[0].len()), corpus[0], "{}", c.name);
        }
        return;
    }
    table(&corpus);
    if std::env::var_os("CODEC_TABLE_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &corpus);
        c.final_summary();
    }
}
