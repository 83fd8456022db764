//! A trivial echo server: the smallest program that runs in the framework's
//! process model.
//!
//! ```text
//! cargo run --example server -- --help
//! cargo run --example server                      # listens on 127.0.0.1:6142
//! cargo run --example server -- -c server.yaml    # with a config file
//! nc 127.0.0.1 6142                               # type lines, get them back
//! ```
//!
//! Stop it with SIGTERM (graceful) or Ctrl-C (fast). To upgrade it without
//! refusing a connection, start a second copy with `-u` and send the first
//! one SIGQUIT; `docs/src/lifecycle.md` walks through every step.
//!
//! Features: none beyond the defaults.
//!
//! `LISTEN=addr` moves the listener.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::ServerApp;
use pingora::core::protocols::Stream;
use pingora::core::server::{Opt, Server, ShutdownWatch};
use pingora::core::services::listening::ListeningService;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes back whatever it reads, until the client closes or the server
/// shuts down.
struct EchoApp;

#[async_trait]
impl ServerApp for EchoApp {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut shutdown = shutdown.clone();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => n,
                },
                // A graceful shutdown closes idle connections at once.
                _ = shutdown.wait_for(|stop| *stop) => return None,
            };
            if stream.write_all(&buf[..n]).await.is_err() {
                return None;
            }
        }
    }
}

/// `var` from the environment, else `default`: the tests run every example
/// on free ports by setting these.
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

    let mut echo = ListeningService::new("echo", Arc::new(EchoApp));
    echo.add_tcp(&env_or("LISTEN", "127.0.0.1:6142"));
    server.add_service(echo);

    server.run_forever();
}
