//! The server side of a TLS handshake on an SSL listener's connection, bounded in time
//! (`tls.handshake_timeout_ms`) and in number per shard (`tls.handshakes_inflight_max`),
//! and the principal of a client certificate (mTLS) put in the connection's security
//! context.
//!
//! May import: security, shard, config. Runs on: the shard that accepted the connection.
//! Invariant: any handshake failure (bad TLS input, a plaintext client, a refused
//! certificate, a timeout, shutdown) ends in a closed connection, never a panic.

use super::gather_stream::GatherStream;
use super::listeners::ShardTls;
use crate::security::SecurityContext;
use crate::security::tls::client_principal;
use crate::shard::Shard;
use crate::shard::metrics::RejectReason;
use futures::future::{Either, select};
use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use glommio::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("tls.handshakes_inflight_max handshakes already in progress on this shard")]
    Limit,
    #[error("not finished within tls.handshake_timeout_ms")]
    Timeout,
    #[error("broker is shutting down")]
    Shutdown,
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

impl HandshakeError {
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            HandshakeError::Limit => RejectReason::TlsHandshakeLimit,
            HandshakeError::Timeout => RejectReason::TlsHandshakeTimeout,
            HandshakeError::Shutdown | HandshakeError::Failed(_) => {
                RejectReason::TlsHandshakeFailed
            }
        }
    }
}

/// Counts a handshake in progress for as long as it lives.
struct InProgress(Rc<ShardTls>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0
            .handshakes
            .set(self.0.handshakes.get().saturating_sub(1));
    }
}

/// Runs the handshake with the TLS configuration current now; fills `security` with the
/// client certificate's principal when the client presented one (verified by rustls
/// against `tls.client_ca_file`).
pub async fn accept(
    shard: &Rc<Shard>,
    tls: &Rc<ShardTls>,
    stream: TcpStream,
    mut security: SecurityContext,
) -> Result<(TlsStream<GatherStream>, SecurityContext), HandshakeError> {
    if tls.handshakes.get() >= tls.config.handshakes_inflight_max {
        return Err(HandshakeError::Limit);
    }
    tls.handshakes.set(tls.handshakes.get() + 1);
    let _in_progress = InProgress(tls.clone());
    let timeout = Duration::from_millis(tls.config.handshake_timeout_ms);
    let handshake = TlsAcceptor::from(tls.server_config()).accept(GatherStream::new(stream));
    let deadline = select(
        Box::pin(glommio::timer::sleep(timeout)),
        shard.shutdown.clone(),
    );
    let stream = match select(handshake, deadline).await {
        Either::Left((Ok(stream), _)) => stream,
        Either::Left((Err(error), _)) => return Err(HandshakeError::Failed(error)),
        Either::Right((Either::Left(_), _)) => return Err(HandshakeError::Timeout),
        Either::Right((Either::Right(_), _)) => return Err(HandshakeError::Shutdown),
    };
    let (_, session) = stream.get_ref();
    if let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) {
        match client_principal(leaf) {
            Some((principal, subject)) => {
                tracing::debug!(%principal, %subject, "TLS client authenticated");
                security.principal = principal;
                security.tls_subject = Some(subject);
            }
            None => {
                // Verified by rustls, yet not parseable here: refuse rather than let a
                // certificate-holder in as ANONYMOUS.
                let error = std::io::Error::other("client certificate subject does not parse");
                return Err(HandshakeError::Failed(error));
            }
        }
    }
    Ok((stream, security))
}
