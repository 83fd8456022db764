//! The BoringSSL client side.

crate::tls::libssl::client!(boring, "BoringSSL");
