//! Building both TLS sides for a given backend.

use std::path::Path;

use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::tls::{CertStore, TlsBackend, TlsSettings};
use pingora_core::upstreams::HttpPeer;

use super::certs::Ca;
use super::origin::Origin;

/// A connector on `backend` with the system trust store.
pub(crate) fn connector(backend: TlsBackend) -> TransportConnector {
    connector_with(backend, ConnectorOptions::default())
}

/// A connector on `backend` with `options`.
pub(crate) fn connector_with(
    backend: TlsBackend,
    mut options: ConnectorOptions,
) -> TransportConnector {
    options.tls_backend = Some(backend);
    TransportConnector::new(options).unwrap()
}

/// Server settings on `backend` presenting `certs`.
pub(crate) fn settings(backend: TlsBackend, certs: CertStore) -> TlsSettings {
    let mut settings = TlsSettings::new(certs);
    settings.set_backend(backend);
    settings
}

/// Server settings on `backend` presenting the certificate in these files.
pub(crate) fn settings_from_files(
    backend: TlsBackend,
    cert: &Path,
    key: &Path,
) -> pingora_core::Result<TlsSettings> {
    let mut settings = TlsSettings::with_cert_files(cert, key)?;
    settings.set_backend(backend);
    Ok(settings)
}

/// A TLS peer for `origin` sending `sni` and trusting only `ca`.
pub(crate) fn peer(origin: &Origin, ca: &Ca, sni: &str) -> HttpPeer {
    let mut peer = HttpPeer::new(origin.addr, true, sni);
    peer.options.ca = Some(ca.roots());
    peer
}
