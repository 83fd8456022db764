//! The OpenSSL client side.

crate::tls::libssl::client!(openssl, "OpenSSL");
