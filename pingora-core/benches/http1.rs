//! Benchmarks of the HTTP/1 hot paths: parsing a request head, writing a
//! response head, and a whole keep-alive exchange through the server
//! session over an in-memory pipe.

#![allow(missing_docs, clippy::unwrap_used)]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::v1::{H1Config, ServerConnection, parse_request_head};
use std::hint::black_box;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUEST: &[u8] = b"GET /api/v1/items?id=12345&sort=desc HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=abcdef0123456789; theme=dark\r\n\
X-Request-ID: 7f3c9a2e-1b4d-4e5f-8a6b-0c1d2e3f4a5b\r\n\
\r\n";

fn parse(c: &mut Criterion) {
    let config = H1Config::default();
    let mut group = c.benchmark_group("http1");
    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    let mut buf = BytesMut::with_capacity(4096);
    group.bench_function("parse_request_head", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(REQUEST);
            black_box(parse_request_head(&mut buf, &config).unwrap().unwrap())
        });
    });
    group.finish();
}

fn write_head(c: &mut Criterion) {
    let mut resp = ResponseHeader::build(200, Some(4)).unwrap();
    resp.insert_header("Content-Type", "text/html; charset=utf-8")
        .unwrap();
    resp.insert_header("Content-Length", "1024").unwrap();
    resp.insert_header("Cache-Control", "max-age=60").unwrap();
    resp.insert_header("Server", "pingora-rs").unwrap();
    let mut out = BytesMut::with_capacity(4096);
    c.bench_function("http1/write_response_head", |b| {
        b.iter(|| {
            out.clear();
            black_box(&resp).write_h1(&mut out);
            black_box(out.len())
        });
    });
}

fn exchange(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    c.bench_function("http1/keepalive_exchange", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let (mut client, server) = tokio::io::duplex(64 * 1024);
                let mut conn = ServerConnection::new(Box::new(server), H1Config::default());
                let mut sink = vec![0u8; 4096];
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    client.write_all(REQUEST).await.unwrap();
                    let mut s = conn.read_request().await.unwrap().unwrap();
                    let mut resp = ResponseHeader::build(200, Some(2)).unwrap();
                    resp.insert_header("Content-Length", "5").unwrap();
                    s.write_response_header(resp).await.unwrap();
                    s.write_body(b"hello").await.unwrap();
                    s.finish_response(None).await.unwrap();
                    conn = s.reuse().await.unwrap();
                    let _ = client.read(&mut sink).await.unwrap();
                }
                start.elapsed()
            })
        });
    });
}

criterion_group!(benches, parse, write_head, exchange);
criterion_main!(benches);
