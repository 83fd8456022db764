//! Every request-smuggling shape gets 400 and a closed connection, and the
//! request hidden behind it is never answered (RFC 9112 §6.3, §11.2).

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http1_support;

use http1_support::{exchange_tcp, read_to_close, serve_http, serve_pipe, statuses};
use pingora_core::apps::http_app::{EchoApp, HttpServer};
use tokio::io::AsyncWriteExt;

/// Each case is a request head and body that must be refused, followed by
/// a smuggled request that must never be served.
const CASES: &[(&str, &str)] = &[
    (
        "cl and te",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te and cl",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    ),
    (
        "differing cl",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    ),
    (
        "cl list",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 40\r\n\r\nabcd",
    ),
    (
        "cl sign",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
    ),
    (
        "cl hex",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd",
    ),
    (
        "te gzip",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    ),
    (
        "te chunked not last",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ),
    (
        "te chunked twice",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te obfuscated",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te space before colon",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te in 1.0",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "obs-fold",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "bad chunk size",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfoo\r\n\r\n",
    ),
    (
        "chunk size overflow",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100000000000000004\r\nabcd\r\n0\r\n\r\n",
    ),
    (
        "negative chunk size",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-4\r\nabcd\r\n0\r\n\r\n",
    ),
    (
        "chunk bare lf",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\n0\n\n",
    ),
    (
        "chunk data longer than size",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
    ),
    ("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("no host in 1.1", "GET / HTTP/1.1\r\n\r\n"),
    (
        "nul in value",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
    ),
];

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

fn check(name: &str, out: &str) {
    assert_eq!(statuses(out), [400], "{name}: {out:?}");
    assert!(out.contains("Connection: close"), "{name}: {out:?}");
    assert!(!out.contains("smuggled"), "{name}: {out:?}");
}

#[tokio::test]
async fn smuggling_over_pipes() {
    for (name, req) in CASES {
        let mut client = serve_pipe(HttpServer::new(EchoApp));
        client.write_all(req.as_bytes()).await.unwrap();
        client.write_all(SMUGGLED.as_bytes()).await.unwrap();
        let out = read_to_close(&mut client).await;
        check(name, &out);
    }
}

#[tokio::test]
async fn smuggling_over_loopback() {
    let addr = serve_http(EchoApp).await;
    for (name, req) in CASES {
        let out = exchange_tcp(addr, format!("{req}{SMUGGLED}").as_bytes()).await;
        check(name, &out);
    }
}

#[tokio::test]
async fn valid_neighbours_are_served_apart() {
    // The same shapes done right: both requests are answered, in order,
    // and the second never sees bytes of the first.
    let mut client = serve_pipe(HttpServer::new(EchoApp));
    let reqs = "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n\
                POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd";
    client.write_all(reqs.as_bytes()).await.unwrap();
    let out = read_to_close(&mut client).await;
    assert_eq!(statuses(&out), [200, 200]);
    let first = out.find("X-Echo-Uri: /1").unwrap();
    let second = out.find("X-Echo-Uri: /2").unwrap();
    assert!(first < second);
    assert!(out.ends_with("abcd"), "{out}");
}
