//! Every example, run as a process on free loopback ports and checked for
//! what its header promises: not only compiled.
//!
//! The examples are the binaries `cargo test` builds next to this test
//! (`target/<profile>/examples/`); the environment variables each one
//! reads (`LISTEN`, `ORIGIN`, ...) move it off its fixed demo ports.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "examples/support.rs"]
mod support;

use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn server_echoes_and_stops_on_sigterm() {
    let listen = free_addr();
    let mut example = Example::start("server", &[], &[("LISTEN", &listen)]);
    example.wait_listening(&listen);
    let echoed = echo(&listen, b"ping\n");
    assert_eq!(echoed, b"ping\n");
    example.stop(Signal::SIGTERM);
}

#[test]
fn load_balancer_alternates_between_its_origins() {
    let (listen, o1, o2) = (free_addr(), free_addr(), free_addr());
    let origins = format!("{o1},{o2}");
    let env = [("LISTEN", listen.as_str()), ("ORIGINS", origins.as_str())];
    let mut example = Example::start("load_balancer", &[], &env);
    example.wait_listening(&listen);
    let bodies: Vec<String> = (0..4)
        .map(|_| get(&listen, "/", &[]).unwrap().body)
        .collect();
    // Round robin: each origin every other time, whichever came first.
    assert_ne!(bodies[0], bodies[1], "{bodies:?}");
    assert_eq!(bodies[0], bodies[2], "{bodies:?}");
    assert_eq!(bodies[1], bodies[3], "{bodies:?}");
    for body in &bodies {
        assert!(body.starts_with("hello from origin "), "{bodies:?}");
    }
    example.stop(Signal::SIGTERM);
}

#[test]
fn load_balancer_takes_a_down_origin_out_of_the_rotation() {
    let a = Origin::start("a");
    let b = Origin::start("b");
    let listen = free_addr();
    let upstreams = format!("{},{}", a.addr, b.addr);
    let env = [
        ("LISTEN", listen.as_str()),
        ("UPSTREAMS", upstreams.as_str()),
    ];
    let mut example = Example::start("load_balancer", &[], &env);
    example.wait_listening(&listen);
    let mut seen: Vec<String> = (0..4)
        .map(|_| get(&listen, "/", &[]).unwrap().body)
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"]);
    drop(b);
    // The health check probes every second; one failed probe takes `b`
    // out. After that every request goes to `a`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answers: Vec<_> = (0..4).map(|_| get(&listen, "/", &[])).collect();
        if answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.status == 200 && a.body == "a"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b still in the rotation: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    example.stop(Signal::SIGTERM);
}

