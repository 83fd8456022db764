//! An access log in the combined format (nginx's and Apache's default),
//! written from the `logging` phase, plus the request's duration, the
//! upstream it went to, the upstream's response time and the request id.
//!
//! ```text
//! cargo run --example access_log
//! curl -A demo -e http://ref.test/ 127.0.0.1:6188/hello
//! # 127.0.0.1 - - [03/Dec/2026:15:40:01 +0000] "GET /hello HTTP/1.1" 200 22 "http://ref.test/" "demo" rt=0.001 upstream=127.0.0.1:6191 urt=0.001 id=1
//! ```
//!
//! The lines go to a file named by `ACCESS_LOG` (standard output without
//! it) from a thread of their own: the phase only sends the line over a
//! channel, so a slow disk never stalls a request. The demo origin
//! (127.0.0.1:6191, a service of the same server) answers every path.
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the origin; the
//! tests (`pingora/tests/examples.rs`) run it that way. Features: `proxy`.

use async_trait::async_trait;
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::io::Write;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6191"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

/// The proxy: sends every request to the origin and each finished
/// request's line to the writer thread.
struct Logged {
    origin: std::net::SocketAddr,
    /// A `Sender` is not `Sync`: one behind a lock, cloned per request
    /// would cost more than the lock, which is held for one send.
    lines: Mutex<Sender<String>>,
}

impl ProxyHttp for Logged {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, _ctx: &mut ()) {
        let line = combined_line(session, SystemTime::now());
        if let Ok(lines) = self.lines.lock() {
            // The writer only stops with the process.
            let _ = lines.send(line);
        }
    }
}

/// One line of the combined log format, and our fields after it.
fn combined_line(session: &Session, now: SystemTime) -> String {
    let req = session.req_header();
    let field = |name: &str| {
        let value = session.get_header(name).and_then(|v| v.to_str().ok());
        value.unwrap_or("-").replace('"', "\\\"")
    };
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet().map(|a| a.ip()));
    let client = client.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    // A request that got no response (the client left) logs 0, as nginx
    // logs 499 or 0.
    let status = session.response_status().unwrap_or(0);
    let upstream = session
        .upstream_addr()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let urt = session
        .upstream_response_time()
        .map_or_else(|| "-".to_owned(), |t| format!("{:.3}", t.as_secs_f64()));
    format!(
        "{client} - - [{time}] \"{method} {target} {version:?}\" {status} {sent} \"{referer}\" \"{agent}\" rt={rt:.3} upstream={upstream} urt={urt} id={id}",
        time = clf_time(now),
        method = req.method(),
        target = req.uri(),
        version = req.version(),
        sent = session.body_bytes_sent(),
        referer = field("referer"),
        agent = field("user-agent"),
        rt = session.elapsed().as_secs_f64(),
        id = session.request_id(),
    )
}

/// `now` as the common log format writes it, in UTC:
/// `03/Dec/2026:15:40:01 +0000`.
fn clf_time(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let month = MONTHS[(month - 1) as usize];
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{day:02}/{month}/{year}:{h:02}:{m:02}:{s:02} +0000")
}

/// The proleptic Gregorian date of the day `days` after 1970-01-01, by
/// counting 400-year eras of 146,097 days that start on March 1st (so
/// that the leap day ends a year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The writer thread: one line at a time to `ACCESS_LOG`, or to standard
/// output. Flushed per line, so a reader (or a test) sees it at once.
fn start_writer() -> Sender<String> {
    let (send, receive) = channel::<String>();
    let mut out: Box<dyn Write + Send> = match std::env::var_os("ACCESS_LOG") {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
            Box::new(file.unwrap_or_else(|e| {
                eprintln!("ACCESS_LOG {}: {e}", path.to_string_lossy());
                std::process::exit(1)
            }))
        }
        None => Box::new(std::io::stdout()),
    };
    std::thread::spawn(move || {
        for line in receive {
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                eprintln!("access log: write failed");
            }
        }
    });
    send
}

/// The demo origin: names the path it was asked for.
struct Origin;

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let path = request.header().uri().path();
        HttpResponse::text(200, format!("hello from origin: {path}\n"))
    }
}

/// `var` from the environment, else `default`.
fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();
    let origin_addr = ORIGIN.parse().unwrap_or_else(|e| {
        eprintln!("ORIGIN {}: {e}", *ORIGIN);
        std::process::exit(1)
    });
    let mut origin = ListeningService::new("origin", Arc::new(HttpServer::new(Origin)));
    origin.add_tcp(&ORIGIN);
    let logged = Logged {
        origin: origin_addr,
        lines: Mutex::new(start_writer()),
    };
    let mut proxy = http_proxy_service(&server.configuration, logged);
    proxy.add_tcp(&LISTEN);
    let origin = server.add_service(origin);
    let proxy = server.add_service(proxy);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
