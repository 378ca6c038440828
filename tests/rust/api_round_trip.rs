//! Contract: every API version the broker advertises in ApiVersions is one it implements.
//! For each advertised API, a request encoded by kafka-protocol at the advertised minimum
//! and maximum version goes to the running broker, the response is decoded at that version
//! (no trailing bytes), and an assertion shows the request was understood: no error, and a
//! field that only a correct answer has (the committed offset read back, the record's
//! offset, the group's member, the config value set before, ...).
//!
//! The table `CASES` is the list of round trips: an API advertised without a case fails the
//! test, and so does a case for an API that is no longer advertised. Versions below the
//! advertised minimum (Kafka 4.0's, KIP-896) close the connection, as Kafka does.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::*;
use kafka_protocol::messages::alter_configs_request::*;
use kafka_protocol::messages::create_partitions_request::*;
use kafka_protocol::messages::create_topics_request::*;
use kafka_protocol::messages::delete_records_request::*;
use kafka_protocol::messages::delete_topics_request::*;
use kafka_protocol::messages::describe_configs_request::*;
use kafka_protocol::messages::fetch_request::*;
use kafka_protocol::messages::join_group_request::*;
use kafka_protocol::messages::leave_group_request::*;
use kafka_protocol::messages::list_offsets_request::*;
use kafka_protocol::messages::metadata_request::*;
use kafka_protocol::messages::offset_commit_request::*;
use kafka_protocol::messages::offset_delete_request::*;
use kafka_protocol::messages::offset_fetch_request::*;
use kafka_protocol::messages::produce_request::*;
use kafka_protocol::messages::sync_group_request::*;
use kafka_protocol::messages::txn_offset_commit_request::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

const BROKER_START_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const NONE: i16 = 0;
const MEMBER_ID_REQUIRED: i16 = 79;
const RESOURCE_TOPIC: i8 = 2;
/// Records the fixture topic holds before any case runs.
const FIXTURE_RECORDS: i64 = 2;

struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_broker(name: &str) -> Broker {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("api-round-trip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let port = free_port();
    let admin_port = std::iter::repeat_with(free_port)
        .find(|&p| p != port)
        .expect("a second free port");
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "2"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--group-initial-rebalance-delay-ms", "0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("broker.log")).expect("log"))
        .spawn()
        .expect("start shardlog");
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(POLL_INTERVAL);
    }
    Broker { child, port }
}

/// The text of a protocol string, whichever newtype wraps it.
trait Text {
    fn text(&self) -> &str;
}

impl Text for StrBytes {
    fn text(&self) -> &str {
        self
    }
}

impl Text for String {
    fn text(&self) -> &str {
        self
    }
}

macro_rules! text_of_newtype {
    ($($newtype:ty),*) => {$(
        impl Text for $newtype {
            fn text(&self) -> &str {
                &self.0
            }
        }
    )*};
}
text_of_newtype!(TopicName, GroupId, TransactionalId);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic_name(text: &str) -> TopicName {
    TopicName(s(text))
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => {
                stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                return stream;
            }
            Err(error) => {
                assert!(Instant::now() < deadline, "connect: {error}");
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }
}