/// A graceful upgrade of the load balancer: a new process takes every
/// listener over (`-u`, then SIGQUIT to the old one) under a client
/// looping on requests, and no request fails.
#[test]
fn load_balancer_upgrade_loses_no_request() {
    let dir = TempDir::new("lb-upgrade");
    let conf = dir.write(
        "conf.yaml",
        &format!(
            "grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 5\n\
             pid_file: {0}/lb.pid\nupgrade_sock: {0}/upgrade.sock\n",
            dir.path().display()
        ),
    );
    let (listen, o1, o2) = (free_addr(), free_addr(), free_addr());
    let origins = format!("{o1},{o2}");
    let env = [("LISTEN", listen.as_str()), ("ORIGINS", origins.as_str())];
    let mut old = Example::start("load_balancer", &["-c", &conf], &env);
    old.wait_listening(&listen);
    let load = Load::start(&listen);
    load.wait_for(50);
    let mut new = Example::start("load_balancer", &["-c", &conf, "-u"], &env);
    // The new process waits on the upgrade socket; the old one retries
    // sending its listeners until the new one is there.
    std::thread::sleep(Duration::from_millis(200));
    old.signal(Signal::SIGQUIT);
    assert!(
        old.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        old.stderr()
    );
    load.wait_for(50);
    let report = load.finish();
    println!("upgrade under load: {report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.ok > 100, "{report:?}");
    // The new process serves, origins included.
    let body = get(&listen, "/", &[]).unwrap().body;
    assert!(body.starts_with("hello from origin "), "{body}");
    new.stop(Signal::SIGTERM);
}

#[test]
fn gateway_refuses_without_a_login_and_proxies_with_one() {
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("gateway", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    let refused = get(&listen, "/", &[]).unwrap();
    assert_eq!(refused.status, 403, "{refused:?}");
    let allowed = get(&listen, "/", &[("x-login", "letmein")]).unwrap();
    assert_eq!(allowed.status, 200, "{allowed:?}");
    example.stop(Signal::SIGTERM);
}

#[test]
fn ctx_sends_beta_users_to_the_beta_origin_and_counts_them() {
    let (listen, stable, beta) = (free_addr(), free_addr(), free_addr());
    let env = [
        ("LISTEN", listen.as_str()),
        ("STABLE", &stable),
        ("BETA", &beta),
    ];
    let mut example = Example::start("ctx", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&stable);
    example.wait_listening(&beta);
    let plain = get(&listen, "/", &[]).unwrap();
    assert_eq!(plain.body, "hello from the stable origin\n");
    for n in 1..=2 {
        let answer = get(&listen, "/", &[("beta-flag", "1")]).unwrap();
        assert_eq!(answer.body, "hello from the beta origin\n");
        assert_eq!(
            answer.header("x-beta-count"),
            Some(n.to_string()),
            "{answer:?}"
        );
    }
    example.stop(Signal::SIGTERM);
}

#[test]
fn modify_response_rewrites_the_json_body() {
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("modify_response", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    let answer = get(&listen, "/", &[]).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body.trim_end(),
        r#"{"name":"pingora-rs","version":1,"proxied":true}"#
    );
    example.stop(Signal::SIGTERM);
}

#[test]
fn websocket_frames_pass_through_the_proxy() {
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("websocket", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    let echoed = websocket_echo(&listen, b"hello frames");
    assert_eq!(echoed, b"hello frames");
    example.stop(Signal::SIGTERM);
}

#[test]
fn grpc_web_bridges_a_text_call_to_the_grpc_origin() {
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("grpc_web", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    // One message frame holding "hello", base64-encoded.
    let ct = [("Content-Type", "application/grpc-web-text")];
    let answer = post(&listen, "/demo.Echo/Say", &ct, b"AAAAAAVoZWxsbw==").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let ct = answer.header("content-type");
    assert_eq!(ct.as_deref(), Some("application/grpc-web-text"));
    // The message echoed, then the trailer frame, each padded base64.
    let (message, trailer) = answer.body.split_at(16);
    assert_eq!(message, "AAAAAAVoZWxsbw==");
    let frame = b"\x80\0\0\0\x24grpc-status: 0\r\nx-echoed-bytes: 10\r\n";
    assert_eq!(trailer, base64(frame), "{answer:?}");
    example.stop(Signal::SIGTERM);
}

/// Padded base64 (RFC 4648), for the gRPC-web text mode.
fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in data.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= group.len() {
                TABLE[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            };
            out.push(c);
        }
    }
    out
}

#[test]
fn bench_proxy_proxies_to_the_upstream_it_is_given() {
    let origin = Origin::start("bench origin");
    let listen = free_addr();
    let mut example = Example::start("bench_proxy", &[&origin.addr, &listen], &[]);
    example.wait_listening(&listen);
    let answer = get(&listen, "/", &[]).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "bench origin"));
    example.stop(Signal::SIGTERM);
}

#[test]
fn cache_proxy_serves_hits_without_the_origin_and_purges() {
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("cache_proxy", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    let first = get(&listen, "/", &[]).unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        first.header("x-origin-count").as_deref(),
        Some("1"),
        "{first:?}"
    );
    let hit = get(&listen, "/", &[]).unwrap();
    assert_eq!(hit.header("x-cache").as_deref(), Some("hit"), "{hit:?}");
    assert_eq!(
        hit.header("x-origin-count").as_deref(),
        Some("1"),
        "{hit:?}"
    );
    assert!(hit.header("age").is_some(), "{hit:?}");
    assert_eq!(hit.body, first.body);
    let purged = request(&listen, "PURGE", "/").unwrap();
    assert_eq!(purged.status, 200, "{purged:?}");
    let again = get(&listen, "/", &[]).unwrap();
    assert_eq!(
        again.header("x-origin-count").as_deref(),
        Some("2"),
        "{again:?}"
    );
    example.stop(Signal::SIGTERM);
}

