//! Request decoding and response encoding on top of the `kafka-protocol` message codecs.

use super::produce_request::{ProduceRequestOwned, decode_produce_body};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion};
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
    pub envelope: RequestEnvelope,
    /// The header's client id, decoded lossily as Kafka does (invalid UTF-8 becomes U+FFFD).
    pub client_id: Option<String>,
    pub body: RequestKind,
}

/// Decodes header and body of a request frame (without its size prefix). The caller has
/// already checked that the API key and version are ones it supports.
pub fn decode_request(api: ApiKey, frame: Bytes) -> Result<DecodedRequest, ProtocolError> {
    let envelope = RequestEnvelope::peek(&frame)?;
    let version = envelope.api_version;
    let malformed = |reason: String| ProtocolError::Malformed {
        api,
        version,
        reason,
    };
    let mut buffer = frame;
    let header_version = api.request_header_version(version);
    let client_id = decode_header(&mut buffer, header_version)
        .map_err(|reason| malformed(format!("header: {reason}")))?;
    let body = RequestKind::decode(api, &mut buffer, version)
        .map_err(|e| malformed(format!("body: {e}")))?;
    Ok(DecodedRequest {
        api,
        envelope,
        client_id,
        body,
    })
}

/// A Produce request decoded with each partition's records owned (`produce_request`).
#[derive(Debug)]
pub struct DecodedProduce {
    pub envelope: RequestEnvelope,
    /// As in `DecodedRequest`.
    pub client_id: Option<String>,
    pub body: ProduceRequestOwned,
}

/// Decodes a Produce frame (without its size prefix) so that each partition's records stay
/// a region of `frame` that nothing else shares: storage stamps them in place. The caller
/// has already checked that the version is one it supports.
pub fn decode_produce_request(mut frame: BytesMut) -> Result<DecodedProduce, ProtocolError> {
    let envelope = RequestEnvelope::peek(&frame)?;
    let (api, version) = (ApiKey::Produce, envelope.api_version);
    let malformed = |reason: String| ProtocolError::Malformed {
        api,
        version,
        reason,
    };
    let client_id = decode_header(&mut frame, api.request_header_version(version))
        .map_err(|reason| malformed(format!("header: {reason}")))?;
    let body = decode_produce_body(frame, version)
        .map_err(|reason| malformed(format!("body: {reason}")))?;
    Ok(DecodedProduce {
        envelope,
        client_id,
        body,
    })
}

/// Reads a request header of `header_version` off the front of `buffer`; returns the client
/// id. Kafka's rules: v0 has no client id; v1+ has a nullable i16-length string (never
/// compact, even in v2); v2 adds a tagged-field section whose tags must be strictly
/// increasing (no duplicates), each with a size inside the frame. The header defines no
/// tagged fields, so every tag is skipped.
fn decode_header<B: Buf>(buffer: &mut B, header_version: i16) -> Result<Option<String>, String> {
    let short = |what: &str| format!("frame ends inside the {what}");
    if buffer.remaining() < ENVELOPE_BYTES {
        return Err(short("envelope"));
    }
    buffer.advance(ENVELOPE_BYTES);
    if header_version < 1 {
        return Ok(None);
    }
    if buffer.remaining() < 2 {
        return Err(short("client id length"));
    }
    let length = buffer.get_i16();
    let client_id = match length {
        -1 => None,
        n if n < 0 => return Err(format!("client id length {n} is negative")),
        n => {
            let n = n as usize;
            if buffer.remaining() < n {
                return Err(short("client id"));
            }
            let raw = buffer.copy_to_bytes(n);
            Some(String::from_utf8_lossy(&raw).into_owned())
        }
    };
    if header_version >= 2 {
        skip_tagged_fields(buffer)?;
    }
    Ok(client_id)
}

/// Skips a tagged-field section, checking Kafka's ordering rule (strictly increasing tags).
fn skip_tagged_fields<B: Buf>(buffer: &mut B) -> Result<(), String> {
    let count = read_unsigned_varint(buffer)?;
    let mut previous: Option<u32> = None;
    for _ in 0..count {
        let tag = read_unsigned_varint(buffer)?;
        if previous.is_some_and(|p| tag <= p) {
            return Err(format!("tagged field {tag} is out of order or repeated"));
        }
        previous = Some(tag);
        let size = read_unsigned_varint(buffer)? as usize;
        if buffer.remaining() < size {
            return Err(format!(
                "tagged field {tag} of {size} bytes passes the frame end"
            ));
        }
        buffer.advance(size);
    }
    Ok(())
}

/// An unsigned varint of at most 5 bytes (Kafka's u32 varint).
pub(crate) fn read_unsigned_varint<B: Buf>(buffer: &mut B) -> Result<u32, String> {
    let mut value: u32 = 0;
    for index in 0..5 {
        if !buffer.has_remaining() {
            return Err("frame ends inside a varint".to_string());
        }
        let byte = buffer.get_u8();
        value |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 5 bytes".to_string())
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
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
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
        assert_eq!(decoded.envelope.correlation_id, 77);
        assert_eq!(decoded.client_id.as_deref(), Some("test"));
        assert!(matches!(decoded.body, RequestKind::ApiVersions(_)));
    }

    /// An ApiVersions v3 request (header v2) with `client_id` bytes and the header's tagged
    /// section given raw.
    fn api_versions_v3(client_id: &[u8], header_tags: &[u8]) -> Bytes {
        let mut frame = vec![0u8, 18, 0, 3, 0, 0, 0, 9];
        frame.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        frame.extend_from_slice(client_id);
        frame.extend_from_slice(header_tags);
        // Body: compact strings "x" and "1", no tagged fields.
        frame.extend_from_slice(&[2, b'x', 2, b'1', 0]);
        Bytes::from(frame)
    }

    #[test]
    fn client_id_is_decoded_lossily() {
        let decoded =
            decode_request(ApiKey::ApiVersions, api_versions_v3(b"ab\xffc", &[0])).unwrap();
        assert_eq!(decoded.client_id.as_deref(), Some("ab\u{fffd}c"));
    }

    #[test]
    fn header_tags_must_increase() {
        // Two tags in order (1, then 5), each with one byte: accepted and skipped.
        let ordered = api_versions_v3(b"c", &[2, 1, 1, 0xaa, 5, 1, 0xbb]);
        assert!(decode_request(ApiKey::ApiVersions, ordered).is_ok());
        let reversed = api_versions_v3(b"c", &[2, 5, 1, 0xaa, 1, 1, 0xbb]);
        assert!(decode_request(ApiKey::ApiVersions, reversed).is_err());
        let repeated = api_versions_v3(b"c", &[2, 3, 1, 0xaa, 3, 1, 0xbb]);
        assert!(decode_request(ApiKey::ApiVersions, repeated).is_err());
        let overlong = api_versions_v3(b"c", &[1, 3, 100, 0xaa]);
        assert!(decode_request(ApiKey::ApiVersions, overlong).is_err());
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
