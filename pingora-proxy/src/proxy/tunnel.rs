//! After `101 Switching Protocols`: raw bytes both ways until either side
//! closes.

use crate::Session;
use pingora_core::protocols::http::ClientSession;
use pingora_error::Result;

/// Carry bytes between the client and the upstream until one side ends
/// its stream. Each read is bounded by that side's body read timeout, so
/// a tunnel idle for longer is closed.
pub(super) async fn run(session: &mut Session, client: &mut ClientSession) -> Result<()> {
    loop {
        // Both reads are cancel safe; one piece is in flight at a time, so
        // memory stays bounded and each side is slowed by the other.
        tokio::select! {
            down = session.read_body_to_forward() => match down? {
                Some(data) => client.write_body(&data).await?,
                None => break,
            },
            up = client.read_body_bytes() => match up? {
                Some(data) => session.write_response_body(&data).await?,
                None => break,
            },
        }
    }
    session.finish_response(None).await
}