fn read_frame(stream: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

struct Fixture {
    port: u16,
    stream: TcpStream,
    correlation_id: i32,
    unique: u32,
    /// A one-partition topic holding FIXTURE_RECORDS records.
    topic: String,
}

impl Fixture {
    /// Encodes `request` at `version`, sends it and decodes the answer at that version.
    fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(s("api-round-trip")));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, R::header_version(version))
            .expect("encode header");
        request
            .encode(&mut frame, version)
            .unwrap_or_else(|e| panic!("encode {} v{version}: {e}", R::KEY));
        let mut bytes = Vec::with_capacity(frame.len() + 4);
        bytes.put_i32(frame.len() as i32);
        bytes.extend_from_slice(&frame);
        self.stream.write_all(&bytes).expect("send");
        let mut body = read_frame(&mut self.stream)
            .unwrap_or_else(|e| panic!("api {} v{version}: no response: {e}", R::KEY));
        let response_header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version))
                .expect("response header");
        assert_eq!(response_header.correlation_id, self.correlation_id);
        let response = R::Response::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("decode api {} v{version}: {e}", R::KEY));
        assert!(
            !body.has_remaining(),
            "api {} v{version}: {} trailing bytes",
            R::KEY,
            body.remaining()
        );
        response
    }

    fn unique(&mut self, prefix: &str) -> String {
        self.unique += 1;
        format!("rt-{prefix}-{}-{}", std::process::id(), self.unique)
    }

    fn create_topic(&mut self, name: &str, partitions: i32) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ]);
        let response = self.send(&request, 7);
        assert_eq!(response.topics[0].error_code, NONE, "create {name}");
    }

    fn new_topic(&mut self, prefix: &str, partitions: i32) -> String {
        let name = self.unique(prefix);
        self.create_topic(&name, partitions);
        name
    }

    fn produce_request(
        topic: &str,
        count: i64,
        producer: Option<(i64, i16)>,
        transactional_id: Option<&str>,
    ) -> ProduceRequest {
        let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: transactional_id.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i,
                // kafka-protocol keeps records in one batch while offset - sequence is
                // constant; the batch's base sequence is -1 without a producer id.
                sequence: if producer.is_some() {
                    i as i32
                } else {
                    i as i32 - 1
                },
                timestamp: 1_700_000_000_000 + i,
                key: None,
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode batch");
        ProduceRequest::default()
            .with_transactional_id(transactional_id.map(|id| TransactionalId(s(id))))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.freeze())),
                    ]),
            ])
    }

    /// Produces `count` records to partition 0; returns the base offset.
    fn produce(&mut self, topic: &str, count: i64, producer: Option<(i64, i16)>) -> i64 {
        let response = self.send(&Self::produce_request(topic, count, producer, None), 11);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            partition.error_code, NONE,
            "produce to {topic}: {:?} {:?}",
            partition.error_message, partition.record_errors
        );
        partition.base_offset
    }

    fn latest_offset(&mut self, topic: &str) -> i64 {
        let request = ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
        ]);
        let response = self.send(&request, 10);
        response.topics[0].partitions[0].offset
    }

    fn topic_id(&mut self, topic: &str) -> Uuid {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
        let response = self.send(&request, 12);
        assert_eq!(response.topics[0].error_code, NONE);
        response.topics[0].topic_id
    }

    fn partition_count(&mut self, topic: &str) -> usize {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
        self.send(&request, 12).topics[0].partitions.len()
    }

    fn topic_config(&mut self, topic: &str, key: &str) -> Option<String> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(s(topic))
                .with_configuration_keys(None),
        ]);
        let response = self.send(&request, 4);
        assert_eq!(response.results[0].error_code, NONE);
        response.results[0]
            .configs
            .iter()
            .find(|config| config.name.text() == key)
            .and_then(|config| config.value.as_ref().map(|v| v.to_string()))
    }

    fn commit_offset(&mut self, group: &str, topic: &str, offset: i64) {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default().with_committed_offset(offset),
                    ]),
            ]);
        let response = self.send(&request, 8);
        assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    }

    fn committed_offset(&mut self, group: &str, topic: &str) -> i64 {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(vec![0]),
                ])),
        ]);
        let response = self.send(&request, 8);
        assert_eq!(response.groups[0].error_code, NONE);
        response.groups[0].topics[0].partitions[0].committed_offset
    }

    fn subscription(&self) -> Bytes {
        // ConsumerProtocolSubscription v0: version, topics, null user data.
        let mut metadata = BytesMut::new();
        metadata.put_i16(0);
        metadata.put_i32(1);
        metadata.put_i16(self.topic.len() as i16);
        metadata.put_slice(self.topic.as_bytes());
        metadata.put_i32(-1);
        metadata.freeze()
    }

    fn join_request(&self, group: &str, member_id: &str, version: i16) -> JoinGroupRequest {
        let mut request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(30_000)
            .with_member_id(s(member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(self.subscription()),
            ]);
        if version >= 1 {
            request.rebalance_timeout_ms = 30_000;
        }
        request
    }

    /// Joins `group` as its only member at JoinGroup `version` (with the member-id round
    /// of KIP-394 from v4); returns the response.
    fn join(&mut self, group: &str, version: i16) -> JoinGroupResponse {
        let first = self.send(&self.join_request(group, "", version), version);
        if first.error_code != MEMBER_ID_REQUIRED {
            return first;
        }
        assert!(version >= 4, "MEMBER_ID_REQUIRED at v{version}");
        let member_id = first.member_id.to_string();
        self.send(&self.join_request(group, &member_id, version), version)
    }

    /// A stable one-member group: (generation, member id).
    fn stable_group(&mut self, group: &str) -> (i32, String) {
        let joined = self.join(group, 9);
        assert_eq!(joined.error_code, NONE);
        let member_id = joined.member_id.to_string();
        let synced = self.send(&self.sync_request(group, &joined), 5);
        assert_eq!(synced.error_code, NONE);
        (joined.generation_id, member_id)
    }

    fn sync_request(&self, group: &str, joined: &JoinGroupResponse) -> SyncGroupRequest {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone())
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(joined.member_id.clone())
                    .with_assignment(Bytes::from_static(b"assignment")),
            ])
    }

    fn init_producer(&mut self, transactional_id: Option<&str>) -> (i64, i16) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(transactional_id.map(|id| TransactionalId(s(id))))
            .with_transaction_timeout_ms(60_000);
        let response = self.send(&request, 4);
        assert_eq!(response.error_code, NONE);
        (response.producer_id.0, response.producer_epoch)
    }

    fn add_partition_to_txn(&mut self, transactional_id: &str, producer: (i64, i16)) {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(transactional_id)))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(&self.topic))
                    .with_partitions(vec![0]),
            ]);
        let response = self.send(&request, 3);
        assert_eq!(
            response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            NONE
        );
    }

    fn add_offsets_to_txn(&mut self, transactional_id: &str, producer: (i64, i16), group: &str) {
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(transactional_id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_group_id(GroupId(s(group)));
        assert_eq!(self.send(&request, 3).error_code, NONE);
    }

    fn end_txn_request(transactional_id: &str, producer: (i64, i16)) -> EndTxnRequest {
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(transactional_id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(false)
    }

    fn abort(&mut self, transactional_id: &str, producer: (i64, i16)) {
        let response = self.send(&Self::end_txn_request(transactional_id, producer), 3);
        assert_eq!(response.error_code, NONE);
    }
}

// ------------------------------------------------------------------------------- cases

fn produce(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("produce", 1);
    fx.produce(&topic, 3, None);
    let response = fx.send(&Fixture::produce_request(&topic, 2, None, None), version);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(
        partition.base_offset, 3,
        "the batch follows the first three records"
    );
    assert_eq!(fx.latest_offset(&topic), 5);
}

fn fetch(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let mut fetch_topic = FetchTopic::default().with_partitions(vec![
        FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20),
    ]);
    if version >= 13 {
        fetch_topic.topic_id = fx.topic_id(&topic);
    } else {
        fetch_topic.topic = topic_name(&topic);
    }
    let request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_topics(vec![fetch_topic]);
    let response = fx.send(&request, version);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.high_watermark, FIXTURE_RECORDS);
    let records = partition.records.as_ref().expect("records");
    // The first batch starts at offset 0 and is not empty.
    assert!(records.len() > 61, "{} bytes of records", records.len());
    assert_eq!(i64::from_be_bytes(records[..8].try_into().unwrap()), 0);
}

