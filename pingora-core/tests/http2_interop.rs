//! Interop with real HTTP/2 clients against the HTTP server app: curl
//! (`--http2-prior-knowledge`, and `--http2` over TLS with ALPN), nghttp
//! and h2load from nghttp2-client. Each test skips itself with a notice
//! when its tool is missing, so `cargo test --workspace` needs nothing
//! installed; `.ci/run` installs the tools.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod support_h2;

use std::process::Output;

use pingora_core::apps::http_app::{EchoApp, HttpServer};
use pingora_core::tls::{Alpn, CertStore, TlsSettings};
use support::certs::Ca;
use support::interop::{run_tool, tool_available};
use support_h2::TestServer;

/// Run `tool args`, bounded to 30 s; returns the output, asserting
/// success.
async fn run(tool: &str, args: Vec<String>) -> Output {
    run_tool(tool, args, 30).await
}

fn h2c_server() -> HttpServer<EchoApp> {
    HttpServer::new(EchoApp).with_h2c(true)
}

/// A TLS server offering h2 and http/1.1, and the CA file that trusts it.
async fn tls_server() -> (TestServer, tempfile_path::TempPath) {
    let ca = Ca::new("interop ca");
    let mut settings = TlsSettings::new(CertStore::new().with_default(ca.leaf(&["h2.test"])));
    settings.set_alpn(Alpn::H2H1);
    let server = TestServer::start(HttpServer::new(EchoApp), Some(settings.build().unwrap())).await;
    let path = tempfile_path::TempPath::write("ca.pem", ca.pem().as_bytes());
    (server, path)
}

/// A file in the temp dir, removed on drop.
mod tempfile_path {
    use std::path::PathBuf;

    pub(crate) struct TempPath(pub(crate) PathBuf);

    impl TempPath {
        pub(crate) fn write(name: &str, bytes: &[u8]) -> Self {
            let unique = format!(
                "pingora-h2-{}-{:?}-{name}",
                std::process::id(),
                std::thread::current().id()
            );
            let path = std::env::temp_dir().join(unique.replace(['(', ')'], ""));
            std::fs::write(&path, bytes).unwrap();
            Self(path)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_prior_knowledge() {
    if !tool_available("curl") {
        return;
    }
    let server = TestServer::start(h2c_server(), None).await;
    let url = format!("http://{}/echo?q=1", server.addr);
    // One request per run: curl 7.88 fails to reuse a prior-knowledge
    // connection for a second URL before sending anything (reuse is
    // covered over TLS below and by nghttp and h2load).
    for body in [None, Some("posted body")] {
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--http2-prior-knowledge".into(),
            "-w".into(),
            "\n%{http_version} %{http_code}".into(),
        ];
        if let Some(body) = body {
            args.extend(["-d".into(), body.into()]);
        }
        args.push(url.clone());
        let out = run("curl", args).await;
        let text = String::from_utf8_lossy(&out.stdout);
        let expect = format!("{}\n2 200", body.unwrap_or(""));
        assert_eq!(text, expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_over_tls_with_alpn() {
    if !tool_available("curl") {
        return;
    }
    let (server, ca) = tls_server().await;
    let port = server.addr.port();
    let out = run(
        "curl",
        vec![
            "-sS".into(),
            "--http2".into(),
            "--cacert".into(),
            ca.0.display().to_string(),
            "--resolve".into(),
            format!("h2.test:{port}:127.0.0.1"),
            "-H".into(),
            "X-Custom: yes".into(),
            "-w".into(),
            "\n%{http_version} %{http_code}".into(),
            format!("https://h2.test:{port}/tls"),
            format!("https://h2.test:{port}/tls2"),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("\n2 200").count(), 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nghttp_concurrent_requests_with_upload() {
    if !tool_available("nghttp") {
        return;
    }
    let server = TestServer::start(h2c_server(), None).await;
    let body = tempfile_path::TempPath::write("body.bin", &vec![b'x'; 300_000]);
    let out = run(
        "nghttp",
        vec![
            "-n".into(),
            "-s".into(),
            "-m".into(),
            "10".into(),
            "-d".into(),
            body.0.display().to_string(),
            format!("http://{}/upload", server.addr),
        ],
    )
    .await;
    let stats = String::from_utf8_lossy(&out.stdout);
    // One statistics line per completed request: "+... /upload" entries.
    assert_eq!(stats.matches("/upload").count(), 10, "{stats}");
}

/// Parse h2load's "requests: N total, N started, N done, N succeeded".
fn succeeded(report: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.starts_with("requests:"))
        .expect("h2load prints a requests line");
    let field = line
        .split(',')
        .find(|f| f.contains("succeeded"))
        .expect("a succeeded count");
    field.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_h2c_and_tls() {
    if !tool_available("h2load") {
        return;
    }
    let server = TestServer::start(h2c_server(), None).await;
    let args = |url: String| -> Vec<String> {
        ["-n", "2000", "-c", "4", "-m", "16", &url]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let out = run("h2load", args(format!("http://{}/", server.addr))).await;
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert_eq!(succeeded(&report), 2000, "{report}");

    let (tls, _ca) = tls_server().await;
    let out = run(
        "h2load",
        args(format!("https://127.0.0.1:{}/", tls.addr.port())),
    )
    .await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("Application protocol: h2"), "{report}");
    assert_eq!(succeeded(&report), 2000, "{report}");
}
