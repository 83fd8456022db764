//! The OpenSSL server side.

crate::tls::libssl::server!(openssl, "OpenSSL");