fn list_offsets(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let mut request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name(&topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
    ]);
    if version >= 10 {
        request.timeout_ms = 5_000;
    }
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.offset, FIXTURE_RECORDS, "latest = high watermark");
}

fn metadata(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(&topic))),
    ]));
    let response = fx.send(&request, version);
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, i32::from(fx.port));
    let described = &response.topics[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(
        described.name.as_ref().map(|n| n.text()),
        Some(topic.text())
    );
    assert_eq!(described.partitions.len(), 1);
    assert_eq!(
        described.partitions[0].leader_id,
        response.brokers[0].node_id
    );
}

fn offset_commit(fx: &mut Fixture, version: i16) {
    let group = fx.unique("commit");
    let topic = fx.topic.clone();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    assert_eq!(fx.committed_offset(&group, &topic), 1);
}

fn offset_fetch(fx: &mut Fixture, version: i16) {
    let group = fx.unique("fetch");
    let topic = fx.topic.clone();
    fx.commit_offset(&group, &topic, 2);
    let committed = if version >= 8 {
        fx.committed_offset(&group, &topic)
    } else {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partition_indexes(vec![0]),
            ]));
        let response = fx.send(&request, version);
        assert_eq!(response.error_code, NONE);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, NONE);
        partition.committed_offset
    };
    assert_eq!(committed, 2);
}

