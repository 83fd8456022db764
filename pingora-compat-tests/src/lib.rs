//! Programs written the way Pingora's best-known examples are (load
//! balancer with a health check, gateway, response modification,
//! per-request context, a server with several services), built against
//! this project's `pingora` facade with one change: no `#[async_trait]`
//! on `impl ProxyHttp`. Each program is a binary of this crate
//! (`src/bin/`); `tests/programs.rs` runs them as processes against real
//! origins on loopback and checks what they do.
//!
//! Pingora's examples hard-code their listening address and upstreams;
//! these read them from the environment through [`listen_addr`] and
//! [`origins`] so that tests can use ephemeral ports, and fall back to
//! the example's own values.

/// Where a program listens: `COMPAT_LISTEN`, else `default`.
///
/// # Examples
///
/// ```
/// let addr = pingora_compat_tests::listen_addr("0.0.0.0:6188");
/// assert!(!addr.is_empty());
/// ```
pub fn listen_addr(default: &str) -> String {
    std::env::var("COMPAT_LISTEN").unwrap_or_else(|_| default.to_string())
}

/// The upstreams of a program: `COMPAT_ORIGINS` (`ip:port` items separated
/// by commas), else `defaults`.
///
/// # Examples
///
/// ```
/// let origins = pingora_compat_tests::origins(&["1.1.1.1:443"]);
/// assert!(!origins.is_empty());
/// ```
pub fn origins(defaults: &[&str]) -> Vec<String> {
    match std::env::var("COMPAT_ORIGINS") {
        Ok(list) => list.split(',').map(str::to_string).collect(),
        Err(_) => defaults.iter().map(|s| s.to_string()).collect(),
    }
}

/// The port of origin `index` of [`origins`], for programs that build
/// `(ip, port)` pairs as Pingora's gateway does; `default` when there is
/// no such origin.
///
/// # Examples
///
/// ```
/// assert_eq!(pingora_compat_tests::origin_port(9, 443), 443);
/// ```
pub fn origin_port(index: usize, default: u16) -> u16 {
    origins(&[])
        .get(index)
        .and_then(|o| o.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}
