//! Origins, program processes and a client for the compat tests.
//! Everything binds 127.0.0.1 on ephemeral ports and every wait is bounded.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use pingora::apps::ServerApp;
use pingora::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::http::{HeaderMap, RequestHeader};
use pingora::protocols::Stream;
use pingora::protocols::http::v1::{ClientSession, H1Config};
use pingora::protocols::l4::L4Stream;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// Every network wait is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// An origin answering with its name, the Host it saw, and an `alt-svc`
/// field a gateway may strip.
pub struct Named(pub &'static str);

#[async_trait::async_trait]
impl ServeHttp for Named {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let mut resp = HttpResponse::text(200, self.0);
        let host = request
            .header()
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let head = resp.header_mut();
        head.insert_header("X-Seen-Host", host).unwrap();
        head.insert_header("alt-svc", "h3=\":443\"").unwrap();
        resp
    }
}

/// An origin answering `{"ip": <the Host it saw>}` as JSON.
pub struct JsonIp;

#[async_trait::async_trait]
impl ServeHttp for JsonIp {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let host = request
            .header()
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut resp = HttpResponse::text(200, format!("{{\"ip\":\"{host}\"}}"));
        resp.header_mut()
            .insert_header("Content-Type", "application/json")
            .unwrap();
        resp
    }
}

/// An origin on 127.0.0.1:0; dropping it stops accepting.
pub struct Origin {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `app` on 127.0.0.1:0 with the framework's HTTP server app.
pub async fn origin<S: ServeHttp>(app: S) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::new(HttpServer::new(app));
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let _keep = _tx;
        while let Ok((tcp, _)) = listener.accept().await {
            let app = Arc::clone(&app);
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let stream: Stream = Box::new(L4Stream::from_tcp(tcp));
                app.process_new(stream, &shutdown).await;
            });
        }
    });
    Origin { addr, task }
}

/// A port nothing listens on now, for a program to bind.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A program of this crate running as a process; killed when dropped.
pub struct Program {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
}

impl Program {
    /// Start the binary `bin` listening on a free port, with `origins`
    /// and `env` in its environment and a config file of its own, and
    /// wait until it accepts connections.
    pub async fn start(
        bin: &str,
        origins: &[SocketAddr],
        env: &[(&str, String)],
        conf_extra: &str,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pingora-compat-{}-{bin}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("conf.yaml");
        std::fs::write(
            &conf,
            format!(
                "version: 1\nthreads: 2\npid_file: {}\nupgrade_sock: {}\n\
                 grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\n{conf_extra}",
                dir.join("pid").display(),
                dir.join("upgrade.sock").display(),
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let origins: Vec<String> = origins.iter().map(ToString::to_string).collect();
        let mut command = Command::new(bin_path(bin));
        command
            .arg("-c")
            .arg(&conf)
            .env("COMPAT_LISTEN", addr.to_string())
            .env("COMPAT_ORIGINS", origins.join(","))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        let program = Self { child, dir, addr };
        program.wait_accepting(addr).await;
        program
    }

    /// Wait until `addr` accepts connections.
    pub async fn wait_accepting(&self, addr: SocketAddr) {
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{addr} not accepting; stderr: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the program wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bin_path(bin: &str) -> &'static str {
    match bin {
        "load_balancer" => env!("CARGO_BIN_EXE_load_balancer"),
        "gateway" => env!("CARGO_BIN_EXE_gateway"),
        "modify_response" => env!("CARGO_BIN_EXE_modify_response"),
        "ctx" => env!("CARGO_BIN_EXE_ctx"),
        "multi_service" => env!("CARGO_BIN_EXE_multi_service"),
        other => panic!("no program {other}"),
    }
}

/// A finished exchange.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method path` with `fields` and `body` on a fresh connection to `addr`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    fields: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    tokio::time::timeout(WAIT, async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut config = H1Config::default();
        config.header_timeout = WAIT;
        config.body_read_timeout = WAIT;
        config.write_timeout = WAIT;
        let mut client = ClientSession::new(Box::new(L4Stream::from_tcp(tcp)), config);
        let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        req.insert_header("Host", "compat.test").unwrap();
        for (name, value) in fields {
            req.insert_header(*name, *value).unwrap();
        }
        if !body.is_empty() {
            req.set_content_length(body.len()).unwrap();
        }
        client.write_request_header(req).await.unwrap();
        if !body.is_empty() {
            client.write_body(body).await.unwrap();
        }
        client.finish_body(None).await.unwrap();
        let head = client.read_final_response_header().await.unwrap();
        let (status, headers) = (head.status.as_u16(), head.headers().clone());
        let mut body = Vec::new();
        while let Some(piece) = client.read_body_bytes().await.unwrap() {
            body.extend_from_slice(&piece);
        }
        Answer {
            status,
            headers,
            body,
        }
    })
    .await
    .expect("exchange timed out")
}

/// `GET path` with `fields` on a fresh connection to `addr`.
pub async fn get(addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Answer {
    send(addr, "GET", path, fields, b"").await
}
