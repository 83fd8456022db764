//! One attempt: send the request upstream, stream the response back.
//!
//! The request body and the response head are read together, so an
//! upstream that answers early (say 413 before the whole upload) is heard
//! at once. Each piece of body is written before the next is read, in both
//! directions: a slow reader on one side slows the writer on the other,
//! and memory stays at one piece per direction whatever the body size.

use super::HttpProxy;
use super::body::SentBody;
use super::revalidate::Upstream;
use crate::{ProxyHttp, Session, hop};
use bytes::Bytes;
use http::StatusCode;
use pingora_core::header::ResponseHeader;
use pingora_core::protocols::http::{ClientSession, ServerSession};
use pingora_core::upstreams::{HttpPeer, Peer};
use pingora_error::{BError, Error, ErrorType, Result};

/// Most interim (1xx) responses passed on per attempt, so an upstream
/// cannot keep the exchange going with them forever.
const MAX_INTERIM: usize = 16;

/// How long a response head waits for the first piece of body, so both
/// leave in one write. An origin often writes the head and the body
/// separately (nginx sends a file's body with `sendfile` after the head),
/// and the proxy may wake between the two: sending the head at once would
/// cost a segment, a wakeup of the client and an ACK more per response.
/// An upstream slower than this gets its head forwarded alone.
const HEAD_HOLD: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether the request body must be re-chunked for an HTTP/1 upstream: it
/// came chunked, or it is an HTTP/2 stream body with no `Content-Length`
/// (HTTP/2 frames bodies itself, RFC 9113 §8.1).
fn needs_chunking(session: &Session) -> bool {
    let req = session.req_header();
    if req.has_header("transfer-encoding") {
        return true;
    }
    let h2 = matches!(session.downstream_session(), ServerSession::H2(_));
    h2 && !req.has_header("content-length") && !session.is_forwarded_body_done()
}

/// Why an attempt failed, and whether it failed before any response byte
/// arrived (only then may it be retried).
pub(super) struct Failure {
    pub(super) e: BError,
    pub(super) before_response: bool,
}

fn before(e: BError) -> Failure {
    Failure {
        e,
        before_response: true,
    }
}

fn after(e: BError) -> Failure {
    Failure {
        e,
        before_response: false,
    }
}

/// How an attempt that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempted {
    /// The client was answered.
    Done,
    /// The upstream's answer was for the cache only (a 304 that did not
    /// match the stored response): send the request again.
    Again,
}

/// The head the client session just read, owned.
fn taken_head(client: &mut ClientSession) -> Result<ResponseHeader, Failure> {
    client.take_response_header().ok_or_else(|| {
        let e = Error::explain(ErrorType::InternalError, "response head already taken");
        before(e.into_up())
    })
}

impl<SV: ProxyHttp> HttpProxy<SV> {
    pub(super) async fn attempt(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        peer: &HttpPeer,
        client: &mut ClientSession,
        reused: bool,
        body: &mut SentBody,
    ) -> Result<Attempted, Failure> {
        let digest = client.digest();
        self.inner
            .connected_to_upstream(session, reused, peer, digest, ctx)
            .await
            .map_err(before)?;
        self.send_request_header(session, ctx, peer, client, body)
            .await?;
        for piece in body.pieces() {
            client.write_body(piece).await.map_err(before)?;
        }
        if body.is_done() {
            client
                .finish_body(session.request_trailers())
                .await
                .map_err(before)?;
        }
        let mut interim = 0;
        let resp = match self
            .send_body(session, ctx, client, body, &mut interim)
            .await?
        {
            Some(resp) => resp,
            None => self.read_final_head(session, client, &mut interim).await?,
        };
        session.upstream_head_arrived();
        self.forward_response(session, ctx, client, body, resp)
            .await
            .map_err(after)
    }

