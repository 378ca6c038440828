//! The Kafka wire protocol, sans I/O: framing, request headers, request decoding, response
//! encoding and error codes. Bytes in, types out.
//!
//! Owns: the byte layout of frames and messages. May import: `crate::model`, kafka-protocol.
//! Never touches sockets, files or executors. Decoding never panics on input: every length
//! is checked against the bytes actually present (see `frame`, and `crate::huge_alloc` for
//! the one library decoder that sizes a `Vec` from a wire count).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod fetch_response;
pub mod frame;
pub mod kafka_releases;
pub mod produce_request;

pub use crate::model::ErrorCode;
pub use codec::{DecodedRequest, ProtocolError, RequestEnvelope};
