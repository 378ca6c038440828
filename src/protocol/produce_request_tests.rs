//! `decode_produce_body` against kafka-protocol's `ProduceRequest` decoder: same fields for
//! every version, same verdict on every truncation, and records that are regions of the
//! frame itself (no copy).

use super::*;
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn request(version: i16) -> ProduceRequest {
    let partition = |index: i32, records: Option<&'static [u8]>| {
        let mut data = PartitionProduceData::default();
        data.index = index;
        data.records = records.map(Bytes::from_static);
        if version >= FLEXIBLE_VERSION_MIN {
            data.unknown_tagged_fields
                .insert(7, Bytes::from_static(b"tag"));
        }
        data
    };
    let topic = |name: &'static str, id: u128, partitions| {
        let mut topic = TopicProduceData::default();
        if version < TOPIC_ID_VERSION_MIN {
            topic.name = TopicName(StrBytes::from_static_str(name));
        }
        topic.topic_id = if version >= TOPIC_ID_VERSION_MIN {
            Uuid::from_u128(id)
        } else {
            Uuid::nil()
        };
        topic.partition_data = partitions;
        topic
    };
    let mut request = ProduceRequest::default();
    request.transactional_id =
        (version % 2 == 0).then(|| TransactionalId(StrBytes::from_static_str("txn-é")));
    request.acks = -1;
    request.timeout_ms = 30_000;
    request.topic_data = vec![
        topic(
            "alpha",
            1,
            vec![
                partition(0, Some(b"first records")),
                partition(3, None),
                partition(1, Some(b"")),
            ],
        ),
        topic("beta", 2, vec![partition(9, Some(b"second"))]),
        topic("gamma", 3, vec![]),
    ];
    request
}

fn encode(request: &ProduceRequest, version: i16) -> BytesMut {
    let mut body = BytesMut::new();
    request.encode(&mut body, version).unwrap();
    body
}

fn assert_same(ours: &ProduceRequestOwned, theirs: &ProduceRequest) {
    assert_eq!(
        ours.transactional_id.as_deref(),
        theirs.transactional_id.as_ref().map(|id| id.0.as_str())
    );
    assert_eq!(ours.acks, theirs.acks);
    assert_eq!(ours.timeout_ms, theirs.timeout_ms);
    assert_eq!(ours.topics.len(), theirs.topic_data.len());
    for (topic, expected) in ours.topics.iter().zip(&theirs.topic_data) {
        assert_eq!(topic.name, expected.name.0.as_str());
        assert_eq!(topic.topic_id, expected.topic_id);
        assert_eq!(topic.partitions.len(), expected.partition_data.len());
        for (partition, expected) in topic.partitions.iter().zip(&expected.partition_data) {
            assert_eq!(partition.index, expected.index);
            assert_eq!(
                partition.records.as_deref(),
                expected.records.as_deref(),
                "records of partition {}",
                partition.index
            );
        }
    }
}

#[test]
fn decodes_every_version_as_kafka_protocol_does() {
    for version in 3..=TOPIC_ID_VERSION_MIN {
        let sent = request(version);
        let body = encode(&sent, version);
        let theirs = ProduceRequest::decode(&mut body.clone().freeze(), version).unwrap();
        let ours = decode_produce_body(body, version).unwrap();
        assert_same(&ours, &theirs);
        assert_same(&ours, &sent);
    }
}

/// The records are the frame's own bytes (same addresses), split off without a copy, and
/// writable.
#[test]
fn records_are_regions_of_the_frame() {
    let version = 9;
    let body = encode(&request(version), version);
    let frame_start = body.as_ptr() as usize;
    let frame_end = frame_start + body.len();
    let expected_at = |needle: &[u8]| {
        let position = body
            .windows(needle.len())
            .position(|window| window == needle)
            .unwrap();
        frame_start + position
    };
    let first_at = expected_at(b"first records");
    let second_at = expected_at(b"second");
    let mut ours = decode_produce_body(body, version).unwrap();
    let first = ours.topics[0].partitions[0].records.as_mut().unwrap();
    assert_eq!(first.as_ptr() as usize, first_at);
    assert!(first.as_ptr() as usize + first.len() <= frame_end);
    first[0] = b'F';
    assert_eq!(&first[..], b"First records");
    let second = ours.topics[1].partitions[0].records.as_ref().unwrap();
    assert_eq!(second.as_ptr() as usize, second_at);
}

/// Every truncation of a valid body is refused by both decoders alike (a cut inside the
/// trailing tagged fields included), and neither panics.
#[test]
fn truncations_get_the_same_verdict() {
    for version in 3..=TOPIC_ID_VERSION_MIN {
        let body = encode(&request(version), version);
        for cut in 0..body.len() {
            let short = BytesMut::from(&body[..cut]);
            let theirs = ProduceRequest::decode(&mut short.clone().freeze(), version);
            let ours = decode_produce_body(short, version);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "v{version} cut at {cut}: ours {:?}",
                ours.err()
            );
        }
    }
}

/// A garbage count or length is checked against the bytes present (no allocation from it).
#[test]
fn garbage_counts_and_lengths_are_refused() {
    // v3: null transactional id, acks, timeout, then 2^31-1 topics.
    let mut body = BytesMut::new();
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(decode_produce_body(body, 3).is_err());
    // v3: one topic "t", one partition whose records claim 2^31-1 bytes.
    let mut body = BytesMut::new();
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(b"t");
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    body.extend_from_slice(b"short");
    assert!(decode_produce_body(body.clone(), 3).is_err());
    // A negative records length other than -1, and a null topic name.
    let negative = body.len() - 9;
    body[negative..negative + 4].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(decode_produce_body(body.clone(), 3).is_err());
    let name = 12;
    body[name..name + 2].copy_from_slice(&(-1i16).to_be_bytes());
    assert!(decode_produce_body(body, 3).is_err());
    assert!(decode_produce_body(BytesMut::new(), 2).is_err());
}
