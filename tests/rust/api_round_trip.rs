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
    /// A SASL_PLAINTEXT listener (SCRAM-SHA-256 and PLAIN) with the user
    /// `SASL_USER`/`SASL_PASSWORD`.
    sasl_port: u16,
}

/// The bootstrap SCRAM user of the round-trip broker.
const SASL_USER: &str = "round-trip";
const SASL_PASSWORD: &str = "round-trip-secret";

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
    let sasl_port = std::iter::repeat_with(free_port)
        .find(|&p| p != port && p != admin_port)
        .expect("a third free port");
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "2"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--listen",
            &format!("SASL_PLAINTEXT://127.0.0.1:{sasl_port}"),
        ])
        .args(["--sasl-mechanisms", "SCRAM-SHA-256,PLAIN"])
        .arg("--sasl-plain-over-plaintext-allowed")
        .args([
            "--add-scram",
            &format!("SCRAM-SHA-256=[name={SASL_USER},password={SASL_PASSWORD}]"),
        ])
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
    Broker {
        child,
        port,
        sasl_port,
    }
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
    sasl_port: u16,
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

    /// Runs `work` on a fresh connection to the SASL listener, then returns to the
    /// PLAINTEXT one.
    fn on_sasl_connection<T>(&mut self, work: impl FnOnce(&mut Fixture) -> T) -> T {
        let plaintext = std::mem::replace(&mut self.stream, connect(self.sasl_port));
        let outcome = work(self);
        self.stream = plaintext;
        outcome
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

#[path = "api_round_trip_cases.rs"]
mod cases;
use cases::CASES;

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
        sasl_port: broker.sasl_port,
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
