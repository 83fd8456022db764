//! The server: runs services until told to stop.

/// Turns `true` when the server begins shutting down. Apps and background
/// services watch it to finish their work and return.
pub type ShutdownWatch = tokio::sync::watch::Receiver<bool>;
