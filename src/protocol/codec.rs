//! Request decoding and response encoding on top of the `kafka-protocol` message codecs.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use thiserror::Error;

/// Bytes every request starts with: api_key i16, api_version i16, correlation_id i32.
pub const ENVELOPE_BYTES: usize = 8;

#[derive(Debug, Error)]
pub enum ProtocolError {
    #[error("request of {size} bytes is shorter than a request header")]
    ShortRequest { size: usize },
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16 },
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode response for {api:?} v{version}: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The fixed first fields of a request, readable even when the rest cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEnvelope {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestEnvelope {
    pub fn peek(frame: &[u8]) -> Result<RequestEnvelope, ProtocolError> {
        if frame.len() < ENVELOPE_BYTES {
            return Err(ProtocolError::ShortRequest { size: frame.len() });
        }
        Ok(RequestEnvelope {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        })
    }
}

/// A fully decoded request.
#[derive(Debug)]
pub struct DecodedRequest {
    pub api: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Decodes header and body of a request frame (without its size prefix). The caller has
/// already checked that the API key and version are ones it supports.
pub fn decode_request(api: ApiKey, frame: Bytes) -> Result<DecodedRequest, ProtocolError> {
    let version = RequestEnvelope::peek(&frame)?.api_version;
    let mut buffer = frame;
    let malformed = |reason: String| ProtocolError::Malformed {
        api,
        version,
        reason,
    };
    let header_version = api.request_header_version(version);
    let header = RequestHeader::decode(&mut buffer, header_version)
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body = RequestKind::decode(api, &mut buffer, version)
        .map_err(|e| malformed(format!("body: {e}")))?;
    Ok(DecodedRequest { api, header, body })
}

/// Encodes a size-prefixed response frame: size, response header, body.
pub fn encode_response<T: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, ProtocolError> {
    let fail = |reason: String| ProtocolError::Encode {
        api,
        version,
        reason,
    };
    let header_version = T::header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let body_size = body
        .compute_size(version)
        .map_err(|e| fail(e.to_string()))?;
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| fail(e.to_string()))?;
    let mut buffer = BytesMut::with_capacity(4 + header_size + body_size);
    buffer.put_i32((header_size + body_size) as i32);
    header
        .encode(&mut buffer, header_version)
        .map_err(|e| fail(e.to_string()))?;
    body.encode(&mut buffer, version)
        .map_err(|e| fail(e.to_string()))?;
    debug_assert_eq!(buffer.len(), 4 + header_size + body_size);
    Ok(buffer.freeze())
}

/// Writes a response header (no size prefix) for `api` at `version`.
pub fn encode_response_header(
    buffer: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<(), ProtocolError> {
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(buffer, api.response_header_version(version))
        .map_err(|e| ProtocolError::Encode {
            api,
            version,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    use kafka_protocol::protocol::{StrBytes, encode_request_header_into_buffer};

    #[test]
    fn round_trips_an_api_versions_request() {
        let mut buffer = BytesMut::new();
        let mut header = RequestHeader::default();
        header.request_api_key = ApiKey::ApiVersions as i16;
        header.request_api_version = 3;
        header.correlation_id = 77;
        header.client_id = Some(StrBytes::from_static_str("test"));
        encode_request_header_into_buffer(&mut buffer, &header).unwrap();
        let mut body = ApiVersionsRequest::default();
        body.client_software_name = StrBytes::from_static_str("x");
        body.encode(&mut buffer, 3).unwrap();
        let frame = buffer.freeze();
        let envelope = RequestEnvelope::peek(&frame).unwrap();
        assert_eq!(envelope.correlation_id, 77);
        let decoded = decode_request(ApiKey::ApiVersions, frame).unwrap();
        assert_eq!(decoded.header.correlation_id, 77);
        assert!(matches!(decoded.body, RequestKind::ApiVersions(_)));
    }

    #[test]
    fn garbage_body_is_an_error_not_a_panic() {
        let mut frame = vec![0u8, 18, 0, 3, 0, 0, 0, 1];
        frame.extend_from_slice(&[0xff; 5]);
        assert!(decode_request(ApiKey::ApiVersions, Bytes::from(frame)).is_err());
    }

    #[test]
    fn api_versions_response_header_is_v0() {
        let body = ApiVersionsResponse::default();
        let frame = encode_response(ApiKey::ApiVersions, 3, 5, &body).unwrap();
        let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(size + 4, frame.len());
        assert_eq!(&frame[4..8], &5i32.to_be_bytes());
    }
}
