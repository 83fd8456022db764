//! Compression ratio and speed of the response compression module, per
//! algorithm and level, on a typical text body: 0.8 MiB of generated
//! JSON and HTML, fed through the module in 16 KiB pieces (as a proxy
//! forwards it, with a flush per piece).
//!
//! ```text
//! cargo bench -p pingora-core --bench compression
//! ```
//!
//! Prints a table: compressed size as a percentage of the input, and
//! input MB/s through the encoder (one core).

#![allow(missing_docs, clippy::unwrap_used)]

use bytes::Bytes;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::modules::http::HttpModules;
use pingora_core::modules::http::compression::{Algorithm, ResponseCompressionBuilder};
use std::time::{Duration, Instant};

/// About 1 MiB: half JSON records, half an HTML listing.
fn body() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..4_000 {
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user {i}\",\"email\":\"user{i}@example.com\",\
             \"active\":{},\"score\":{},\"tags\":[\"alpha\",\"beta\"]}},\n",
            i % 3 == 0,
            (i * 7919) % 1000
        ));
    }
    for i in 0..4_000 {
        out.push_str(&format!(
            "<tr class=\"row-{}\"><td>{i}</td><td><a href=\"/items/{i}\">Item {i}</a></td>\
             <td>{}.{:02} EUR</td></tr>\n",
            i % 2,
            (i * 31) % 500,
            i % 100
        ));
    }
    out.into_bytes()
}

/// Encode `body` once with `alg` at `level`: (output bytes, time).
fn run(body: &[u8], alg: Algorithm, level: u32) -> (usize, Duration) {
    let mut modules = HttpModules::new();
    modules.add_module(ResponseCompressionBuilder::new(level).min_size(0).build());
    let mut ctx = modules.build_ctx();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Accept-Encoding", alg.as_str()).unwrap();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Type", "application/json")
        .unwrap();
    rt.block_on(async {
        ctx.request_header_filter(&mut req).await.unwrap();
        ctx.response_header_filter(&mut resp, false).await.unwrap();
    });
    assert_eq!(resp.headers()["content-encoding"], alg.as_str());
    let start = Instant::now();
    let mut out = 0;
    let pieces = body.chunks(16 * 1024);
    let count = pieces.len();
    for (i, piece) in pieces.enumerate() {
        let mut piece = Some(Bytes::copy_from_slice(piece));
        ctx.response_body_filter(&mut piece, i + 1 == count)
            .unwrap();
        out += piece.map_or(0, |p| p.len());
    }
    (out, start.elapsed())
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let body = body();
    println!(
        "input: {} bytes of JSON and HTML, 16 KiB pieces\n",
        body.len()
    );
    println!("| algorithm | level | size | ratio | MB/s |");
    println!("|---|---:|---:|---:|---:|");
    let plan: &[(Algorithm, &[u32])] = &[
        (Algorithm::Gzip, &[1, 6, 9]),
        (Algorithm::Brotli, &[1, 4, 6, 9, 11]),
        (Algorithm::Zstd, &[1, 3, 6, 12, 19]),
    ];
    for (alg, levels) in plan {
        for &level in *levels {
            if quick && level > 1 {
                continue;
            }
            // The best of a few runs, at least half a second in all.
            let (mut size, mut best) = (0, Duration::MAX);
            let start = Instant::now();
            let mut runs = 0;
            while runs < 3 || (!quick && start.elapsed() < Duration::from_millis(500)) {
                let (out, took) = run(&body, *alg, level);
                size = out;
                best = best.min(took);
                runs += 1;
                if quick {
                    break;
                }
            }
            let mbps = body.len() as f64 / best.as_secs_f64() / 1e6;
            println!(
                "| {} | {level} | {size} | {:.1}% | {mbps:.1} |",
                alg.as_str(),
                100.0 * size as f64 / body.len() as f64
            );
        }
    }
}