fn find_coordinator(fx: &mut Fixture, version: i16) {
    let group = fx.unique("coordinator");
    let (error, port) = if version >= 4 {
        let request = FindCoordinatorRequest::default().with_coordinator_keys(vec![s(&group)]);
        let response = fx.send(&request, version);
        let coordinator = &response.coordinators[0];
        assert_eq!(coordinator.key.text(), group);
        (coordinator.error_code, coordinator.port)
    } else {
        let request = FindCoordinatorRequest::default().with_key(s(&group));
        let response = fx.send(&request, version);
        (response.error_code, response.port)
    };
    assert_eq!(error, NONE);
    assert_eq!(port, i32::from(fx.port));
}

fn join_group(fx: &mut Fixture, version: i16) {
    let group = fx.unique("join");
    let response = fx.join(&group, version);
    assert_eq!(response.error_code, NONE);
    assert!(!response.member_id.is_empty());
    assert_eq!(response.leader, response.member_id, "the only member leads");
    assert_eq!(response.members.len(), 1, "the leader gets the member list");
    assert_eq!(
        response.protocol_name.as_ref().map(|n| n.text()),
        Some("range")
    );
}

fn sync_group(fx: &mut Fixture, version: i16) {
    let group = fx.unique("sync");
    let joined = fx.join(&group, 9);
    assert_eq!(joined.error_code, NONE);
    let mut request = fx.sync_request(&group, &joined);
    if version >= 5 {
        request.protocol_type = Some(s("consumer"));
        request.protocol_name = Some(s("range"));
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    assert_eq!(&response.assignment[..], b"assignment");
}

fn heartbeat(fx: &mut Fixture, version: i16) {
    let group = fx.unique("heartbeat");
    let (generation, member_id) = fx.stable_group(&group);
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id(generation)
        .with_member_id(s(&member_id));
    assert_eq!(fx.send(&request, version).error_code, NONE);
    // A stale generation is told apart: the request was read, not just acknowledged.
    let stale = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id(generation + 100)
        .with_member_id(s(&member_id));
    assert_eq!(
        fx.send(&stale, version).error_code,
        22,
        "ILLEGAL_GENERATION"
    );
}

fn leave_group(fx: &mut Fixture, version: i16) {
    let group = fx.unique("leave");
    let (_, member_id) = fx.stable_group(&group);
    let mut request = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
    if version >= 3 {
        request.members = vec![MemberIdentity::default().with_member_id(s(&member_id))];
    } else {
        request.member_id = s(&member_id);
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    if version >= 3 {
        assert_eq!(response.members[0].member_id.text(), member_id);
        assert_eq!(response.members[0].error_code, NONE);
    }
    let described = fx.send(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
        5,
    );
    assert!(described.groups[0].members.is_empty(), "the member left");
}

fn describe_groups(fx: &mut Fixture, version: i16) {
    let group = fx.unique("describe");
    let (_, member_id) = fx.stable_group(&group);
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
    let response = fx.send(&request, version);
    let described = &response.groups[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.group_state.text(), "Stable");
    assert_eq!(described.protocol_data.text(), "range");
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].member_id.text(), member_id);
}

