//! A hand-written FetchResponse encoder that never copies record bytes: it emits the
//! response as a list of `Bytes` chunks where each partition's records are the stored batch
//! slices themselves, ready for a vectored socket write. Everything else in the response is
//! small and is encoded into the header chunks. Verified against kafka-protocol's decoder for
//! every supported version (4..=17).
//!
//! Layout (Kafka `FetchResponse.json`): throttle_time_ms (v1+), error_code, session_id
//! (v7+), responses[topic (v<13) | topic_id (v13+), partitions[partition_index, error_code,
//! high_watermark, last_stable_offset (v4+), log_start_offset (v5+), aborted_transactions
//! (v4+), preferred_read_replica (v11+), records]]. v12+ is flexible: compact arrays,
//! strings and bytes, and tagged fields (all omitted here, as Kafka omits defaults).

use bytes::{BufMut, Bytes, BytesMut};

pub const FETCH_VERSION_MIN: i16 = 4;
pub const FETCH_VERSION_MAX: i16 = 17;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

#[derive(Debug, Clone, Default)]
pub struct FetchPartitionResponse {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// None encodes as a null array (read_uncommitted).
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    pub preferred_read_replica: i32,
    /// Whole record batches, as stored. Empty means a zero-length records field.
    pub records: Vec<Bytes>,
}

#[derive(Debug, Clone)]
pub struct FetchTopicResponse {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchPartitionResponse>,
}

#[derive(Debug, Clone, Default)]
pub struct FetchResponseBody {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopicResponse>,
}

/// Encoded response: chunks to write in order; the first starts with the size prefix.
#[derive(Debug, Default)]
pub struct ChunkedFrame {
    pub chunks: Vec<Bytes>,
    pub total_bytes: usize,
}

struct ChunkWriter {
    current: BytesMut,
    chunks: Vec<Bytes>,
    total: usize,
}

impl ChunkWriter {
    fn push_records(&mut self, records: &[Bytes]) {
        if !self.current.is_empty() {
            let head = self.current.split().freeze();
            self.total += head.len();
            self.chunks.push(head);
        }
        for batch in records.iter().filter(|b| !b.is_empty()) {
            self.total += batch.len();
            self.chunks.push(batch.clone());
        }
    }

    fn finish(mut self) -> ChunkedFrame {
        if !self.current.is_empty() {
            let tail = self.current.split().freeze();
            self.total += tail.len();
            self.chunks.push(tail);
        }
        ChunkedFrame {
            chunks: self.chunks,
            total_bytes: self.total,
        }
    }
}

fn put_unsigned_varint(buffer: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buffer.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buffer.put_u8(value as u8);
}

fn put_array_len(buffer: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        put_unsigned_varint(buffer, len as u32 + 1);
    } else {
        buffer.put_i32(len as i32);
    }
}

fn put_string(buffer: &mut BytesMut, flexible: bool, value: &str) {
    if flexible {
        put_unsigned_varint(buffer, value.len() as u32 + 1);
    } else {
        buffer.put_i16(value.len() as i16);
    }
    buffer.put_slice(value.as_bytes());
}

