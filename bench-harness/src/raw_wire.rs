//! Request frames and response parsing for the raw-protocol generator (`raw`): Produce v9
//! carrying one pre-encoded v2 record batch, Fetch v12 by topic name, and the parts of their
//! responses the generator counts (error codes, high watermarks, whole batches read).
//!
//! Owns: the encodings (through the `kafka-protocol` crate) and the batch walk over a fetched
//! record set. Imports nothing from this crate. Pure functions, no I/O.

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
const CLIENT_ID: &str = "bench-raw";

/// One uncompressed v2 batch of `records` records of `record_bytes` value bytes each (no
/// key, no producer id: the broker accepts the same batch again and again).
pub fn record_batch(
    records: usize,
    record_bytes: usize,
    timestamp_ms: i64,
) -> anyhow::Result<Bytes> {
    let value = Bytes::from(vec![b'x'; record_bytes]);
    let batch: Vec<Record> = (0..records)
        .map(|index| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder starts a new batch unless offset - sequence stays the same; the
            // batch takes the first record's -1 (no idempotence).
            sequence: index as i32 - 1,
            timestamp: timestamp_ms,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &batch, &options).context("encoding the record batch")?;
    Ok(out.freeze())
}

/// A whole Produce frame (length prefix included) with `batch` for one partition.
pub fn produce_frame(
    correlation_id: i32,
    topic: &str,
    partition: i32,
    acks: i16,
    batch: &Bytes,
) -> anyhow::Result<Bytes> {
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(batch.clone()));
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![data]),
        ]);
    frame(
        ApiKey::Produce,
        PRODUCE_VERSION,
        correlation_id,
        |out, version| request.encode(out, version),
        ProduceRequest::header_version(PRODUCE_VERSION),
    )
}

/// A Fetch frame reading each `(partition, offset)` of `topic`, up to `partition_max_bytes`
/// each and `max_bytes` in all, waiting at most 500 ms for 1 byte.
pub fn fetch_frame(
    correlation_id: i32,
    topic: &str,
    positions: &[(i32, i64)],
    partition_max_bytes: i32,
    max_bytes: i32,
) -> anyhow::Result<Bytes> {
    let partitions = positions
        .iter()
        .map(|&(partition, offset)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)
        })
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions),
        ]);
    frame(
        ApiKey::Fetch,
        FETCH_VERSION,
        correlation_id,
        |out, version| request.encode(out, version),
        FetchRequest::header_version(FETCH_VERSION),
    )
}

fn frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut BytesMut, i16) -> anyhow::Result<()>,
    header_version: i16,
) -> anyhow::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    header.encode(&mut out, header_version)?;
    body(&mut out, version)?;
    let length = u32::try_from(out.len() - 4).context("frame too large")?;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(out.freeze())
}

/// The first error code of a Produce response body (after the 4-byte length), 0 if none.
pub fn produce_error(mut body: Bytes) -> anyhow::Result<i16> {
    ResponseHeader::decode(&mut body, ProduceResponse::header_version(PRODUCE_VERSION))?;
    let response = ProduceResponse::decode(&mut body, PRODUCE_VERSION)?;
    Ok(response
        .responses
        .iter()
        .flat_map(|topic| topic.partition_responses.iter())
        .map(|partition| partition.error_code)
        .find(|&code| code != 0)
        .unwrap_or(0))
}

/// What one partition of a Fetch response brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    /// The offset after the last whole batch (the next fetch offset), if any batch came.
    pub next_offset: Option<i64>,
    /// Bytes of the whole batches.
    pub batch_bytes: usize,
}

/// The partitions of a Fetch response body (after the 4-byte length).
pub fn fetched(mut body: Bytes) -> anyhow::Result<Vec<FetchedPartition>> {
    ResponseHeader::decode(&mut body, FetchResponse::header_version(FETCH_VERSION))?;
    let response = FetchResponse::decode(&mut body, FETCH_VERSION)?;
    Ok(response
        .responses
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| {
            let (next_offset, batch_bytes) = partition
                .records
                .as_deref()
                .map_or((None, 0), whole_batches);
            FetchedPartition {
                partition: partition.partition_index,
                error_code: partition.error_code,
                high_watermark: partition.high_watermark,
                next_offset,
                batch_bytes,
            }
        })
        .collect())
}

/// Walks the whole v2 batches at the front of a record set (a fetch may end in a partial
/// one): the offset after the last of them and their bytes.
pub fn whole_batches(records: &[u8]) -> (Option<i64>, usize) {
    const HEADER: usize = 12; // base offset i64 + batch length i32
    const LAST_OFFSET_DELTA_AT: usize = 23;
    let mut at = 0;
    let mut next = None;
    while records.len() - at >= HEADER {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap_or_default());
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap_or_default());
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let end = at + HEADER + length;
        if end > records.len() || HEADER + length < LAST_OFFSET_DELTA_AT + 4 {
            break;
        }
        let delta_at = at + LAST_OFFSET_DELTA_AT;
        let delta = i32::from_be_bytes(
            records[delta_at..delta_at + 4]
                .try_into()
                .unwrap_or_default(),
        );
        next = Some(base + i64::from(delta) + 1);
        at = end;
    }
    (next, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_walk_counts_whole_batches_and_stops_at_a_partial_one() {
        let batch = record_batch(10, 100, 1_000).unwrap();
        let mut two = batch.to_vec();
        // The second batch says base offset 10.
        let mut second = batch.to_vec();
        second[..8].copy_from_slice(&10i64.to_be_bytes());
        two.extend_from_slice(&second);
        assert_eq!(whole_batches(&two), (Some(20), two.len()));
        let cut = &two[..two.len() - 5];
        assert_eq!(whole_batches(cut), (Some(10), batch.len()));
        assert_eq!(whole_batches(&[]), (None, 0));
    }

    #[test]
    fn frames_carry_their_length() {
        let batch = record_batch(3, 10, 0).unwrap();
        let produce = produce_frame(1, "t", 0, 1, &batch).unwrap();
        let length = u32::from_be_bytes(produce[..4].try_into().unwrap()) as usize;
        assert_eq!(length, produce.len() - 4);
        let fetch = fetch_frame(2, "t", &[(0, 5), (1, 7)], 1 << 20, 1 << 24).unwrap();
        let length = u32::from_be_bytes(fetch[..4].try_into().unwrap()) as usize;
        assert_eq!(length, fetch.len() - 4);
    }
}
