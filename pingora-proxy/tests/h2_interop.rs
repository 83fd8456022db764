//! Real HTTP/2 clients through the proxy: curl with `--http2` over TLS
//! (ALPN) and `--http2-prior-knowledge` (h2c), nghttp, and h2load for
//! many multiplexed requests. Each test skips itself with a notice when
//! its tool is missing, so `cargo test --workspace` needs nothing
//! installed; `.ci/run` installs curl and nghttp2-client.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;

use pingora_core::apps::ServerApp;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::server::ServerConf;
use pingora_core::tls::{Alpn, CertKey, CertStore, TlsAcceptor, TlsSettings};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use support::h2_tools::Reflect;
use support::tools::{run_tool, tool_available};
use support::{Running, serve_app, serve_fn};

/// Run `tool args`, bounded to 60 s; returns the output, asserting
/// success.
async fn run(tool: &str, args: Vec<String>) -> Output {
    run_tool(tool, args, 60).await
}

/// Sends everything to `origin`, speaking `alpn` upstream.
struct ToOrigin {
    origin: SocketAddr,
    alpn: Alpn,
}

impl ProxyHttp for ToOrigin {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, false, "");
        peer.options.alpn = self.alpn;
        Ok(Box::new(peer))
    }
}

/// An origin (HTTP/1 and h2c) and a proxy in front of it speaking `alpn`
/// upstream; the proxy serves h2c, and TLS with ALPN when `tls` is given.
async fn setup(alpn: Alpn, tls: Option<TlsAcceptor>) -> (Running, Running) {
    let origin = serve_app(HttpServer::new(Reflect).with_h2c(true)).await;
    let sv = ToOrigin {
        origin: origin.addr,
        alpn,
    };
    let proxy = HttpProxy::new(sv, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = match tls {
        None => serve_app(proxy).await,
        Some(acceptor) => {
            let proxy = Arc::new(proxy);
            serve_fn(move |stream, shutdown| {
                let (proxy, acceptor) = (proxy.clone(), acceptor.clone());
                async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        proxy.process_new(stream, &shutdown).await;
                    }
                }
            })
            .await
        }
    };
    (origin, proxy)
}

/// A TLS acceptor offering h2 and http/1.1, with a self-signed
/// certificate for `proxy.test`.
fn tls_acceptor() -> TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["proxy.test".to_owned()]).unwrap();
    let (cert, key) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let cert = CertKey::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let mut settings = TlsSettings::new(CertStore::new().with_default(cert));
    settings.set_alpn(Alpn::H2H1);
    settings.build().unwrap()
}

/// curl's arguments for one request; the output ends with
/// `<http version> <status>`.
fn curl_args(mode: &str, body: Option<&str>, url: String) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-sS".into(),
        mode.into(),
        "-D".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_version} %{http_code}".into(),
    ];
    if let Some(body) = body {
        args.extend(["-d".into(), body.into()]);
    }
    args.push(url);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_over_tls() {
    if !tool_available("curl") {
        return;
    }
    for alpn in [Alpn::H2, Alpn::H1] {
        let (_origin, proxy) = setup(alpn, Some(tls_acceptor())).await;
        let port = proxy.addr.port();
        let mut args = curl_args(
            "--http2",
            Some("over tls"),
            format!("https://proxy.test:{port}/tls?x=1"),
        );
        // The certificate is self-signed; name resolution stays local.
        args.extend([
            "-k".into(),
            "--resolve".into(),
            format!("proxy.test:{port}:127.0.0.1"),
        ]);
        let out = run("curl", args).await;
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(text.ends_with("over tls\n2 200"), "{text}");
        let version = if alpn == Alpn::H2 {
            "http/2.0"
        } else {
            "http/1.1"
        };
        assert!(
            text.contains(&format!("x-seen-version: {version}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("x-seen-host: proxy.test:{port}")),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_prior_knowledge() {
    if !tool_available("curl") {
        return;
    }
    for alpn in [Alpn::H2, Alpn::H1] {
        let (_origin, proxy) = setup(alpn, None).await;
        let url = format!("http://{}/h2c?y=2", proxy.addr);
        for body in [None, Some("posted body")] {
            let out = run(
                "curl",
                curl_args("--http2-prior-knowledge", body, url.clone()),
            )
            .await;
            let text = String::from_utf8_lossy(&out.stdout);
            let expect = format!("{}\n2 200", body.unwrap_or(""));
            assert!(text.ends_with(&expect), "{text}");
            assert!(text.contains("x-seen-uri: /h2c?y=2"), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nghttp_several_streams() {
    if !tool_available("nghttp") {
        return;
    }
    let (_origin, proxy) = setup(Alpn::H2, None).await;
    let base = format!("http://{}", proxy.addr);
    let args = vec![
        "-n".into(),
        "-s".into(),
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/c"),
    ];
    let out = run("nghttp", args).await;
    let stats = String::from_utf8_lossy(&out.stdout);
    // One statistics line per finished stream, with its status.
    assert_eq!(stats.matches(" 200 ").count(), 3, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_many_multiplexed_requests() {
    if !tool_available("h2load") {
        return;
    }
    for alpn in [Alpn::H2, Alpn::H1] {
        let (_origin, proxy) = setup(alpn, None).await;
        let args = vec![
            "-n".into(),
            "2000".into(),
            "-c".into(),
            "4".into(),
            "-m".into(),
            "16".into(),
            format!("http://{}/load", proxy.addr),
        ];
        let out = run("h2load", args).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("2000 succeeded, 0 failed, 0 errored"),
            "{text}"
        );
    }
}
