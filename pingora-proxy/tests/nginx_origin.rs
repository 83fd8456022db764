//! The proxy in front of nginx as the origin. Needs `nginx` on the PATH;
//! without it every test prints a notice and passes, so that
//! `cargo test --workspace` needs nothing installed (`.ci/run` installs
//! nginx first).

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// An nginx process serving `/hello` (6 bytes) and `/100k` on loopback,
/// killed (by its own pid) when dropped. It runs without a master process,
/// so killing the one process leaves no worker behind.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_installed() -> bool {
    Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

async fn start_nginx() -> Option<Nginx> {
    if !nginx_installed() {
        println!("nginx is not installed: skipping the nginx origin tests");
        // CI installs the peers and sets this, so a missing one fails
        // there instead of passing silently.
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set but an interop peer is missing"
        );
        return None;
    }
    // nginx needs a fixed port in its config: take a free one from the
    // kernel and hand it over (a race with another binder is unlikely and
    // only fails the start below).
    let addr = dead_addr().await;
    let dir = std::env::temp_dir().join(format!("pingora-proxy-nginx-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let conf = format!(
        "master_process off;\nworker_processes 1;\nerror_log logs/error.log;\npid logs/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         server {{\n  listen {addr};\n  location = /hello {{ return 200 \"hello\\n\"; }}\n\
         location = /100k {{ alias {d}/100k; }}\n }}\n}}\n",
        d = dir.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    std::fs::write(dir.join("100k"), vec![b'x'; 100 * 1024]).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Nginx { child, addr, dir };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some(nginx);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start on {addr}");
}

struct ToNginx(SocketAddr);

impl ProxyHttp for ToNginx {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }
}

#[tokio::test]
async fn proxies_to_nginx_with_keepalive() {
    let Some(nginx) = start_nginx().await else {
        return;
    };
    let proxy = start_proxy(ToNginx(nginx.addr), 1).await;
    let mut c = client(proxy.addr).await;
    for _ in 0..3 {
        let resp = exchange(&mut c, request("GET", "/hello"), b"").await;
        assert_eq!((resp.status, &resp.body[..]), (200, &b"hello\n"[..]));
        let resp = exchange(&mut next(c), request("GET", "/100k"), b"").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len(), 100 * 1024);
        c = client(proxy.addr).await;
    }
    let resp = exchange(&mut c, request("GET", "/missing"), b"").await;
    assert_eq!(resp.status, 404);
}