fn list_groups(fx: &mut Fixture, version: i16) {
    let group = fx.unique("list");
    fx.stable_group(&group);
    let response = fx.send(&ListGroupsRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    let listed = response
        .groups
        .iter()
        .find(|listed| listed.group_id.text() == group)
        .expect("the group is listed");
    assert_eq!(listed.protocol_type.text(), "consumer");
}

fn api_versions(fx: &mut Fixture, version: i16) {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = s("api-round-trip");
        request.client_software_version = s("1.0");
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    let own = response
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions lists itself");
    assert_eq!((own.min_version, own.max_version), (0, 4));
}

fn create_topics(fx: &mut Fixture, version: i16) {
    let name = fx.unique("create");
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(2)
                .with_replication_factor(1),
        ]);
    let response = fx.send(&request, version);
    let created = &response.topics[0];
    assert_eq!(created.error_code, NONE);
    assert_eq!(created.name.text(), name);
    if version >= 5 {
        assert_eq!(created.num_partitions, 2);
    }
    assert_eq!(fx.partition_count(&name), 2);
}

fn delete_topics(fx: &mut Fixture, version: i16) {
    let name = fx.new_topic("delete", 1);
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if version >= 6 {
        request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(&name)))];
    } else {
        request.topic_names = vec![topic_name(&name)];
    }
    let response = fx.send(&request, version);
    let deleted = &response.responses[0];
    assert_eq!(deleted.error_code, NONE);
    assert_eq!(deleted.name.as_ref().map(|n| n.text()), Some(name.text()));
    // Deleted: creating it again succeeds.
    fx.create_topic(&name, 1);
}

fn delete_records(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("delete-records", 1);
    fx.produce(&topic, 3, None);
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![DeleteRecordsPartition::default().with_offset(2)]),
        ]);
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.low_watermark, 2);
}

fn init_producer_id(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("init");
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(&transactional_id))))
        .with_transaction_timeout_ms(60_000);
    let first = fx.send(&request, version);
    assert_eq!(first.error_code, NONE);
    assert!(first.producer_id.0 >= 0);
    // The same transactional id again: same producer id, next epoch.
    let second = fx.send(&request, version);
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.producer_id, first.producer_id);
    assert_eq!(second.producer_epoch, first.producer_epoch + 1);
}

fn add_partitions_to_txn(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("add-partitions");
    let producer = fx.init_producer(Some(&transactional_id));
    let topic = fx.topic.clone();
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(&transactional_id)))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![0]),
        ]);
    let response = fx.send(&request, version);
    let result = &response.results_by_topic_v3_and_below[0];
    assert_eq!(result.name.text(), topic);
    assert_eq!(result.results_by_partition[0].partition_error_code, NONE);
    fx.abort(&transactional_id, producer);
}

fn add_offsets_to_txn(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("add-offsets");
    let producer = fx.init_producer(Some(&transactional_id));
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&transactional_id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(s("round-trip-group")));
    assert_eq!(fx.send(&request, version).error_code, NONE);
    // The transaction is now ongoing: a wrong epoch is fenced.
    let fenced = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&transactional_id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1 - 1)
        .with_group_id(GroupId(s("round-trip-group")));
    assert_ne!(fx.send(&fenced, version).error_code, NONE);
    fx.abort(&transactional_id, producer);
}

fn end_txn(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("end");
    let producer = fx.init_producer(Some(&transactional_id));
    fx.add_partition_to_txn(&transactional_id, producer);
    let response = fx.send(
        &Fixture::end_txn_request(&transactional_id, producer),
        version,
    );
    assert_eq!(response.error_code, NONE);
    let described = fx.send(
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(&transactional_id))]),
        0,
    );
    let state = described.transaction_states[0].transaction_state.text();
    assert!(matches!(state, "CompleteAbort" | "PrepareAbort"), "{state}");
}

