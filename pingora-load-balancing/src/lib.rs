//! Load balancing for pingora-rs.
//!
//! This crate will own `LoadBalancer`, `Backend` and `Backends`, the
//! selection algorithms (round robin, random, hash, consistent hash with a
//! ketama ring, least connections), active health checks (TCP and HTTP),
//! service discovery (static and DNS) and the background service that keeps
//! them current.
//!
//! It is **not** a proxy: a proxy asks a load balancer which backend to use
//! and then connects through `pingora-core`.
//!
//! Status: the crate is reserved; its content arrives with the load-balancing
//! work.