    async fn send_request_header(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        peer: &HttpPeer,
        client: &mut ClientSession,
        body: &mut SentBody,
    ) -> Result<(), Failure> {
        let mut req = session.req_header().clone();
        let h2 = client.is_h2();
        let chunked = !h2 && needs_chunking(session);
        let upgrade = if h2 {
            None
        } else {
            self.upgrades.offer(session)
        };
        let te_trailers = req
            .get_header("te")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        hop::upstream_request(&mut req, chunked, upgrade).map_err(before)?;
        if h2 && te_trailers {
            // `TE` is hop-by-hop, but HTTP/2 allows it with the value
            // `trailers` (RFC 9113 §8.2.2), and gRPC servers require it.
            req.insert_header("TE", "trailers").map_err(before)?;
        }
        if !req.has_header("host") {
            // HTTP/1.1 requires Host (RFC 9112 §3.2), HTTP/2 an authority
            // (RFC 9113 §8.3.1); an HTTP/1.0 client may have sent none.
            // Name the peer.
            let host = match (peer.sni(), peer.address().as_inet()) {
                ("", Some(addr)) => addr.to_string(),
                ("", None) => "localhost".to_owned(),
                (sni, _) => sni.to_owned(),
            };
            req.insert_header("Host", host).map_err(before)?;
        }
        super::revalidate::upstream_request(session, &mut req).map_err(before)?;
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await
            .map_err(before)?;
        // Over HTTP/2 a request known to be bodyless ends with its head,
        // saving an empty DATA frame.
        let end = h2 && body.pieces().is_empty() && session.is_forwarded_body_done();
        let idempotent = req.method().is_idempotent();
        // A head whose write failed did not reach the upstream whole (an
        // HTTP/2 head fails before it is queued), so it cannot have been
        // processed.
        client
            .write_request_header(req, end)
            .await
            .map_err(before)?;
        body.set_head_sent(idempotent);
        Ok(())
    }

    /// Stream the request body upstream until it ends or the upstream
    /// answers first; the final response head when it did.
    async fn send_body(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        client: &mut ClientSession,
        body: &mut SentBody,
        interim: &mut usize,
    ) -> Result<Option<ResponseHeader>, Failure> {
        while !body.is_done() {
            if session.is_forwarded_body_done() {
                // Nothing left to read: end the upload now rather than
                // race its end against the response head. A head that won
                // would leave the exchange looking duplex, and its
                // response would go out without END_STREAM on its head.
                self.send_piece(session, ctx, client, body, None).await?;
                break;
            }
            // Both reads are cancel safe: bytes stay in their buffers.
            tokio::select! {
                head = client.read_response_header() => {
                    head.map_err(before)?;
                    let head = taken_head(client)?;
                    if let Some(resp) = self.on_head(session, head, interim).await? {
                        return Ok(Some(resp));
                    }
                }
                piece = session.read_body_to_forward() => {
                    let piece = piece.map_err(before)?;
                    self.send_piece(session, ctx, client, body, piece).await?;
                }
            }
        }
        Ok(None)
    }

    /// Filter one piece of request body (`None`: the end) and send it.
    async fn send_piece(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        client: &mut ClientSession,
        body: &mut SentBody,
        piece: Option<Bytes>,
    ) -> Result<(), Failure> {
        let end = piece.is_none() || session.is_forwarded_body_done();
        let mut piece = piece;
        self.inner
            .request_body_filter(session, &mut piece, end, ctx)
            .await
            .map_err(before)?;
        if let Some(piece) = piece.filter(|p| !p.is_empty()) {
            client.write_body(&piece).await.map_err(before)?;
            body.record(&piece);
        }
        if end {
            body.set_done();
            client
                .finish_body(session.request_trailers())
                .await
                .map_err(before)?;
        }
        Ok(())
    }

