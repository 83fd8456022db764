//! The Pingora-style programs of `src/bin/`, run as processes against real
//! origins on loopback: each test checks what the program does, not only
//! that it builds.

mod support;

use std::time::{Duration, Instant};
use support::{JsonIp, Named, Program, WAIT, get, origin, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_alternates_and_drops_a_down_origin() {
    let a = origin(Named("A")).await;
    let b = origin(Named("B")).await;
    // The program logs each selection at info level.
    let lb = Program::start(
        "load_balancer",
        &[a.addr, b.addr],
        &[("RUST_LOG", "info".to_string())],
        "",
    )
    .await;

    // Round robin: both origins, in turn, with the Host the program sets.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let answer = get(lb.addr, "/", &[]).await;
        assert_eq!(answer.status, 200, "{}", lb.stderr());
        assert_eq!(answer.headers["x-seen-host"], "one.one.one.one");
        seen.push(answer.text());
    }
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    assert!(seen.contains(&"A".to_string()) && seen.contains(&"B".to_string()));

    // B goes down: the health check takes it out of the rotation, so that
    // B is no longer even selected (a retry alone would hide a failed
    // attempt, so the test reads the program's selection log).
    let b_addr = b.addr.to_string();
    drop(b);
    let deadline = Instant::now() + WAIT;
    loop {
        let mark = lb.stderr().len();
        let mut all_a = true;
        for _ in 0..4 {
            let answer = get(lb.addr, "/", &[]).await;
            all_a &= answer.status == 200 && answer.text() == "A";
        }
        let log = lb.stderr();
        let selections = log[mark..].matches("upstream peer is").count();
        let b_selected = log[mark..].contains(&b_addr);
        if all_a && selections >= 4 && !b_selected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never left the rotation: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_checks_login_routes_and_rewrites() {
    let main = origin(Named("main")).await;
    let family = origin(Named("family")).await;
    let gw = Program::start("gateway", &[main.addr, family.addr], &[], "").await;

    let denied = get(gw.addr, "/login", &[]).await;
    assert_eq!(denied.status, 403, "{}", gw.stderr());
    assert_eq!(denied.text(), "no way!");

    let allowed = get(gw.addr, "/login", &[("Authorization", "password")]).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.text(), "main");

    let routed = get(gw.addr, "/family/photos", &[]).await;
    assert_eq!(routed.text(), "family");
    assert_eq!(routed.headers["server"], "MyGateway");
    assert!(
        routed.headers.get("alt-svc").is_none(),
        "alt-svc not removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_response_rewrites_the_json_body_as_yaml() {
    let json = origin(JsonIp).await;
    let proxy = Program::start("modify_response", &[json.addr], &[], "").await;
    let answer = get(proxy.addr, "/", &[]).await;
    assert_eq!(answer.status, 200, "{}", proxy.stderr());
    // The origin answers with the Host it saw, which the program sets.
    assert_eq!(answer.text(), "ip: ip.jsontest.com\n");
    assert!(answer.headers.get("content-length").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctx_sends_beta_users_to_their_own_origin() {
    let stable = origin(Named("stable")).await;
    let beta = origin(Named("beta")).await;
    // A Pingora conf.yaml with a key of the program's own and a typo: the
    // program boots, and the typo is a warning at start-up.
    let conf = "work_stealing: true\nupstream_keepalive_pool_size: 64\n\
        client_bind_to_ipv4: [127.0.0.1]\nupstream_connect_offload_threadpools: 2\n\
        upstream_connect_offload_thread_per_pool: 2\nmax_retries: 2\n\
        beta_origin_weight: 1\ngrace_period_secconds: 3\n";
    let proxy = Program::start("ctx", &[stable.addr, beta.addr], &[], conf).await;
    for _ in 0..2 {
        let answer = get(proxy.addr, "/", &[("beta-flag", "1")]).await;
        assert_eq!(answer.text(), "beta", "{}", proxy.stderr());
        assert_eq!(get(proxy.addr, "/", &[]).await.text(), "stable");
    }
    let log = proxy.stderr();
    assert!(
        log.contains("did you mean `grace_period_seconds`"),
        "no warning for the typo: {log}"
    );
    assert!(log.contains("beta_origin_weight"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_service_runs_every_service() {
    let a = origin(Named("A")).await;
    let proxy_port = support::free_port();
    let server = Program::start(
        "multi_service",
        &[a.addr],
        &[("COMPAT_LISTEN_2", format!("127.0.0.1:{proxy_port}"))],
        "",
    )
    .await;
    let proxy_addr = format!("127.0.0.1:{proxy_port}").parse().unwrap();
    server.wait_accepting(proxy_addr).await;

    let echo = send(server.addr, "POST", "/", &[], b"hello").await;
    assert_eq!(echo.text(), "hello");
    assert_eq!(get(proxy_addr, "/", &[]).await.text(), "A");

    // The background service (Pingora's `start(&self, shutdown)` shape) runs.
    let first: usize = get(server.addr, "/ticks", &[])
        .await
        .text()
        .parse()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let now: usize = get(server.addr, "/ticks", &[])
            .await
            .text()
            .parse()
            .unwrap();
        if now > first {
            break;
        }
        assert!(Instant::now() < deadline, "background service not ticking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