#[test]
fn cache_fleet_demo_shards_keys_over_its_caching_shards() {
    let addrs = free_addrs(5);
    let (listen, origin) = (&addrs[0], &addrs[1]);
    let shards = addrs[2..].join(",");
    let env = [
        ("LISTEN", listen.as_str()),
        ("ORIGIN", origin.as_str()),
        ("SHARDS", shards.as_str()),
    ];
    let mut example = Example::start("cache_fleet", &[], &env);
    example.wait_listening(listen);
    let first = get(listen, "/a", &[]).unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-shard-cache").as_deref(), Some("miss"));
    let shard = first.header("x-shard").unwrap();
    assert!(shards.split(',').any(|s| s == shard), "{first:?}");
    let hit = get(listen, "/a", &[]).unwrap();
    assert_eq!(
        hit.header("x-shard-cache").as_deref(),
        Some("hit"),
        "{hit:?}"
    );
    assert_eq!(hit.header("x-shard"), Some(shard));
    let counts = get(origin, "/__counts", &[]).unwrap();
    assert_eq!(counts.body, "1 /a\n");
    let view = get(listen, "/__shards", &[]).unwrap();
    assert_eq!(view.body.matches(" up\n").count(), 3, "{view:?}");
    example.stop(Signal::SIGTERM);
}

#[test]
fn cache_fleet_refuses_an_unknown_role() {
    let mut example = Example::start("cache_fleet", &["cache"], &[]);
    let status = example.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", example.stderr());
    assert!(example.stderr().contains("usage: cache_fleet"));
}

#[test]
fn access_log_writes_combined_lines() {
    let (listen, origin) = (free_addr(), free_addr());
    let dir = TempDir::new("access-log");
    let log = dir.path().join("access.log");
    let log_path = log.to_string_lossy().into_owned();
    let env = [
        ("LISTEN", listen.as_str()),
        ("ORIGIN", origin.as_str()),
        ("ACCESS_LOG", log_path.as_str()),
    ];
    let mut example = Example::start("access_log", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    let headers = [
        ("User-Agent", "demo \"agent\""),
        ("Referer", "http://ref.test/"),
    ];
    let answer = get(&listen, "/hello", &headers).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("/hello") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let line = text.lines().find(|l| l.contains("/hello")).unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    // Today, in the common log format (the date command's reading of the
    // clock, against the example's own calendar arithmetic).
    let today = std::process::Command::new("date")
        .args(["-u", "+%d/%b/%Y:"])
        .output()
        .unwrap();
    let today = String::from_utf8(today.stdout).unwrap();
    assert!(
        line.contains(&format!("[{}", today.trim())),
        "{line} {today}"
    );
    let sent = answer.body.len();
    let expected = format!(
        "+0000] \"GET /hello HTTP/1.1\" 200 {sent} \"http://ref.test/\" \"demo \\\"agent\\\"\" rt="
    );
    assert!(line.contains(&expected), "{line}\n{expected}");
    assert!(line.contains(&format!(" upstream={origin} urt=")), "{line}");
    assert!(line.contains(" id="), "{line}");
    example.stop(Signal::SIGTERM);
}

#[test]
fn rate_limiter_refuses_a_burst_with_429_and_passes_traffic_under_the_limit() {
    let (listen, origin) = (free_addr(), free_addr());
    // A long window: the whole test falls in its first interval.
    let env = [
        ("LISTEN", listen.as_str()),
        ("ORIGIN", origin.as_str()),
        ("LIMIT", "5"),
        ("WINDOW_SECS", "60"),
    ];
    let mut example = Example::start("rate_limiter", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    // Under the limit: every request passes, counting down what is left.
    for left in (0..5).rev() {
        let answer = get(&listen, "/", &[("appid", "calm")]).unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, "Hello, world!\n");
        assert_eq!(answer.header("x-ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            answer.header("x-ratelimit-remaining"),
            Some(left.to_string()),
            "{answer:?}"
        );
    }
    // A burst of 9 from one client: 5 pass, 4 get 429 with the headers.
    let burst: Vec<_> = (0..9)
        .map(|_| get(&listen, "/", &[("appid", "burst")]).unwrap())
        .collect();
    let statuses: Vec<u16> = burst.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429]);
    for refused in &burst[5..] {
        assert_eq!(refused.header("x-ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            refused.header("x-ratelimit-remaining").as_deref(),
            Some("0")
        );
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{refused:?}");
    }
    // Other clients keep their own limits: by IP, and another appid.
    assert_eq!(get(&listen, "/", &[]).unwrap().status, 200);
    let other = get(&listen, "/", &[("appid", "other")]).unwrap();
    assert_eq!(other.status, 200, "{other:?}");
    example.stop(Signal::SIGTERM);
}

/// `GET path` with `Accept-Encoding: accept`: the head (lower case) and
/// the body bytes (dechunked), read to the close.
fn get_encoded(addr: &str, path: &str, accept: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: example.test\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut rest = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (head, rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let line = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&rest[..line]).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return (head, body);
        }
        body.extend_from_slice(&rest[line + 2..line + 2 + size]);
        rest = &rest[line + 2 + size + 2..];
    }
}