fn txn_offset_commit(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("txn-commit");
    let group = fx.unique("txn-group");
    let producer = fx.init_producer(Some(&transactional_id));
    fx.add_offsets_to_txn(&transactional_id, producer, &group);
    let topic = fx.topic.clone();
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&transactional_id)))
        .with_group_id(GroupId(s(&group)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default().with_committed_offset(1),
                ]),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.topics[0].name.text(), topic);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    fx.abort(&transactional_id, producer);
}

fn describe_configs(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("describe-configs", 1);
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configuration_keys(Some(vec![s("cleanup.policy")])),
    ]);
    let response = fx.send(&request, version);
    let result = &response.results[0];
    assert_eq!(result.error_code, NONE);
    assert_eq!(result.resource_name.text(), topic);
    assert_eq!(result.configs.len(), 1, "only the asked key");
    assert_eq!(result.configs[0].name.text(), "cleanup.policy");
    assert_eq!(
        result.configs[0].value.as_ref().map(|v| v.text()),
        Some("delete")
    );
}

fn alter_configs(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("alter-configs", 1);
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("123456"))),
            ]),
    ]);
    let response = fx.send(&request, version);
    assert_eq!(response.responses[0].error_code, NONE);
    assert_eq!(
        fx.topic_config(&topic, "retention.ms").as_deref(),
        Some("123456")
    );
}

fn describe_log_dirs(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let response = fx.send(
        &DescribeLogDirsRequest::default().with_topics(None),
        version,
    );
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.results.len(), 1, "one data dir");
    let dir = &response.results[0];
    assert_eq!(dir.error_code, NONE);
    let described = dir
        .topics
        .iter()
        .find(|t| t.name.text() == topic)
        .expect("the fixture topic is in the data dir");
    assert!(described.partitions[0].partition_size > 0);
}

fn create_partitions(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("partitions", 1);
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(&topic))
                .with_count(3)
                .with_assignments(None),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.results[0].error_code, NONE);
    assert_eq!(response.results[0].name.text(), topic);
    assert_eq!(fx.partition_count(&topic), 3);
}

fn delete_groups(fx: &mut Fixture, version: i16) {
    let group = fx.unique("delete-group");
    let topic = fx.topic.clone();
    fx.commit_offset(&group, &topic, 1);
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
    let response = fx.send(&request, version);
    assert_eq!(response.results[0].group_id.text(), group);
    assert_eq!(response.results[0].error_code, NONE);
    assert_eq!(
        fx.committed_offset(&group, &topic),
        -1,
        "offsets went with the group"
    );
}

fn incremental_alter_configs(fx: &mut Fixture, version: i16) {
    use kafka_protocol::messages::incremental_alter_configs_request as iac;
    let topic = fx.new_topic("incremental", 1);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        iac::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configs(vec![
                iac::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("654321"))),
            ]),
    ]);
    let response = fx.send(&request, version);
    assert_eq!(response.responses[0].error_code, NONE);
    assert_eq!(
        fx.topic_config(&topic, "retention.ms").as_deref(),
        Some("654321")
    );
}

fn offset_delete(fx: &mut Fixture, version: i16) {
    let group = fx.unique("offset-delete");
    let topic = fx.topic.clone();
    fx.commit_offset(&group, &topic, 1);
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
        ]);
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    assert_eq!(fx.committed_offset(&group, &topic), -1);
}

fn describe_cluster(fx: &mut Fixture, version: i16) {
    let response = fx.send(&DescribeClusterRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, i32::from(fx.port));
    assert_eq!(response.controller_id, response.brokers[0].broker_id);
}

fn describe_producers(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("producers", 1);
    let producer = fx.init_producer(None);
    fx.produce(&topic, 2, Some(producer));
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic_name(&topic))
            .with_partition_indexes(vec![0]),
    ]);
    let response = fx.send(&request, version);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    assert_eq!(partition.active_producers.len(), 1);
    assert_eq!(partition.active_producers[0].producer_id.0, producer.0);
    assert_eq!(partition.active_producers[0].last_sequence, 1);
}

