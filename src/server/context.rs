//! What a handler gets besides its request body, and what it returns.

use crate::protocol::ProtocolError;
use crate::protocol::codec::encode_response;
use crate::shard::ShardError;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use thiserror::Error;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The client's address as Kafka reports it in group descriptions ("/127.0.0.1").
    pub client_host: String,
}

/// A complete, size-prefixed response as chunks for one vectored write.
#[derive(Debug, Default)]
pub struct ResponseFrame {
    pub chunks: Vec<Bytes>,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("request body does not match API {0:?}")]
    WrongBody(ApiKey),
}

impl RequestContext {
    /// Encodes `body` as this request's response.
    pub fn respond<T: Encodable + HeaderVersion>(
        &self,
        body: &T,
    ) -> Result<ResponseFrame, HandlerError> {
        let frame = encode_response(self.api, self.version, self.correlation_id, body)?;
        Ok(ResponseFrame {
            chunks: vec![frame],
        })
    }
}