#[test]
fn compression_encodes_for_clients_that_accept_it() {
    use std::io::Read;
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("compression", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    let plain = get(&listen, "/", &[]).unwrap();
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(plain.header("content-encoding"), None, "{plain:?}");
    assert!(plain.body.contains("item number 499"), "{plain:?}");
    let (head, body) = get_encoded(&listen, "/", "gzip");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(body.len() < plain.body.len() / 4, "{} bytes", body.len());
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain.body);
    let browser = "gzip, deflate, br, zstd";
    let (head, _) = get_encoded(&listen, "/", browser);
    assert!(head.contains("content-encoding: br"), "{head}");
    // Turned off for this path by `request_filter`.
    let off = get(&listen, "/plain", &[("Accept-Encoding", browser)]).unwrap();
    assert_eq!(off.header("content-encoding"), None, "{off:?}");
    assert_eq!(off.body, plain.body);
    example.stop(Signal::SIGTERM);
}

/// `n` distinct loopback UDP addresses with ports free right now.
fn free_udp_addrs(n: usize) -> Vec<String> {
    let sockets: Vec<_> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().to_string())
        .collect()
}

/// Send `query` from `client` to `addr` until an answer comes (the example
/// may not be receiving yet); the answer.
fn ask_udp(client: &std::net::UdpSocket, addr: &str, query: &[u8]) -> String {
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 2048];
    loop {
        client.send_to(query, addr).unwrap();
        if let Ok((n, from)) = client.recv_from(&mut buf) {
            assert_eq!(from.to_string(), addr, "answered from the address asked");
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(Instant::now() < deadline, "no answer from {addr}");
    }
}