fn describe_transactions(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("describe-txn");
    let producer = fx.init_producer(Some(&transactional_id));
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(&transactional_id))]);
    let response = fx.send(&request, version);
    let state = &response.transaction_states[0];
    assert_eq!(state.error_code, NONE);
    assert_eq!(state.transaction_state.text(), "Empty");
    assert_eq!(state.producer_id.0, producer.0);
}

fn list_transactions(fx: &mut Fixture, version: i16) {
    let transactional_id = fx.unique("list-txn");
    fx.init_producer(Some(&transactional_id));
    let response = fx.send(&ListTransactionsRequest::default(), version);
    assert_eq!(response.error_code, NONE);
    let listed = response
        .transaction_states
        .iter()
        .find(|state| state.transactional_id.text() == transactional_id)
        .expect("the transactional id is listed");
    assert_eq!(listed.transaction_state.text(), "Empty");
}

fn describe_topic_partitions(fx: &mut Fixture, version: i16) {
    let topic = fx.new_topic("dtp", 3);
    let request = DescribeTopicPartitionsRequest::default()
        .with_response_partition_limit(2)
        .with_topics(vec![
            describe_topic_partitions_request::TopicRequest::default()
                .with_name(topic_name(&topic)),
        ]);
    let response = fx.send(&request, version);
    let described = &response.topics[0];
    assert_eq!(described.error_code, NONE);
    assert_eq!(described.partitions.len(), 2, "the page holds the limit");
    let cursor = response.next_cursor.as_ref().expect("a cursor to the rest");
    assert_eq!(
        (cursor.topic_name.text(), cursor.partition_index),
        (topic.text(), 2)
    );
}

fn list_config_resources(fx: &mut Fixture, version: i16) {
    let topic = fx.topic.clone();
    let mut request = ListConfigResourcesRequest::default();
    if version >= 1 {
        request.resource_types = vec![RESOURCE_TOPIC];
    }
    let response = fx.send(&request, version);
    assert_eq!(response.error_code, NONE);
    if version >= 1 {
        assert!(
            response
                .config_resources
                .iter()
                .any(|r| r.resource_name.text() == topic && r.resource_type == RESOURCE_TOPIC)
        );
    } else {
        // v0 is ListClientMetricsResources: shardlog keeps no client-metrics resources.
        assert!(response.config_resources.is_empty());
    }
}

/// A single broker is no Raft quorum: the answer decodes and says UNSUPPORTED_VERSION (35),
/// which Java's `describeMetadataQuorum` reports cleanly (the three-node answer is checked in
/// tests/python/test_cluster.py).
fn describe_quorum(fx: &mut Fixture, version: i16) {
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(topic_name("__cluster_metadata"))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    let response = fx.send(&request, version);
    assert_eq!(
        response.error_code, 35,
        "UNSUPPORTED_VERSION in single-broker mode"
    );
}

type Case = fn(&mut Fixture, i16);

/// One round trip per API the broker may advertise.
const CASES: &[(ApiKey, Case)] = &[
    (ApiKey::Produce, produce),
    (ApiKey::Fetch, fetch),
    (ApiKey::ListOffsets, list_offsets),
    (ApiKey::Metadata, metadata),
    (ApiKey::OffsetCommit, offset_commit),
    (ApiKey::OffsetFetch, offset_fetch),
    (ApiKey::FindCoordinator, find_coordinator),
    (ApiKey::JoinGroup, join_group),
    (ApiKey::Heartbeat, heartbeat),
    (ApiKey::LeaveGroup, leave_group),
    (ApiKey::SyncGroup, sync_group),
    (ApiKey::DescribeGroups, describe_groups),
    (ApiKey::ListGroups, list_groups),
    (ApiKey::ApiVersions, api_versions),
    (ApiKey::CreateTopics, create_topics),
    (ApiKey::DeleteTopics, delete_topics),
    (ApiKey::DeleteRecords, delete_records),
    (ApiKey::InitProducerId, init_producer_id),
    (ApiKey::AddPartitionsToTxn, add_partitions_to_txn),
    (ApiKey::AddOffsetsToTxn, add_offsets_to_txn),
    (ApiKey::EndTxn, end_txn),
    (ApiKey::TxnOffsetCommit, txn_offset_commit),
    (ApiKey::DescribeConfigs, describe_configs),
    (ApiKey::AlterConfigs, alter_configs),
    (ApiKey::DescribeLogDirs, describe_log_dirs),
    (ApiKey::CreatePartitions, create_partitions),
    (ApiKey::DeleteGroups, delete_groups),
    (ApiKey::IncrementalAlterConfigs, incremental_alter_configs),
    (ApiKey::OffsetDelete, offset_delete),
    (ApiKey::DescribeCluster, describe_cluster),
    (ApiKey::DescribeProducers, describe_producers),
    (ApiKey::DescribeTransactions, describe_transactions),
    (ApiKey::ListTransactions, list_transactions),
    (ApiKey::DescribeTopicPartitions, describe_topic_partitions),
    (ApiKey::ListConfigResources, list_config_resources),
    (ApiKey::DescribeQuorum, describe_quorum),
];