/// Encodes a complete size-prefixed frame: `response_header` (already encoded for this
/// version, without size) followed by the body.
pub fn encode_fetch_response(
    version: i16,
    response_header: &[u8],
    body: &FetchResponseBody,
) -> ChunkedFrame {
    assert!((FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version));
    let flexible = version >= 12;
    let mut writer = ChunkWriter {
        current: BytesMut::with_capacity(256),
        chunks: Vec::new(),
        total: 0,
    };
    let out = &mut writer.current;
    out.put_i32(0); // size, patched below
    out.put_slice(response_header);
    out.put_i32(body.throttle_time_ms);
    if version >= 7 {
        out.put_i16(body.error_code);
        out.put_i32(body.session_id);
    }
    put_array_len(&mut writer.current, flexible, body.topics.len());
    for topic in &body.topics {
        if version >= 13 {
            writer.current.put_slice(&topic.topic_id);
        } else {
            put_string(&mut writer.current, flexible, &topic.name);
        }
        put_array_len(&mut writer.current, flexible, topic.partitions.len());
        for partition in &topic.partitions {
            encode_partition(&mut writer, version, partition);
        }
        if flexible {
            writer.current.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        writer.current.put_u8(0); // top-level tagged fields
    }
    let mut frame = writer.finish();
    let size = (frame.total_bytes - 4) as i32;
    patch_size(&mut frame, size);
    frame
}

fn patch_size(frame: &mut ChunkedFrame, size: i32) {
    if let Some(first) = frame.chunks.first_mut() {
        let mut patched = BytesMut::from(&first[..]);
        patched[0..4].copy_from_slice(&size.to_be_bytes());
        *first = patched.freeze();
    }
}

fn encode_partition(writer: &mut ChunkWriter, version: i16, partition: &FetchPartitionResponse) {
    let flexible = version >= 12;
    let out = &mut writer.current;
    out.put_i32(partition.partition_index);
    out.put_i16(partition.error_code);
    out.put_i64(partition.high_watermark);
    out.put_i64(partition.last_stable_offset);
    if version >= 5 {
        out.put_i64(partition.log_start_offset);
    }
    match &partition.aborted_transactions {
        None if flexible => put_unsigned_varint(out, 0),
        None => out.put_i32(-1),
        Some(aborted) => {
            put_array_len(out, flexible, aborted.len());
            for transaction in aborted {
                out.put_i64(transaction.producer_id);
                out.put_i64(transaction.first_offset);
                if flexible {
                    out.put_u8(0);
                }
            }
        }
    }
    if version >= 11 {
        out.put_i32(partition.preferred_read_replica);
    }
    let records_len: usize = partition.records.iter().map(Bytes::len).sum();
    if flexible {
        put_unsigned_varint(out, records_len as u32 + 1);
    } else {
        out.put_i32(records_len as i32);
    }
    writer.push_records(&partition.records);
    if flexible {
        writer.current.put_u8(0); // partition tagged fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    fn sample() -> FetchResponseBody {
        FetchResponseBody {
            throttle_time_ms: 3,
            error_code: 0,
            session_id: 0,
            topics: vec![FetchTopicResponse {
                name: "orders".to_string(),
                topic_id: [7; 16],
                partitions: vec![
                    FetchPartitionResponse {
                        partition_index: 2,
                        error_code: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        log_start_offset: 1,
                        aborted_transactions: None,
                        preferred_read_replica: -1,
                        records: vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")],
                    },
                    FetchPartitionResponse {
                        partition_index: 5,
                        error_code: 1,
                        high_watermark: 4,
                        last_stable_offset: 4,
                        log_start_offset: 0,
                        aborted_transactions: Some(vec![AbortedTransaction {
                            producer_id: 9,
                            first_offset: 3,
                        }]),
                        preferred_read_replica: -1,
                        records: vec![],
                    },
                ],
            }],
        }
    }

    #[test]
    fn every_version_decodes_with_kafka_protocol() {
        let body = sample();
        for version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX {
            let header: &[u8] = if version >= 12 {
                &[0, 0, 0, 9, 0]
            } else {
                &[0, 0, 0, 9]
            };
            let frame = encode_fetch_response(version, header, &body);
            let mut joined = BytesMut::new();
            for chunk in &frame.chunks {
                joined.extend_from_slice(chunk);
            }
            assert_eq!(joined.len(), frame.total_bytes);
            let size = i32::from_be_bytes([joined[0], joined[1], joined[2], joined[3]]) as usize;
            assert_eq!(size + 4, joined.len(), "v{version}");
            let mut rest = joined.freeze().slice(4 + header.len()..);
            let decoded = FetchResponse::decode(&mut rest, version).unwrap();
            assert_eq!(rest.len(), 0, "v{version} left bytes");
            assert_eq!(decoded.throttle_time_ms, 3);
            let topic = &decoded.responses[0];
            if version >= 13 {
                assert_eq!(topic.topic_id.as_bytes(), &[7; 16]);
            } else {
                assert_eq!(topic.topic.as_str(), "orders");
            }
            let first = &topic.partitions[0];
            assert_eq!(first.partition_index, 2);
            assert_eq!(first.high_watermark, 10);
            assert_eq!(first.records.as_deref(), Some(&b"abcdefg"[..]));
            assert!(first.aborted_transactions.is_none());
            let second = &topic.partitions[1];
            assert_eq!(second.error_code, 1);
            assert_eq!(second.aborted_transactions.as_ref().map(Vec::len), Some(1));
            if version >= 5 {
                assert_eq!(first.log_start_offset, 1);
            }
        }
    }

    #[test]
    fn record_bytes_are_not_copied() {
        let body = sample();
        let frame = encode_fetch_response(12, &[0, 0, 0, 1, 0], &body);
        let original = &body.topics[0].partitions[0].records[0];
        assert!(frame.chunks.iter().any(|c| c.as_ptr() == original.as_ptr()));
    }
}