#[test]
fn udp_proxy_keeps_each_client_on_one_upstream_and_logs_sessions() {
    let dir = TempDir::new("udp-proxy");
    let conf = dir.write(
        "conf.yaml",
        "grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 5\n",
    );
    let addrs = free_udp_addrs(3);
    let upstreams = format!("{},{}", addrs[1], addrs[2]);
    let env = [
        ("LISTEN", addrs[0].as_str()),
        ("UPSTREAMS", upstreams.as_str()),
        ("IDLE_MS", "300"),
    ];
    let mut example = Example::start("udp_proxy", &["-c", &conf], &env);
    // The upstreams answer first, so that no session meets one still
    // starting.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(ask_udp(&probe, &addrs[1], b"up?"), "upstream 1: up?");
    assert_eq!(ask_udp(&probe, &addrs[2], b"up?"), "upstream 2: up?");
    let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let second = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = ask_udp(&first, &addrs[0], b"hello");
    let b = ask_udp(&second, &addrs[0], b"hello");
    // Round robin per session: the two clients went to different
    // upstreams, and each stays on its own.
    let mut both = [a.clone(), b.clone()];
    both.sort();
    assert_eq!(both, ["upstream 1: hello", "upstream 2: hello"]);
    assert_eq!(
        ask_udp(&first, &addrs[0], b"again"),
        a.replace("hello", "again")
    );
    // After 300 ms idle each session ends and is logged.
    let deadline = Instant::now() + WAIT;
    while example.stderr().matches("session ended (idle)").count() < 2 {
        assert!(Instant::now() < deadline, "{}", example.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        example
            .stderr()
            .contains("2 datagrams (10 bytes) up, 2 datagrams (34 bytes) down"),
        "{}",
        example.stderr()
    );
    example.stop(Signal::SIGTERM);
}

/// A graceful upgrade of the UDP proxy: the new process takes the UDP
/// sockets over (`-u`, then SIGQUIT to the old one), and clients are
/// answered on the same addresses after the old one exits.
#[test]
fn udp_proxy_upgrade_hands_its_sockets_over() {
    let dir = TempDir::new("udp-upgrade");
    let conf = dir.write(
        "conf.yaml",
        &format!(
            "grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 5\n\
             pid_file: {0}/udp.pid\nupgrade_sock: {0}/upgrade.sock\n",
            dir.path().display()
        ),
    );
    let addrs = free_udp_addrs(3);
    let upstreams = format!("{},{}", addrs[1], addrs[2]);
    let env = [
        ("LISTEN", addrs[0].as_str()),
        ("UPSTREAMS", upstreams.as_str()),
    ];
    let mut old = Example::start("udp_proxy", &["-c", &conf], &env);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(ask_udp(&client, &addrs[0], b"before").ends_with(": before"));
    let mut new = Example::start("udp_proxy", &["-c", &conf, "-u"], &env);
    // The new process waits on the upgrade socket; the old one retries
    // sending its sockets until the new one is there.
    std::thread::sleep(Duration::from_millis(200));
    old.signal(Signal::SIGQUIT);
    assert!(
        old.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        old.stderr()
    );
    // Had the new process bound sockets of its own instead, it would have
    // failed (the addresses were in use) and exited.
    let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(ask_udp(&other, &addrs[0], b"after").ends_with(": after"));
    assert!(
        new.stderr().contains("taking over UDP socket"),
        "{}",
        new.stderr()
    );
    new.stop(Signal::SIGTERM);
}

#[test]
fn ip_filter_serves_allowed_clients_and_drops_the_rest() {
    use std::io::{Read, Write};
    let (listen, origin) = (free_addr(), free_addr());
    let env = [("LISTEN", listen.as_str()), ("ORIGIN", origin.as_str())];
    let mut example = Example::start("ip_filter", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&origin);
    // A local client without a PROXY header: 127.0.0.0/8 is allowed.
    let direct = get(&listen, "/", &[]).unwrap();
    assert_eq!(direct.status, 200, "{direct:?}");
    // Clients named by a balancer on 127.0.0.1: the filter judges them.
    let through_balancer = |client: &str| {
        let mut conn = std::net::TcpStream::connect(&listen).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let header = format!("PROXY TCP4 {client} 127.0.0.1 5000 6188\r\n");
        let req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        conn.write_all(format!("{header}{req}").as_bytes()).unwrap();
        let mut answer = Vec::new();
        // A dropped connection may end in a reset rather than a FIN.
        let _ = conn.read_to_end(&mut answer);
        String::from_utf8(answer).unwrap()
    };
    let allowed = through_balancer("203.0.113.7");
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert_eq!(through_balancer("203.0.113.66"), "", "on the deny list");
    assert_eq!(through_balancer("192.0.2.1"), "", "not on the allow list");
    example.stop(Signal::SIGTERM);
}

/// Read one greeting line from a new connection to `addr`, then check
/// the connection echoes.
fn greeting_then_echo(addr: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    (&tcp).write_all(b"ping\n").unwrap();
    let mut echoed = String::new();
    reader.read_line(&mut echoed).unwrap();
    assert_eq!(echoed, "ping\n");
    greeting
}

#[test]
fn tcp_proxy_balances_connections_over_its_origins() {
    let (listen, o1, o2) = (free_addr(), free_addr(), free_addr());
    let origins = format!("{o1},{o2}");
    let env = [("LISTEN", listen.as_str()), ("ORIGINS", origins.as_str())];
    let mut example = Example::start("tcp_proxy", &[], &env);
    example.wait_listening(&listen);
    let greetings: Vec<String> = (0..4).map(|_| greeting_then_echo(&listen)).collect();
    // Both origins take connections (round robin, both healthy).
    for origin in ["origin 1\n", "origin 2\n"] {
        assert!(greetings.iter().any(|g| g == origin), "{greetings:?}");
    }
    example.stop(Signal::SIGTERM);
}

/// Connect with TLS to `addr` for `sni` offering `alpn`, without checking
/// the certificate (the example's are self-signed); the certificate the
/// server presented and, over HTTP/1.1, the answer to `GET /`.
fn tls_hello(addr: &str, sni: &str, alpn: pingora::tls::Alpn) -> Result<(Vec<u8>, String), String> {
    use pingora::connectors::{ConnectorOptions, TransportConnector};
    use pingora::upstreams::BasicPeer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let mut peer = BasicPeer::new(addr).with_tls(sni);
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
        peer.options.alpn = alpn;
        peer.options.total_connection_timeout = Some(Duration::from_secs(10));
        let mut tls = connector
            .new_stream(&peer)
            .await
            .map_err(|e| e.to_string())?;
        let digest = tls.digest().and_then(|d| d.tls.clone()).unwrap();
        let cert = digest.peer_certificate.clone().unwrap_or_default();
        if digest.is_h2() {
            return Ok((cert, String::new()));
        }
        let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer));
        let _ = read.await.unwrap();
        Ok((cert, String::from_utf8_lossy(&answer).into_owned()))
    })
}