/// The broker's advertised table: key -> (min, max).
fn advertised_table(fx: &mut Fixture) -> BTreeMap<i16, (i16, i16)> {
    let response = fx.send(&ApiVersionsRequest::default(), 0);
    assert_eq!(response.error_code, NONE);
    response
        .api_keys
        .iter()
        .map(|api| (api.api_key, (api.min_version, api.max_version)))
        .collect()
}

fn fixture(broker: &Broker) -> Fixture {
    let mut fx = Fixture {
        port: broker.port,
        stream: connect(broker.port),
        correlation_id: 0,
        unique: 0,
        topic: String::new(),
    };
    fx.topic = fx.new_topic("fixture", 1);
    fx.produce(&fx.topic.clone(), FIXTURE_RECORDS, None);
    fx
}

#[test]
fn every_advertised_min_and_max_version_round_trips() {
    let broker = start_broker("round-trips");
    let mut fx = fixture(&broker);
    let advertised = advertised_table(&mut fx);
    let mut failures = Vec::new();
    for (&key, &(min, max)) in &advertised {
        let Some((api, case)) = CASES.iter().find(|(api, _)| *api as i16 == key) else {
            failures.push(format!("api {key} is advertised without a round-trip case"));
            continue;
        };
        let mut versions = vec![min, max];
        versions.dedup();
        for version in versions {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&mut fx, version)));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|m| m.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{api:?} v{version}: {message}"));
                // A failed case may leave the connection mid-response: start afresh.
                fx.stream = connect(broker.port);
            }
        }
    }
    for (api, _) in CASES {
        if !advertised.contains_key(&(*api as i16)) {
            failures.push(format!(
                "{api:?} has a round-trip case but is not advertised"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A request below an API's advertised minimum (a version Kafka 4.0 removed) closes the
/// connection, as Kafka does: there is no response layout to answer it in. The broker
/// keeps serving other connections.
#[test]
fn versions_below_the_minimum_close_the_connection() {
    let broker = start_broker("below-minimum");
    let mut fx = fixture(&broker);
    let advertised = advertised_table(&mut fx);
    let below: Vec<(i16, i16)> = advertised
        .iter()
        .filter(|(_, (min, _))| *min > 0)
        .map(|(&key, &(min, _))| (key, min - 1))
        .collect();
    assert!(
        below.iter().any(|&(key, _)| key == ApiKey::Produce as i16),
        "Produce v0-v2 are gone in Kafka 4.0"
    );
    for (key, version) in below {
        let mut stream = connect(broker.port);
        let mut frame = Vec::new();
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(7);
        frame.put_i16(-1); // null client id
        let mut bytes = Vec::new();
        bytes.put_i32(frame.len() as i32);
        bytes.extend_from_slice(&frame);
        stream.write_all(&bytes).expect("send");
        let mut buffer = [0u8; 1];
        let read = stream.read(&mut buffer);
        assert!(
            matches!(read, Ok(0))
                || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "api {key} v{version}: expected the connection closed, got {read:?}"
        );
    }
    assert!(
        !advertised_table(&mut fx).is_empty(),
        "the broker still answers"
    );
}
