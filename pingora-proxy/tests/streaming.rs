//! 100 MiB up and 100 MiB down through the proxy, with the memory of the
//! whole test process (client, proxy and origin) staying bounded. This
//! file holds one test so that nothing else runs in the process while its
//! memory is measured.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::v1::{H1Config, ServerConnection};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

const TOTAL: usize = 100 * 1024 * 1024;
const PIECE: usize = 64 * 1024;
/// The most the process may grow while 100 MiB pass each way. Buffering
/// either body would cost at least 100 MiB.
const MAX_GROWTH: usize = 24 * 1024 * 1024;

/// Resident memory of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Streams every upload into a counter and answers with the count;
/// answers `GET /download` with `TOTAL` bytes.
async fn start_streaming_origin() -> Running {
    serve_fn(|stream, _| async move {
        let conn = ServerConnection::new(stream, H1Config::default());
        let Ok(Some(mut s)) = conn.read_request().await else {
            return;
        };
        let download = s.req_header().uri().path() == "/download";
        let mut received = 0usize;
        while let Ok(Some(piece)) = s.read_body_bytes().await {
            received += piece.len();
        }
        let body = if download {
            TOTAL
        } else {
            received.to_string().len()
        };
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Content-Length", body.to_string())
            .unwrap();
        // One request per connection: say so, or the proxy would pool a
        // connection about to close.
        resp.insert_header("Connection", "close").unwrap();
        s.write_response_header(resp).await.unwrap();
        if download {
            let piece = vec![b'd'; PIECE];
            for _ in 0..TOTAL / PIECE {
                if s.write_body(&piece).await.is_err() {
                    return;
                }
            }
        } else {
            s.write_body(received.to_string().as_bytes()).await.unwrap();
        }
        let _ = s.finish_response(None).await;
    })
    .await
}

struct To(SocketAddr);

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_each_way_in_bounded_memory() {
    let origin = start_streaming_origin().await;
    let proxy = start_proxy(To(origin.addr), 0).await;
    // Warm up: allocator arenas, buffers and pools are sized by the first
    // requests, not by the body size.
    assert_eq!(get(proxy.addr, "/warm").await.status, 200);
    let base = rss();
    let mut peak = base;

    let upload = async {
        let mut c = client(proxy.addr).await;
        let mut req = request("POST", "/upload");
        req.insert_header("Content-Length", TOTAL.to_string())
            .unwrap();
        c.write_request_header(req).await.unwrap();
        let piece = vec![b'u'; PIECE];
        for i in 0..TOTAL / PIECE {
            c.write_body(&piece).await.unwrap();
            if i % 64 == 0 {
                peak = peak.max(rss());
            }
        }
        c.finish_body(None).await.unwrap();
        assert_eq!(c.read_final_response_header().await.unwrap().status(), 200);
        let count = c.read_body_bytes().await.unwrap().unwrap();
        assert_eq!(count, TOTAL.to_string().as_bytes());
    };
    tokio::time::timeout(Duration::from_secs(120), upload)
        .await
        .expect("upload timed out");

    let download = async {
        let mut c = client(proxy.addr).await;
        c.write_request_header(request("GET", "/download"))
            .await
            .unwrap();
        c.finish_body(None).await.unwrap();
        assert_eq!(c.read_final_response_header().await.unwrap().status(), 200);
        let (mut received, mut pieces) = (0, 0usize);
        while let Some(piece) = c.read_body_bytes().await.unwrap() {
            received += piece.len();
            pieces += 1;
            if pieces % 64 == 0 {
                peak = peak.max(rss());
            }
        }
        assert_eq!(received, TOTAL);
    };
    tokio::time::timeout(Duration::from_secs(120), download)
        .await
        .expect("download timed out");

    let growth = peak.saturating_sub(base);
    println!(
        "rss: base {} KiB, peak {} KiB, growth {} KiB (bound {} KiB)",
        base / 1024,
        peak / 1024,
        growth / 1024,
        MAX_GROWTH / 1024
    );
    assert!(growth < MAX_GROWTH, "grew {growth} bytes");
}