#[test]
fn sni_router_passes_tls_through_by_server_name() {
    use pingora::tls::Alpn;
    let (listen, a, b) = (free_addr(), free_addr(), free_addr());
    let backends = format!("{a},{b}");
    let env = [("LISTEN", listen.as_str()), ("BACKENDS", backends.as_str())];
    let mut example = Example::start("sni_router", &[], &env);
    example.wait_listening(&listen);
    example.wait_listening(&a);
    example.wait_listening(&b);
    let names_in = |der: &[u8], name: &str| der.windows(name.len()).any(|w| w == name.as_bytes());
    for name in ["a.example", "b.example"] {
        let (cert, answer) = tls_hello(&listen, name, Alpn::H1).unwrap();
        // The backend's own certificate: TLS was not terminated.
        assert!(names_in(&cert, name), "{name}");
        assert!(
            answer.ends_with(&format!("hello from {name}\n")),
            "{answer}"
        );
    }
    // Another name offering h2 reaches b; without h2 it is closed.
    let (cert, _) = tls_hello(&listen, "c.example", Alpn::H2H1).unwrap();
    assert!(names_in(&cert, "b.example"));
    assert!(tls_hello(&listen, "c.example", Alpn::H1).is_err());
    example.stop(Signal::SIGTERM);
}

#[test]
fn bench_tcp_proxy_relays_to_the_upstream_it_is_given() {
    let origin = Origin::start("bench tcp origin");
    for splice in ["1", "0"] {
        let listen = free_addr();
        let env = [("BENCH_SPLICE", splice)];
        let mut example = Example::start("bench_tcp_proxy", &[&origin.addr, &listen], &env);
        example.wait_listening(&listen);
        // The origin keeps connections alive: read just its answer.
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(&listen).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let expected = "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nbench tcp origin";
        let mut answer = vec![0; expected.len()];
        tcp.read_exact(&mut answer).unwrap();
        assert_eq!(String::from_utf8_lossy(&answer), expected);
        // A session in flight would hold the shutdown for its drain time.
        drop(tcp);
        example.stop(Signal::SIGTERM);
    }
}
