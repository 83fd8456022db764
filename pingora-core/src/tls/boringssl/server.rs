//! The BoringSSL server side.

crate::tls::libssl::server!(boring, "BoringSSL");