    /// A response head arrived: pass interim ones on (except `100`, which
    /// the downstream session sends itself) and return the final one.
    async fn on_head(
        &self,
        session: &mut Session,
        head: ResponseHeader,
        interim: &mut usize,
    ) -> Result<Option<ResponseHeader>, Failure> {
        let status = head.status();
        if !status.is_informational() || status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Some(head));
        }
        *interim += 1;
        if *interim > MAX_INTERIM {
            let e = Error::explain(ErrorType::H1Error, "too many interim responses");
            return Err(after(e.into_up()));
        }
        if status != StatusCode::CONTINUE {
            let mut head = head;
            hop::downstream_response(&mut head).map_err(after)?;
            session.write_head(head, false).await.map_err(after)?;
        }
        Ok(None)
    }

    async fn read_final_head(
        &self,
        session: &mut Session,
        client: &mut ClientSession,
        interim: &mut usize,
    ) -> Result<ResponseHeader, Failure> {
        // `on_head` bounds how many interim heads are accepted.
        loop {
            client.read_response_header().await.map_err(before)?;
            let head = taken_head(client)?;
            if let Some(resp) = self.on_head(session, head, interim).await? {
                return Ok(resp);
            }
        }
    }

    /// Filter the response head, send it, then the body or the tunnel.
    async fn forward_response(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        client: &mut ClientSession,
        body: &mut SentBody,
        mut resp: ResponseHeader,
    ) -> Result<Attempted> {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            self.upgrades.check_switch(session, &resp)?;
        }
        hop::downstream_response(&mut resp)?;
        let bodyless = client.is_body_done() && !client.has_body_bytes();
        session.run_upstream_response_header_modules(&mut resp, bodyless)?;
        self.inner
            .upstream_response_filter(session, &mut resp, ctx)?;
        let may_refetch = body.may_refetch();
        match self
            .cache_response(session, ctx, &resp, may_refetch)
            .await?
        {
            Upstream::Forward => {}
            Upstream::FromCache => return Ok(Attempted::Done),
            Upstream::Refetch => return Ok(Attempted::Again),
        }
        self.inner.response_filter(session, &mut resp, ctx).await?;
        if let Err(e) = session.write_head(resp, bodyless).await {
            return Err(self.fill_without_client(session, ctx, client, e).await);
        }
        if client.is_upgraded() {
            session.flush().await?;
            super::tunnel::run(session, client).await?;
            return Ok(Attempted::Done);
        }
        // The downstream holds the head back for the first piece of body.
        // When none is at hand, wait for it a little (not while request
        // body still flows to an HTTP/2 upstream: it may be waiting for
        // that); a slow upstream must not keep the head from the client.
        let duplex = client.is_h2() && !body.is_done();
        let mut first = None;
        if !client.has_body_bytes() && !client.is_body_done() {
            let piece = if duplex {
                None
            } else {
                let read = client.read_body_bytes();
                pingora_timeout::fast::timeout(HEAD_HOLD, read).await.ok()
            };
            match piece {
                Some(piece) => first = Some(piece?),
                None => {
                    if let Err(e) = session.flush().await {
                        return Err(self.fill_without_client(session, ctx, client, e).await);
                    }
                }
            }
        }
        self.forward_body(session, ctx, client, body, first).await?;
        Ok(Attempted::Done)
    }

    async fn forward_body(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        client: &mut ClientSession,
        body: &mut SentBody,
        mut first: Option<Option<Bytes>>,
    ) -> Result<()> {
        // HTTP/2 carries each direction on its own (RFC 9113 §8.1): a
        // server may answer before the request ends and go on reading it,
        // as gRPC bidirectional calls do, so the request body keeps
        // flowing. An HTTP/1 upstream that answered early gets no more.
        let mut duplex = client.is_h2() && !body.is_done();
        loop {
            let piece = if let Some(piece) = first.take() {
                piece
            } else if duplex {
                // Both reads are cancel safe: bytes stay in their buffers.
                tokio::select! {
                    piece = client.read_body_bytes() => piece?,
                    up = session.read_body_to_forward() => {
                        let sent = self.send_piece(session, ctx, client, body, up?).await;
                        sent.map_err(|failure| failure.e)?;
                        duplex = !body.is_done();
                        continue;
                    }
                }
            } else {
                client.read_body_bytes().await?
            };
            let end = piece.is_none() || client.is_body_done();
            let mut piece = piece;
            session.run_upstream_response_body_modules(&mut piece, end)?;
            self.inner
                .upstream_response_body_filter(session, &mut piece, end, ctx)?;
            super::cache::fill_body(session, piece.as_ref(), end).await;
            let throttle = self
                .inner
                .response_body_filter(session, &mut piece, end, ctx)?;
            if let Err(e) = session.write_body(piece, end).await {
                return Err(self.fill_without_client(session, ctx, client, e).await);
            }
            if end {
                break;
            }
            if let Some(pause) = throttle {
                // Not reading the upstream meanwhile: backpressure slows
                // it down, nothing piles up here.
                pingora_timeout::sleep(pause).await;
            }
        }
        match client.trailers() {
            Some(trailers) => {
                let mut trailers = trailers.clone();
                self.inner
                    .upstream_response_trailer_filter(session, &mut trailers, ctx)?;
                let last = self
                    .inner
                    .response_trailer_filter(session, &mut trailers, ctx)
                    .await?;
                if let Some(bytes) = last {
                    session.write_raw(&bytes).await?;
                }
                session.finish_response(Some(&trailers)).await
            }
            None => session.finish_response(None).await,
        }
    }
}
