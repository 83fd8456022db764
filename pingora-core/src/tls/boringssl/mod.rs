//! The BoringSSL backend, through the `boring` crate.
//!
//! Its code is shared with the OpenSSL backend and written once in
//! [`libssl`](super::libssl); [`binding`] holds what the `boring` crate
//! does differently. `boring` builds its own copy of BoringSSL (cmake and
//! clang needed), whose C symbols clash with the system OpenSSL's: the two
//! backends cannot be linked into one binary.

mod binding;
pub(crate) mod client;
pub(crate) mod server;

use binding::{add_chain_cert, cert_cell, handshake, private_key};

crate::tls::libssl::cert!(boring);
