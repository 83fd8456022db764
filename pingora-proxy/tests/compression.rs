//! The response compression module through a real proxy and origin:
//! each encoding decoded by the test, q-value negotiation, responses left
//! alone, upstream decompression for body filters, an HTTP/2 client, curl
//! `--compressed` as a real client, and a large body in bounded memory.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use pingora_core::modules::http::HttpModules;
use pingora_core::modules::http::compression::{ResponseCompression, ResponseCompressionBuilder};
use pingora_core::protocols::Stream;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A compressible body of `len` bytes: JSON-like lines.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        let line = format!("{{\"id\":{i},\"name\":\"item {i}\",\"tags\":[\"origin\",\"x\"]}}\n");
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
            drop(w);
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        other => panic!("no coding {other}"),
    }
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
        "br" => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out),
        other => panic!("no coding {other}"),
    }
    .unwrap();
    out
}

const PATTERN_LEN: usize = 64 * 1024;

/// The origin's answer to `path`: head fields and body.
fn route(path: &str) -> (&'static str, Vec<(&'static str, String)>, Vec<u8>) {
    let path = path.strip_prefix("/decode").unwrap_or(path);
    let json = ("Content-Type", "application/json".to_string());
    let html = ("Content-Type", "text/html; charset=utf-8".to_string());
    match path {
        "/json" => (
            "200 OK",
            vec![json, ("ETag", "\"v1\"".into())],
            text(100_000),
        ),
        "/small" => ("200 OK", vec![json], text(100)),
        "/png" => (
            "200 OK",
            vec![("Content-Type", "image/png".into())],
            text(5000),
        ),
        "/range" => (
            "206 Partial Content",
            vec![json, ("Content-Range", "bytes 0-999/100000".into())],
            text(1000),
        ),
        "/no-transform" => (
            "200 OK",
            vec![json, ("Cache-Control", "no-transform".into())],
            text(5000),
        ),
        "/vary" => (
            "200 OK",
            vec![json, ("Vary", "Origin".into()), ("ETag", "W/\"w\"".into())],
            text(5000),
        ),
        "/upstream-gzip" | "/upstream-br" | "/upstream-zstd" => {
            let coding = &path["/upstream-".len()..];
            let ce = ("Content-Encoding", coding.to_string());
            ("200 OK", vec![html, ce], encode(coding, &text(50_000)))
        }
        _ => ("404 Not Found", vec![], Vec::new()),
    }
}

