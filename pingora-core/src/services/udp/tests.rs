//! The UDP service over loopback sockets. Every wait is bounded.

use super::*;
use crate::server::ListenFds;
use crate::services::ReadyNotifier;
use std::time::Instant;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// Echoes every datagram (after `hold`, unless it says `fast`); drops
/// empty datagrams in its filter.
struct Echo {
    hold: Duration,
}

#[async_trait]
impl DatagramApp for Echo {
    fn filter_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        _from: SocketAddr,
        _reply: &DatagramReply,
    ) -> Option<Bytes> {
        (!datagram.is_empty()).then_some(datagram)
    }

    async fn process_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        from: SocketAddr,
        reply: &DatagramReply,
    ) {
        assert_eq!(from, reply.peer_addr());
        if datagram.as_ref() != b"fast" {
            tokio::time::sleep(self.hold).await;
        }
        let _ = reply.send(&datagram).await;
    }
}

/// A running service, stopped by `stop`.
struct Running {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    fds: ListenFds,
    task: tokio::task::JoinHandle<Result<()>>,
}

async fn start(addrs: &[&str], hold: Duration, options: UdpServiceOptions) -> Running {
    start_on(ListenFds::new(), addrs, hold, options).await
}

/// A running service that takes its sockets from `fds`, or binds them.
async fn start_on(
    fds: ListenFds,
    addrs: &[&str],
    hold: Duration,
    options: UdpServiceOptions,
) -> Running {
    let mut service = UdpService::new("udp-test", Arc::new(Echo { hold }));
    for addr in addrs {
        service.add_udp(addr);
    }
    service.set_options(options);
    let bound = service.bound_addrs();
    let (stop, stopped) = watch::channel(false);
    let (ready, mut ready_watch) = ReadyNotifier::new();
    let ctx = ServiceContext {
        fds: fds.clone(),
        shutdown: stopped.clone(),
        draining: stopped,
        ready,
        listener_tasks_per_fd: 1,
        spawner: Spawner::current(),
    };
    let task = tokio::spawn(async move { service.start_service(ctx).await });
    tokio::time::timeout(WAIT, ready_watch.wait())
        .await
        .unwrap();
    Running {
        addrs: bound.get().unwrap(),
        stop,
        fds,
        task,
    }
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// The next datagram on `socket` within `limit`, with its sender.
async fn recv(socket: &UdpSocket, limit: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (n, from) = tokio::time::timeout(limit, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some((buf[..n].to_vec(), from))
}

fn dropped(reason: &str) -> u64 {
    metrics::register();
    prometheus::default_registry()
        .gather()
        .iter()
        .filter(|family| family.get_name() == "pingora_udp_datagrams_dropped_total")
        .flat_map(|family| family.get_metric().to_vec())
        .filter(|m| m.get_label().iter().any(|l| l.get_value() == reason))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test]
async fn echoes_on_each_address_from_that_address() {
    // Two distinct addresses: sockets are keyed by address for upgrades.
    let running = start(
        &["127.0.0.1:0", "127.0.0.2:0"],
        Duration::ZERO,
        UdpServiceOptions::default(),
    )
    .await;
    assert_eq!(running.fds.len(), 2);
    let client = client().await;
    for addr in &running.addrs {
        // An empty datagram is dropped by the filter, unanswered...
        client.send_to(b"", addr).await.unwrap();
        client.send_to(b"hello", addr).await.unwrap();
        // ...so the first answer is the echo, from the address written to.
        let (answer, from) = recv(&client, WAIT).await.unwrap();
        assert_eq!(answer, b"hello");
        assert_eq!(from, *addr);
    }
    // The largest IPv4 datagram passes whole.
    let big: Vec<u8> = (0..65_507u32).map(|i| i as u8).collect();
    client.send_to(&big, running.addrs[0]).await.unwrap();
    let (answer, _) = recv(&client, WAIT).await.unwrap();
    assert_eq!(answer, big);
}

#[tokio::test]
async fn a_datagram_beyond_the_busy_handlers_is_dropped_and_counted() {
    let options = UdpServiceOptions {
        max_in_flight: 1,
        ..UdpServiceOptions::default()
    };
    let running = start(&["127.0.0.1:0"], Duration::from_millis(400), options).await;
    let before = dropped("busy");
    let client = client().await;
    client.send_to(b"slow", running.addrs[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send_to(b"fast", running.addrs[0]).await.unwrap();
    // Only the slow one is answered: the fast one found no free slot.
    let (answer, _) = recv(&client, WAIT).await.unwrap();
    assert_eq!(answer, b"slow");
    assert!(recv(&client, Duration::from_millis(300)).await.is_none());
    assert!(dropped("busy") > before);
    // With the slot free again, the next one is served.
    client.send_to(b"fast", running.addrs[0]).await.unwrap();
    assert_eq!(recv(&client, WAIT).await.unwrap().0, b"fast");
}

#[tokio::test]
async fn a_stuck_handler_is_cancelled_at_its_timeout() {
    let options = UdpServiceOptions {
        max_in_flight: 1,
        handler_timeout: Duration::from_millis(100),
        ..UdpServiceOptions::default()
    };
    let running = start(&["127.0.0.1:0"], Duration::from_secs(3600), options).await;
    let before = dropped("timeout");
    let client = client().await;
    client.send_to(b"stuck", running.addrs[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The stuck handler gave its slot back.
    client.send_to(b"fast", running.addrs[0]).await.unwrap();
    assert_eq!(recv(&client, WAIT).await.unwrap().0, b"fast");
    assert!(dropped("timeout") > before);
}

#[tokio::test]
async fn shutdown_finishes_handlers_in_flight_then_closes() {
    let running = start(
        &["127.0.0.1:0"],
        Duration::from_millis(300),
        UdpServiceOptions::default(),
    )
    .await;
    let addr = running.addrs[0];
    let client = client().await;
    client.send_to(b"in flight", addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    running.stop.send_replace(true);
    // The handler in flight still answers...
    assert_eq!(recv(&client, WAIT).await.unwrap().0, b"in flight");
    // ...then the service returns, its socket forgotten and closed.
    let done = tokio::time::timeout(WAIT, running.task).await.unwrap();
    done.unwrap().unwrap();
    assert!(started.elapsed() < WAIT);
    assert!(running.fds.is_empty());
    client.send_to(b"fast", addr).await.unwrap();
    assert!(recv(&client, Duration::from_millis(200)).await.is_none());
}

/// A graceful upgrade: the new process finds the socket under
/// `udp://ADDR` among those the old one sent it, and goes on receiving on
/// it once the old one has stopped.
#[tokio::test]
async fn a_new_process_takes_the_socket_over() {
    let old_fds = ListenFds::new();
    let no_wait = UdpServiceOptions::default;
    let old = start_on(old_fds.clone(), &["127.0.0.1:0"], Duration::ZERO, no_wait()).await;
    let sent = ListenFds::from_received(old_fds.dup_all().unwrap());
    let new = start_on(sent, &["127.0.0.1:0"], Duration::ZERO, no_wait()).await;
    assert_eq!(new.addrs, old.addrs);
    old.stop.send_replace(true);
    tokio::time::timeout(WAIT, old.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(old_fds.is_empty());
    let client = client().await;
    client.send_to(b"after", new.addrs[0]).await.unwrap();
    assert_eq!(recv(&client, WAIT).await.unwrap().0, b"after");
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut service = UdpService::new(
        "busy",
        Arc::new(Echo {
            hold: Duration::ZERO,
        }),
    );
    service.add_udp(&addr);
    let (_stop, stopped) = watch::channel(false);
    let (ctx, _ready) = ServiceContext::standalone(stopped);
    let err = service.start_service(ctx).await.unwrap_err();
    assert!(err.to_string().contains(&addr), "{err}");
}
