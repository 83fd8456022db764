//! Interop with a real HTTP/1 client: curl against our server over
//! loopback. Skips itself (with a notice) when curl is not installed, so
//! `cargo test --workspace` needs nothing installed; CI installs curl.

// Test helpers outside #[test] functions may unwrap too: a panic is a
// test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http1_support;
mod support;

use http1_support::serve_http;
use pingora_core::apps::http_app::{EchoApp, HelloApp};
use std::net::SocketAddr;
use support::interop::{run_tool, tool_available};

/// Run curl with `args` (plus `-sS` and a time limit) off the runtime;
/// returns stdout and stderr, asserting success.
async fn curl(args: Vec<String>) -> (String, String) {
    let mut all: Vec<String> = vec!["-sS".into(), "--max-time".into(), "10".into()];
    all.extend(args);
    let out = run_tool("curl", all, 30).await;
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_get_reuses_the_connection() {
    if !tool_available("curl") {
        return;
    }
    let addr = serve_http(HelloApp).await;
    let (out, _) = curl(vec![
        url(addr, "/a"),
        url(addr, "/b"),
        "-w".into(),
        "[%{num_connects}]".into(),
    ])
    .await;
    // The second transfer made no new connection.
    assert_eq!(out, "Hello, world!\n[1]Hello, world!\n[0]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http10_and_head() {
    if !tool_available("curl") {
        return;
    }
    let addr = serve_http(HelloApp).await;
    let (out, _) = curl(vec!["--http1.0".into(), url(addr, "/")]).await;
    assert_eq!(out, "Hello, world!\n");
    let (out, _) = curl(vec!["-I".into(), url(addr, "/")]).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 14\r\n"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uploads_echo_back() {
    if !tool_available("curl") {
        return;
    }
    let addr = serve_http(EchoApp).await;
    let body = "x".repeat(100_000);
    // Content-Length upload.
    let (out, _) = curl(vec!["--data-binary".into(), body.clone(), url(addr, "/cl")]).await;
    assert_eq!(out, body);
    // Chunked upload.
    let (out, _) = curl(vec![
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "--data-binary".into(),
        "chunked body".into(),
        url(addr, "/chunked"),
    ])
    .await;
    assert_eq!(out, "chunked body");
    // curl waits for our 100 Continue before sending the body.
    let (out, err) = curl(vec![
        "-v".into(),
        "-H".into(),
        "Expect: 100-continue".into(),
        "--data-binary".into(),
        "after continue".into(),
        url(addr, "/expect"),
    ])
    .await;
    assert_eq!(out, "after continue");
    assert!(err.contains("100 Continue"), "{err}");
}