/// One connection of the origin: answers requests (no bodies) until the
/// client closes. `/big/<n>` streams `n` bytes of a repeated pattern
/// without holding them.
async fn origin_conn(mut stream: Stream) {
    let mut buf = Vec::new();
    let pattern = text(PATTERN_LEN);
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        if let Some(n) = path.strip_prefix("/big/") {
            let mut left: usize = n.parse().unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {left}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            while left > 0 {
                let n = left.min(PATTERN_LEN);
                if stream.write_all(&pattern[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
            continue;
        }
        let (status, fields, body) = route(&path);
        let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in fields {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head.starts_with("HEAD ") {
            out.extend_from_slice(&body);
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn start_raw_origin() -> Running {
    serve_fn(|stream, _| origin_conn(stream)).await
}

/// Compresses at level 6; `/decode/...` also decodes the upstream body
/// and upper-cases it in `response_body_filter` (which would corrupt
/// encoded bytes: the test sees it had plain text).
struct Compressing {
    origin: SocketAddr,
}

impl ProxyHttp for Compressing {
    type CTX = bool;
    fn new_ctx(&self) -> bool {
        false
    }

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(ResponseCompressionBuilder::enable(6));
    }

    async fn request_filter(&self, session: &mut Session, decode: &mut bool) -> Result<bool> {
        if session.req_header().uri().path().starts_with("/decode/") {
            *decode = true;
            let module = session.downstream_modules_ctx_mut();
            let compression = module.get_mut::<ResponseCompression>().unwrap();
            compression.adjust_decompression(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut bool) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        _: bool,
        decode: &mut bool,
    ) -> Result<Option<Duration>> {
        if *decode && let Some(piece) = body {
            *piece = Bytes::from(piece.to_ascii_uppercase());
        }
        Ok(None)
    }
}

async fn setup() -> (Running, Running) {
    let origin = start_raw_origin().await;
    let proxy = start_proxy(
        Compressing {
            origin: origin.addr,
        },
        0,
    )
    .await;
    (origin, proxy)
}

async fn fetch(proxy: SocketAddr, method: &str, path: &str, fields: &[(&str, &str)]) -> Exchange {
    let mut req = request(method, path);
    for (name, value) in fields {
        req.insert_header(name.to_string(), *value).unwrap();
    }
    let mut c = client(proxy).await;
    exchange(&mut c, req, b"").await
}

fn field<'a>(x: &'a Exchange, name: &str) -> Option<&'a str> {
    x.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn each_encoding_decodes_to_the_origin_body() {
    let (_origin, proxy) = setup().await;
    for coding in ["gzip", "br", "zstd"] {
        let x = fetch(proxy.addr, "GET", "/json", &[("Accept-Encoding", coding)]).await;
        assert_eq!(x.status, 200);
        assert_eq!(field(&x, "content-encoding"), Some(coding));
        assert_eq!(field(&x, "content-length"), None);
        assert_eq!(field(&x, "vary"), Some("Accept-Encoding"));
        assert_eq!(field(&x, "etag"), Some("W/\"v1\""));
        assert!(x.body.len() < 100_000 / 4, "{coding}: {}", x.body.len());
        assert_eq!(decode(coding, &x.body), text(100_000), "{coding}");
    }
}

#[tokio::test]
async fn q_values_choose_the_encoding() {
    let (_origin, proxy) = setup().await;
    let cases = [
        ("gzip, deflate, br, zstd", Some("br")),
        ("br;q=0, gzip", Some("gzip")),
        ("gzip;q=0.5, zstd;q=0.9, br;q=0.1", Some("zstd")),
        ("*", Some("br")),
        ("*;q=0.5, br;q=0", Some("zstd")),
        ("*;q=0", None),
        ("identity", None),
        ("deflate", None),
    ];
    for (accept, expected) in cases {
        let x = fetch(proxy.addr, "GET", "/json", &[("Accept-Encoding", accept)]).await;
        assert_eq!(field(&x, "content-encoding"), expected, "{accept}");
        assert_eq!(field(&x, "vary"), Some("Accept-Encoding"), "{accept}");
        let body = expected.map_or(x.body.clone(), |c| decode(c, &x.body));
        assert_eq!(body, text(100_000), "{accept}");
    }
    // No Accept-Encoding: the body as it is, with its length and ETag.
    let x = fetch(proxy.addr, "GET", "/json", &[]).await;
    assert_eq!(field(&x, "content-encoding"), None);
    assert_eq!(field(&x, "content-length"), Some("100000"));
    assert_eq!(field(&x, "etag"), Some("\"v1\""));
    assert_eq!(x.body, text(100_000));
}

#[tokio::test]
async fn vary_is_merged_and_weak_etags_kept() {
    let (_origin, proxy) = setup().await;
    let x = fetch(proxy.addr, "GET", "/vary", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(field(&x, "content-encoding"), Some("gzip"));
    let vary: Vec<_> = x.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["Origin", "Accept-Encoding"]);
    assert_eq!(field(&x, "etag"), Some("W/\"w\""));
    assert_eq!(decode("gzip", &x.body), text(5000));
}

#[tokio::test]
async fn responses_left_alone() {
    let (_origin, proxy) = setup().await;
    let all = ("Accept-Encoding", "gzip, br, zstd");
    for (path, len) in [("/small", 100), ("/png", 5000), ("/no-transform", 5000)] {
        let x = fetch(proxy.addr, "GET", path, &[all]).await;
        assert_eq!(field(&x, "content-encoding"), None, "{path}");
        assert_eq!(x.body, text(len), "{path}");
    }
    let x = fetch(
        proxy.addr,
        "GET",
        "/range",
        &[all, ("Range", "bytes=0-999")],
    )
    .await;
    assert_eq!(x.status, 206);
    assert_eq!(field(&x, "content-encoding"), None);
    assert_eq!(field(&x, "vary"), None);
    assert_eq!(x.body, text(1000));
    // Already encoded upstream: passed through as it is.
    let x = fetch(proxy.addr, "GET", "/upstream-gzip", &[all]).await;
    assert_eq!(field(&x, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &x.body), text(50_000));
    let x = fetch(proxy.addr, "HEAD", "/json", &[all]).await;
    assert_eq!(field(&x, "content-encoding"), None);
    assert_eq!(field(&x, "content-length"), Some("100000"));
}

#[tokio::test]
async fn upstream_bodies_are_decoded_for_body_filters() {
    let (_origin, proxy) = setup().await;
    let upper = text(50_000).to_ascii_uppercase();
    for coding in ["gzip", "br", "zstd"] {
        let path = format!("/decode/upstream-{coding}");
        // Decoded, filtered, then encoded again for this client.
        let x = fetch(proxy.addr, "GET", &path, &[("Accept-Encoding", "zstd")]).await;
        assert_eq!(field(&x, "content-encoding"), Some("zstd"), "{coding}");
        assert_eq!(decode("zstd", &x.body), upper, "{coding}");
        // A client that accepts none gets the plain, filtered text.
        let x = fetch(proxy.addr, "GET", &path, &[]).await;
        assert_eq!(field(&x, "content-encoding"), None, "{coding}");
        assert_eq!(x.body, upper, "{coding}");
    }
}

#[tokio::test]
async fn http2_clients_get_encoded_bodies() {
    let origin = start_raw_origin().await;
    let sv = Compressing {
        origin: origin.addr,
    };
    let proxy = pingora_proxy::HttpProxy::new(sv, &pingora_core::server::ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    let send = h2_tools::h2_client(proxy.addr).await;
    for (accept, coding) in [("gzip, deflate, br, zstd", "br"), ("gzip", "gzip")] {
        let req = http::Request::builder()
            .uri("http://test.local/json")
            .header("accept-encoding", accept)
            .body(())
            .unwrap();
        let answer = h2_tools::h2_exchange(&send, req, b"", None).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["content-encoding"], coding);
        assert!(!answer.headers.contains_key("content-length"));
        assert_eq!(decode(coding, &answer.body), text(100_000));
    }
}

/// Whether curl runs and decodes `coding`; prints `SKIPPED: ...` when not
/// (and fails instead under `PINGORA_REQUIRE_INTEROP`).
fn curl_decodes(coding: &str) -> bool {
    let out = std::process::Command::new("curl").arg("-V").output();
    let skip = |why: String| {
        eprintln!("SKIPPED: {why}");
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set: {why}"
        );
        false
    };
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        return skip("curl not installed".into());
    };
    let version = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let feature = match coding {
        "gzip" => "libz",
        "br" => "brotli",
        _ => "zstd",
    };
    let features = version
        .lines()
        .find(|l| l.starts_with("features:"))
        .unwrap_or_default();
    if !features.split_whitespace().any(|f| f == feature) {
        return skip(format!("curl lacks {coding}"));
    }
    true
}

#[tokio::test]
async fn curl_compressed_decodes_each_encoding() {
    let (_origin, proxy) = setup().await;
    let url = format!("http://{}/json", proxy.addr);
    for coding in ["gzip", "br", "zstd"] {
        if !curl_decodes(coding) {
            continue;
        }
        let accept = format!("Accept-Encoding: {coding}");
        let args = [
            "-sS",
            "--compressed",
            "-H",
            &accept,
            "-D",
            "/dev/stderr",
            &url,
        ];
        let out = tools::run_tool("curl", args.map(String::from).to_vec(), 20).await;
        let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(
            head.contains(&format!("content-encoding: {coding}")),
            "{head}"
        );
        assert_eq!(out.stdout, text(100_000), "{coding}");
    }
    // curl's own list (what it decodes) gets brotli.
    if curl_decodes("br") {
        let args = ["-sS", "--compressed", "-D", "/dev/stderr", &url];
        let out = tools::run_tool("curl", args.map(String::from).to_vec(), 20).await;
        let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(head.contains("content-encoding: br"), "{head}");
        assert_eq!(out.stdout, text(100_000));
    }
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Checks decoded bytes against the origin's repeated pattern as they
/// come, holding none of them.
struct PatternCheck {
    pattern: Vec<u8>,
    seen: usize,
}

impl Write for PatternCheck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for (i, b) in buf.iter().enumerate() {
            assert_eq!(
                *b,
                self.pattern[(self.seen + i) % PATTERN_LEN],
                "byte {}",
                self.seen + i
            );
        }
        self.seen += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The whole body goes through the proxy (which runs in this process),
/// is compressed piece by piece and decoded by the client as it comes:
/// resident memory must not grow with the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_compresses_in_bounded_memory() {
    const SIZE: usize = 1 << 30;
    const LIMIT_KIB: u64 = 64 * 1024;
    let (_origin, proxy) = setup().await;
    let start = std::time::Instant::now();
    let before = rss_kib();
    let mut c = client(proxy.addr).await;
    let mut req = request("GET", &format!("/big/{SIZE}"));
    req.insert_header("Accept-Encoding", "zstd").unwrap();
    c.write_request_header(req).await.unwrap();
    c.finish_body(None).await.unwrap();
    let head = c.read_final_response_header().await.unwrap();
    assert_eq!(head.headers()["content-encoding"], "zstd");
    let check = PatternCheck {
        pattern: text(PATTERN_LEN),
        seen: 0,
    };
    let mut decoder = zstd::stream::write::Decoder::new(check).unwrap();
    let (mut wire, mut peak) = (0usize, 0u64);
    let mut next_sample = 0;
    while let Some(piece) = tokio::time::timeout(WAIT, c.read_body_bytes())
        .await
        .unwrap()
        .unwrap()
    {
        wire += piece.len();
        decoder.write_all(&piece).unwrap();
        if decoder.get_ref().seen >= next_sample {
            peak = peak.max(rss_kib().saturating_sub(before));
            next_sample += 16 << 20;
        }
    }
    decoder.flush().unwrap();
    let decoded = decoder.get_ref().seen;
    peak = peak.max(rss_kib().saturating_sub(before));
    eprintln!(
        "1 GiB through the proxy: {wire} bytes on the wire, peak RSS growth {} KiB, {:?}",
        peak,
        start.elapsed()
    );
    assert_eq!(decoded, SIZE);
    assert!(peak < LIMIT_KIB, "RSS grew by {peak} KiB");
}
