//! What a handler gets besides its request body, and what it returns.

use super::sasl_session::SaslSession;
use crate::protocol::ProtocolError;
use crate::protocol::codec::encode_response;
use crate::security::SecurityContext;
use crate::shard::ShardError;
use crate::shard::memory::{MemoryBudget, Reservation};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;
use thiserror::Error;

/// What one connection's reader, writer and handlers share.
#[derive(Debug)]
pub struct ConnectionState {
    /// Response bytes this connection holds unwritten (`connection_response_bytes_max`).
    pub response_memory: Rc<MemoryBudget>,
    /// Requests dispatched whose responses are not yet written (or dropped, acks=0).
    pub in_flight: Cell<usize>,
    /// When bytes last arrived or a response was last written.
    pub last_activity: Cell<Instant>,
    /// Set by the writer when it closes the connection, as the metrics label.
    pub closed_by: Cell<Option<&'static str>>,
    /// The listener, protocol and principal of the connection (SaslAuthenticate sets the
    /// principal after a login; never borrowed across an `.await`).
    pub security: RefCell<SecurityContext>,
    /// The SASL login state (never borrowed across an `.await`).
    pub sasl: RefCell<SaslSession>,
}

impl ConnectionState {
    pub fn new(
        response_bytes_max: u64,
        security: SecurityContext,
        sasl: SaslSession,
    ) -> Rc<ConnectionState> {
        Rc::new(ConnectionState {
            response_memory: MemoryBudget::new(response_bytes_max),
            in_flight: Cell::new(0),
            last_activity: Cell::new(Instant::now()),
            closed_by: Cell::new(None),
            security: RefCell::new(security),
            sasl: RefCell::new(sasl),
        })
    }

    /// The name of the listener the client connected to.
    pub fn listener_name(&self) -> String {
        self.security.borrow().listener.clone()
    }

    pub fn touch(&self) {
        self.last_activity.set(Instant::now());
    }
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The client's address as Kafka reports it in group descriptions ("/127.0.0.1").
    pub client_host: String,
    pub connection: Rc<ConnectionState>,
}

/// A complete, size-prefixed response as chunks for one vectored write, with the memory
/// reserved for it (released once it is written).
#[derive(Debug, Default)]
pub struct ResponseFrame {
    pub chunks: Vec<Bytes>,
    pub memory: Vec<Reservation>,
    /// Bytes of this response the handler already holds from the connection's response
    /// budget (in `memory`); the writer counts only the rest.
    pub connection_bytes: u64,
}

impl ResponseFrame {
    pub fn of(frame: Bytes) -> ResponseFrame {
        ResponseFrame {
            chunks: vec![frame],
            memory: Vec::new(),
            connection_bytes: 0,
        }
    }
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
        Ok(ResponseFrame::of(frame))
    }
}
