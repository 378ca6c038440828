//! One Kafka-protocol connection from this broker to another broker (the replica fetcher's
//! calls to a partition leader, the transaction coordinator's WriteTxnMarkers to a
//! partition leader): connect, then request/response calls in order, each with a deadline
//! and a bound on the answer's size.
//!
//! Owns: the socket, correlation ids, framing of one call; where a peer listens
//! (`Shard::broker_address`, from the cluster view). May import: kafka-protocol, glommio's
//! TCP stream, `crate::quorum::view`. Runs on: the shard that opened it (not `Send`).
//! Invariants: one call at a time (`&mut self`); an answer whose length prefix is over the
//! caller's `max_bytes` closes the call before anything is allocated for it; an answer with
//! another correlation id is an error (the caller drops the connection); every step has a
//! deadline.

use super::Shard;
use crate::cluster::NodeId;
use crate::quorum::frame::BrokerEndpoint;
use bytes::{Bytes, BytesMut};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("connection to the peer: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot encode or decode: {0}")]
    Codec(String),
    #[error("response of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("response for correlation id {got}, expected {expected}")]
    Correlation { got: i32, expected: i32 },
    #[error("no live broker {0} in the cluster view")]
    UnknownBroker(NodeId),
}

/// Runs `work` with a deadline: `PeerError::Timeout` if it is not done within `timeout`.
pub(crate) async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, PeerError>>,
) -> Result<T, PeerError> {
    let sleep = Box::pin(glommio::timer::sleep(timeout));
    match futures::future::select(Box::pin(work), sleep).await {
        futures::future::Either::Left((outcome, _)) => outcome,
        futures::future::Either::Right(_) => Err(PeerError::Timeout(timeout)),
    }
}

/// One Kafka-protocol connection to a peer broker.
pub(crate) struct PeerConnection {
    stream: TcpStream,
    address: String,
    next_correlation_id: i32,
    client_id: StrBytes,
}

impl PeerConnection {
    /// Connects to `address` (host:port) within `timeout`; `client_id` goes in every
    /// request header (the peer's logs and metrics name it).
    pub(crate) async fn connect(
        address: &str,
        client_id: String,
        timeout: Duration,
    ) -> Result<Self, PeerError> {
        let stream = within(timeout, async {
            Ok(TcpStream::connect(address)
                .await
                .map_err(std::io::Error::from)?)
        })
        .await?;
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream,
            address: address.to_string(),
            next_correlation_id: 1,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// The host:port this connection went to.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Sends `request` as `api` at `version` and reads its answer (at most `max_bytes`),
    /// all within `timeout`.
    pub(crate) async fn call<Request, Response>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Request,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Response, PeerError>
    where
        Request: Encodable + HeaderVersion,
        Response: Decodable + HeaderVersion,
    {
        let codec = |error: anyhow::Error| PeerError::Codec(error.to_string());
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, Request::header_version(version))
            .map_err(codec)?;
        request.encode(&mut frame, version).map_err(codec)?;
        let length = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        let stream = &mut self.stream;
        let body = within(timeout, async move {
            stream.write_all(&frame).await?;
            let mut length = [0u8; 4];
            stream.read_exact(&mut length).await?;
            let length = u32::from_be_bytes(length) as usize;
            if length > max_bytes {
                return Err(PeerError::TooLarge(length));
            }
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).await?;
            Ok(Bytes::from(body))
        })
        .await?;
        let mut body = body;
        let header =
            ResponseHeader::decode(&mut body, Response::header_version(version)).map_err(codec)?;
        if header.correlation_id != correlation_id {
            return Err(PeerError::Correlation {
                got: header.correlation_id,
                expected: correlation_id,
            });
        }
        Response::decode(&mut body, version).map_err(codec)
    }
}

/// The host:port `node` listens on for Kafka clients, if it is a live broker in `brokers`.
fn address_of(brokers: &[BrokerEndpoint], node: NodeId) -> Option<String> {
    brokers
        .iter()
        .find(|broker| broker.node_id == node)
        .map(|broker| format!("{}:{}", broker.host, broker.port))
}

/// A shard's connections to other brokers for the coordinators' calls (WriteTxnMarkers,
/// AddPartitionsToTxn verification): at most `cluster.peer_connections_max` open at once per
/// broker (a call beyond that waits for a permit), the idle ones kept for the next call.
#[derive(Default)]
pub(crate) struct PeerPool {
    idle: RefCell<HashMap<NodeId, Vec<PeerConnection>>>,
    permits: RefCell<HashMap<NodeId, Rc<Semaphore>>>,
}

impl Shard {
    /// Cluster mode: where live broker `node` listens (this shard's cluster view); `None`
    /// for a broker that is fenced or unknown, and in single-broker mode.
    pub(crate) fn broker_address(&self, node: NodeId) -> Option<String> {
        let view = crate::quorum::view::shard_view()?;
        address_of(&view.brokers, node)
    }

    /// One call to broker `node` on this shard's idle connection to it, or a new one
    /// (connected within `cluster.controller_connect_timeout_ms`). The connection goes back
    /// to the pool only after a call that succeeded.
    pub(crate) async fn call_peer<Request, Response>(
        &self,
        node: NodeId,
        api: ApiKey,
        version: i16,
        request: &Request,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Response, PeerError>
    where
        Request: Encodable + HeaderVersion,
        Response: Decodable + HeaderVersion,
    {
        let address = self
            .broker_address(node)
            .ok_or(PeerError::UnknownBroker(node))?;
        let permits = self
            .peer_pool
            .permits
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| {
                let max = self.config.cluster.peer_connections_max.max(1);
                Rc::new(Semaphore::new(u64::from(max)))
            })
            .clone();
        let _permit = within(timeout, async {
            permits
                .acquire_permit(1)
                .await
                .map_err(|error| PeerError::Io(std::io::Error::other(error.to_string())))
        })
        .await?;
        let pooled = self
            .peer_pool
            .idle
            .borrow_mut()
            .get_mut(&node)
            .and_then(Vec::pop);
        let mut connection = match pooled {
            Some(connection) if connection.address() == address => connection,
            _ => {
                let client_id = format!("shardlog-broker-{}", self.config.server.node_id);
                let connect =
                    Duration::from_millis(self.config.cluster.controller_connect_timeout_ms);
                PeerConnection::connect(&address, client_id, connect).await?
            }
        };
        let response = connection
            .call(api, version, request, timeout, max_bytes)
            .await?;
        self.peer_pool
            .idle
            .borrow_mut()
            .entry(node)
            .or_default()
            .push(connection);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_a_live_broker_only() {
        let brokers = vec![
            BrokerEndpoint {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
                listeners: Vec::new(),
            },
            BrokerEndpoint {
                node_id: 3,
                host: "b3".into(),
                port: 19092,
                rack: Some("r".into()),
                listeners: Vec::new(),
            },
        ];
        assert_eq!(address_of(&brokers, 1).as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(address_of(&brokers, 3).as_deref(), Some("b3:19092"));
        assert_eq!(address_of(&brokers, 2), None);
    }
}
