//! The OpenSSL backend, through the `openssl` crate.
//!
//! Its code is shared with the BoringSSL backend and written once in
//! [`libssl`](super::libssl); [`binding`] holds what the `openssl` crate
//! does differently.

mod binding;
pub(crate) mod client;
pub(crate) mod server;

use binding::{add_chain_cert, cert_cell, handshake, private_key};

crate::tls::libssl::cert!(openssl);
