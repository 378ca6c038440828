//! The controller protocol's frames (docs/cluster.md "Controller protocol"): a 4-byte
//! big-endian length, then a 1-byte kind and its body. Pure encode/decode plus blocking
//! read/write on any `Read`/`Write`.
//!
//! Owns: the wire format of hello, raft, request and response frames. May import:
//! `crate::cluster::records` (ids), `crate::cluster::partition_changes::AlterPartitionRequest`,
//! `crate::cluster::leader_elections` (ElectLeaders' election type and results),
//! the `raft` crate's protobuf `Message`. No threads.
//! Invariants: decoding untrusted bytes never panics; a frame longer than the configured
//! limit is refused before its body is read.

use super::topics::ClusterTopics;
pub use crate::cluster::leader_elections::{ElectionResult, ElectionType};
use crate::cluster::partition_changes::AlterPartitionRequest;
pub use crate::cluster::reassignments::ReassignmentRequest;
use crate::cluster::records::{Listener, NodeId, Uuid};
use protobuf::Message as _;
use raft::prelude::Message as RaftMessage;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Arc;

#[path = "frame_metadata.rs"]
mod metadata_chunk;
#[path = "frame_reader.rs"]
mod reader;
#[path = "frame_request.rs"]
mod request;
pub use metadata_chunk::MetadataChunk;
use metadata_chunk::{decode_optional_chunk, encode_optional_chunk};
use reader::Reader;
use request::{decode_request, encode_request};

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_REQUEST: u8 = 3;
const KIND_RESPONSE: u8 = 4;
const REQUEST_REGISTER: u8 = 1;
const REQUEST_HEARTBEAT: u8 = 2;
const REQUEST_CREATE_TOPICS: u8 = 3;
const REQUEST_DELETE_TOPICS: u8 = 4;
const REQUEST_CREATE_PARTITIONS: u8 = 5;
const REQUEST_ALLOCATE_PRODUCER_IDS: u8 = 6;
const REQUEST_ALTER_TOPIC_CONFIGS: u8 = 7;
const REQUEST_ALTER_PARTITION: u8 = 8;
const REQUEST_ELECT_LEADERS: u8 = 9;
const REQUEST_ALTER_REASSIGNMENTS: u8 = 10;
const REQUEST_FETCH_METADATA: u8 = 11;
const REQUEST_ALTER_GROUP_CONFIGS: u8 = 12;
/// Version of the hello frame; a peer speaking another is refused. 1: Register and Response
/// carry the cluster id. 2: CreateTopics, DeleteTopics, CreatePartitions, AllocateProducerIds
/// and AlterTopicConfigs requests, and the Response's per-topic results and producer-id block.
/// 3: the AlterPartition request and the Response's partition state. 4: the ElectLeaders
/// request and the Response's per-partition election results. 5: the AlterReassignments
/// request. 6: a broker endpoint carries every listener (name, host, port, security
/// protocol) after its rack, and Register the previous broker epoch of a clean shutdown
/// (KIP-966). 7: the FetchMetadata request and the Response's metadata chunk (observers).
/// 8: the AlterGroupConfigs request.
pub const PROTOCOL_VERSION: u16 = 8;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes exceeds cluster.controller_frame_bytes_max ({max})")]
    TooLarge { size: u64, max: u64 },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// A broker endpoint as the controller protocol carries it: `host`/`port` are its
/// inter-broker listener's (what other brokers connect to), `listeners` every Kafka
/// listener with its advertised address (what clients are told, per listener name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub listeners: Vec<Listener>,
}

impl BrokerEndpoint {
    /// Host and port of this broker's listener named `name`, if it has one. A broker that
    /// registered no listener list (older registrations) is reached as PLAINTEXT.
    pub fn address_for(&self, name: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return (name == "PLAINTEXT").then_some((self.host.as_str(), self.port));
        }
        self.listeners
            .iter()
            .find(|listener| listener.name == name)
            .map(|listener| (listener.host.as_str(), listener.port))
    }
}

/// What a broker sees of the cluster: the live (unfenced) brokers and the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// The cluster id in the metadata log, once the first active controller wrote it.
    pub cluster_id: Option<Uuid>,
    /// The raft leader, -1 when none is known.
    pub controller_id: NodeId,
    pub brokers: Vec<BrokerEndpoint>,
    /// The metadata quorum as its raft leader sees it; `Some` only on the leader's own
    /// shards (never on the wire: DescribeQuorum is answered by the leader).
    pub quorum: Option<QuorumState>,
    /// The topics of the applied image (never on the wire; a broker-only node builds them
    /// from the image it observes, `super::observer`).
    pub topics: Arc<ClusterTopics>,
}

/// The metadata quorum seen by its raft leader, for DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumState {
    pub leader_id: NodeId,
    /// The raft term.
    pub leader_epoch: i64,
    /// The raft commit index.
    pub high_watermark: i64,
    pub voters: Vec<VoterProgress>,
    /// Registered broker-only nodes observing the log (`log_end_offset`: the index they had
    /// applied at their last fetch).
    pub observers: Vec<VoterProgress>,
}

/// One voter as the leader tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterProgress {
    pub node_id: NodeId,
    /// The raft matched index (the leader's own last index for itself).
    pub log_end_offset: i64,
    /// Wall-clock ms of the last raft message from it, -1 if none yet.
    pub last_fetch_timestamp: i64,
    /// Wall-clock ms when its matched index last reached the commit index, -1 if never.
    pub last_caught_up_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerRequest {
    Register {
        node_id: NodeId,
        incarnation_id: Uuid,
        endpoint: BrokerEndpoint,
        /// The cluster this node's data dir belongs to, if it has joined one before.
        cluster_id: Option<Uuid>,
        /// The epoch of the previous process's clean shutdown (Kafka's `PreviousBrokerEpoch`,
        /// KIP-966); `None` after a crash or on a first start.
        previous_broker_epoch: Option<i64>,
    },
    Heartbeat {
        node_id: NodeId,
        broker_epoch: i64,
        caught_up: bool,
        want_fence: bool,
    },
    /// Kafka CreateTopics, forwarded by a broker; `validate_only` decides without creating.
    CreateTopics {
        topics: Vec<TopicCreation>,
        validate_only: bool,
    },
    /// Kafka DeleteTopics by name.
    DeleteTopics { names: Vec<String> },
    /// Kafka CreatePartitions; `validate_only` decides without creating.
    CreatePartitions {
        topics: Vec<PartitionsCreation>,
        validate_only: bool,
    },
    /// Kafka AllocateProducerIds: the next block of producer ids for a registered broker at
    /// its current epoch, starting at `floor` or above (ids below it may have been handed
    /// out by the broker before it joined the cluster).
    AllocateProducerIds {
        node_id: NodeId,
        broker_epoch: i64,
        floor: i64,
    },
    /// Kafka IncrementalAlterConfigs (SET and DELETE) of one topic's configs: `(name,
    /// Some(value))` sets, `(name, None)` deletes; `validate_only` decides without altering.
    AlterTopicConfigs {
        topic: String,
        alterations: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// Kafka IncrementalAlterConfigs of one group's configs (GROUP resource), as
    /// `AlterTopicConfigs`; answered with one result named after the group.
    AlterGroupConfigs {
        group: String,
        alterations: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// Kafka AlterPartition (API 56), one partition: its leader asks for a new ISR.
    AlterPartition {
        topic_id: Uuid,
        partition: i32,
        request: AlterPartitionRequest,
    },
    /// Kafka ElectLeaders (API 43): topic → partitions, `None` for every partition.
    ElectLeaders {
        election_type: ElectionType,
        partitions: Option<BTreeMap<String, BTreeSet<i32>>>,
    },
    /// Kafka AlterPartitionReassignments (API 45): per partition a target replica list, or
    /// `None` to cancel.
    AlterReassignments {
        reassignments: Vec<ReassignmentRequest>,
    },
    /// An observer (broker-only node) asks any voter for the committed metadata after the
    /// index it applied (0: it has nothing yet). Answered without the active controller.
    FetchMetadata { node_id: NodeId, after_index: u64 },
}

/// A partition's leader and ISR as an AlterPartition answer carries them: after the change
/// committed, or as they are when the request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlteredPartition {
    /// -1: no leader.
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// A block of producer ids handed to one broker: `first_producer_id ..
/// first_producer_id + size`, never handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first_producer_id: i64,
    pub size: i64,
}

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCreation {
    pub name: String,
    /// -1: the controller's `cluster.default_partitions`.
    pub num_partitions: i32,
    /// -1: the controller's `cluster.default_replication_factor`.
    pub replication_factor: i16,
    /// Explicit placement, partition → replicas (first is the preferred leader); may be empty.
    pub assignments: BTreeMap<i32, Vec<NodeId>>,
    pub configs: BTreeMap<String, String>,
}

/// One topic of a CreatePartitions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionsCreation {
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Replicas of each new partition, in order; empty: the controller places them.
    pub assignments: Vec<Vec<NodeId>>,
}

/// The outcome of one topic of a topic request, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicResult {
    pub name: String,
    /// Kafka error code, 0 = none.
    pub error_code: i16,
    pub message: Option<String>,
    /// The topic's id; zero when unknown (a failure, or a validate-only creation).
    pub topic_id: Uuid,
    /// The topic's partition count after the request, -1 when unknown.
    pub num_partitions: i32,
    /// Replicas per partition, -1 when unknown.
    pub replication_factor: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerResponse {
    /// Kafka error code (0 = none; NOT_CONTROLLER with `leader_hint`).
    pub error_code: i16,
    /// The controller the answering node knows of, -1 if none.
    pub leader_hint: NodeId,
    pub broker_epoch: i64,
    pub view: ClusterView,
    /// Per-topic results of a topic request, in request order (empty for other requests).
    pub topics: Vec<TopicResult>,
    /// The block an AllocateProducerIds request got, once its record is applied (`None` for
    /// every other request and for a refusal).
    pub producer_ids: Option<ProducerIdBlock>,
    /// The partition state an AlterPartition request got, once its record (if any) is applied
    /// (`None` for every other request and for a refusal).
    pub partition: Option<AlteredPartition>,
    /// Per-partition results of an ElectLeaders or AlterPartitionReassignments request
    /// (empty for every other request).
    pub partition_results: Vec<ElectionResult>,
    /// The committed metadata a FetchMetadata request got (`None` for every other request).
    pub metadata: Option<MetadataChunk>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello {
        version: u16,
        node_id: NodeId,
    },
    Raft(RaftMessage),
    Request {
        correlation: u64,
        request: ControllerRequest,
    },
    Response {
        correlation: u64,
        response: ControllerResponse,
    },
}

impl Frame {
    /// The frame with its length prefix.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = vec![0u8; 4];
        match self {
            Frame::Hello { version, node_id } => {
                out.push(KIND_HELLO);
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&node_id.to_be_bytes());
            }
            Frame::Raft(message) => {
                out.push(KIND_RAFT);
                let bytes = message
                    .write_to_bytes()
                    .map_err(|e| FrameError::Malformed(e.to_string()))?;
                out.extend_from_slice(&bytes);
            }
            Frame::Request {
                correlation,
                request,
            } => {
                out.push(KIND_REQUEST);
                out.extend_from_slice(&correlation.to_be_bytes());
                encode_request(request, &mut out)?;
            }
            Frame::Response {
                correlation,
                response,
            } => {
                out.push(KIND_RESPONSE);
                out.extend_from_slice(&correlation.to_be_bytes());
                out.extend_from_slice(&response.error_code.to_be_bytes());
                out.extend_from_slice(&response.leader_hint.to_be_bytes());
                out.extend_from_slice(&response.broker_epoch.to_be_bytes());
                encode_optional_uuid(response.view.cluster_id.as_ref(), &mut out);
                out.extend_from_slice(&response.view.controller_id.to_be_bytes());
                encode_list(&response.view.brokers, &mut out, encode_endpoint)?;
                encode_list(&response.topics, &mut out, encode_topic_result)?;
                encode_optional_block(response.producer_ids.as_ref(), &mut out);
                encode_optional_partition(response.partition.as_ref(), &mut out)?;
                encode_list(
                    &response.partition_results,
                    &mut out,
                    encode_election_result,
                )?;
                encode_optional_chunk(response.metadata.as_ref(), &mut out)?;
            }
        }
        let length = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&length.to_be_bytes());
        Ok(out)
    }

    /// Decodes a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Frame, FrameError> {
        let mut reader = Reader(body);
        let frame = match reader.u8()? {
            KIND_HELLO => Frame::Hello {
                version: reader.u16()?,
                node_id: reader.i32()?,
            },
            KIND_RAFT => {
                let message = RaftMessage::parse_from_bytes(reader.0)
                    .map_err(|e| FrameError::Malformed(format!("raft message: {e}")))?;
                reader.0 = &[];
                Frame::Raft(message)
            }
            KIND_REQUEST => Frame::Request {
                correlation: reader.u64()?,
                request: decode_request(&mut reader)?,
            },
            KIND_RESPONSE => {
                let correlation = reader.u64()?;
                let error_code = reader.i16()?;
                let leader_hint = reader.i32()?;
                let broker_epoch = reader.i64()?;
                let cluster_id = decode_optional_uuid(&mut reader)?;
                let controller_id = reader.i32()?;
                let brokers = reader.list(MIN_ENDPOINT_BYTES, "brokers", decode_endpoint)?;
                let topics =
                    reader.list(MIN_TOPIC_RESULT_BYTES, "topic results", decode_topic_result)?;
                let producer_ids = decode_optional_block(&mut reader)?;
                let partition = decode_optional_partition(&mut reader)?;
                let partition_results = reader.list(
                    MIN_ELECTION_RESULT_BYTES,
                    "partition results",
                    decode_election_result,
                )?;
                let metadata = decode_optional_chunk(&mut reader)?;
                Frame::Response {
                    correlation,
                    response: ControllerResponse {
                        error_code,
                        leader_hint,
                        broker_epoch,
                        view: ClusterView {
                            cluster_id,
                            controller_id,
                            brokers,
                            quorum: None,
                            topics: Arc::default(),
                        },
                        topics,
                        producer_ids,
                        partition,
                        partition_results,
                        metadata,
                    },
                }
            }
            kind => return Err(FrameError::Malformed(format!("unknown frame kind {kind}"))),
        };
        if !reader.0.is_empty() {
            return Err(FrameError::Malformed(format!(
                "{} trailing bytes",
                reader.0.len()
            )));
        }
        Ok(frame)
    }
}

// Smallest encodings, so a declared count is checked against the bytes left before anything
// is allocated: a string is at least its 2-byte length, a list its 4-byte count.
const MIN_ENDPOINT_BYTES: usize = 4 + 2 + 2 + 2 + 4;
const MIN_TOPIC_RESULT_BYTES: usize = 2 + 2 + 2 + 16 + 4 + 2;
const MIN_TOPIC_CREATION_BYTES: usize = 2 + 4 + 2 + 4 + 4;
const MIN_PARTITIONS_CREATION_BYTES: usize = 2 + 4 + 4;
const MIN_ASSIGNMENT_BYTES: usize = 4 + 4;
const MIN_CONFIG_BYTES: usize = 2 + 2;
const MIN_ALTERATION_BYTES: usize = 2 + 2;
const MIN_STRING_BYTES: usize = 2;
const MIN_REPLICAS_BYTES: usize = 4;
const NODE_BYTES: usize = 4;
const NODE_EPOCH_BYTES: usize = 4 + 8;
const MIN_ELECTION_RESULT_BYTES: usize = 2 + 4 + 2;
const MIN_ELECTION_TOPIC_BYTES: usize = 2 + 4;
/// A reassignment: topic name (length), partition, target flag.
const MIN_REASSIGNMENT_BYTES: usize = 2 + 4 + 1;

/// `name, num_partitions i32, replication_factor i16, count u32, (partition i32, replicas)
/// × count, count u32, (key, value) × count`.
fn encode_topic_creation(topic: &TopicCreation, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode_string(&topic.name, out)?;
    out.extend_from_slice(&topic.num_partitions.to_be_bytes());
    out.extend_from_slice(&topic.replication_factor.to_be_bytes());
    let assignments: Vec<_> = topic.assignments.iter().collect();
    encode_list(&assignments, out, |(partition, replicas), out| {
        out.extend_from_slice(&partition.to_be_bytes());
        encode_nodes(replicas, out)
    })?;
    let configs: Vec<_> = topic.configs.iter().collect();
    encode_list(&configs, out, |(key, value), out| {
        encode_string(key, out)?;
        encode_string(value, out)
    })
}

fn decode_topic_creation(reader: &mut Reader<'_>) -> Result<TopicCreation, FrameError> {
    let name = reader.required_string("topic name")?;
    let num_partitions = reader.i32()?;
    let replication_factor = reader.i16()?;
    let assignments = reader.list(MIN_ASSIGNMENT_BYTES, "assignments", |reader| {
        Ok((reader.i32()?, decode_nodes(reader)?))
    })?;
    let configs = reader.list(MIN_CONFIG_BYTES, "configs", |reader| {
        Ok((
            reader.required_string("config name")?,
            reader.required_string("config value")?,
        ))
    })?;
    Ok(TopicCreation {
        name,
        num_partitions,
        replication_factor,
        assignments: unique_map(assignments, "assignment partition")?,
        configs: unique_map(configs, "config")?,
    })
}

/// `name, error_code i16, message, topic_id [16], num_partitions i32, replication_factor i16`.
fn encode_topic_result(topic: &TopicResult, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode_string(&topic.name, out)?;
    out.extend_from_slice(&topic.error_code.to_be_bytes());
    encode_optional_string(topic.message.as_deref(), out)?;
    out.extend_from_slice(&topic.topic_id);
    out.extend_from_slice(&topic.num_partitions.to_be_bytes());
    out.extend_from_slice(&topic.replication_factor.to_be_bytes());
    Ok(())
}

fn decode_topic_result(reader: &mut Reader<'_>) -> Result<TopicResult, FrameError> {
    Ok(TopicResult {
        name: reader.required_string("topic name")?,
        error_code: reader.i16()?,
        message: reader.string()?,
        topic_id: reader.array()?,
        num_partitions: reader.i32()?,
        replication_factor: reader.i16()?,
    })
}

/// `topic, partition i32, error_code i16`.
fn encode_election_result(result: &ElectionResult, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode_string(&result.topic, out)?;
    out.extend_from_slice(&result.partition.to_be_bytes());
    out.extend_from_slice(&result.error_code.to_be_bytes());
    Ok(())
}

fn decode_election_result(reader: &mut Reader<'_>) -> Result<ElectionResult, FrameError> {
    Ok(ElectionResult {
        topic: reader.required_string("topic name")?,
        partition: reader.i32()?,
        error_code: reader.i16()?,
    })
}

/// A map from decoded pairs; a key given twice is malformed (a map would keep only one).
fn unique_map<K: Ord + std::fmt::Debug, V>(
    pairs: Vec<(K, V)>,
    what: &str,
) -> Result<BTreeMap<K, V>, FrameError> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if map.contains_key(&key) {
            return Err(FrameError::Malformed(format!("{what} {key:?} given twice")));
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// A `u32` count and the items (`Reader::list` reads it back).
fn encode_list<T>(
    items: &[T],
    out: &mut Vec<u8>,
    mut item: impl FnMut(&T, &mut Vec<u8>) -> Result<(), FrameError>,
) -> Result<(), FrameError> {
    let count = u32::try_from(items.len())
        .map_err(|_| FrameError::Malformed(format!("a list of {} entries", items.len())))?;
    out.extend_from_slice(&count.to_be_bytes());
    items.iter().try_for_each(|value| item(value, out))
}

fn encode_nodes(nodes: &[NodeId], out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode_list(nodes, out, |node, out| {
        out.extend_from_slice(&node.to_be_bytes());
        Ok(())
    })
}

fn decode_nodes(reader: &mut Reader<'_>) -> Result<Vec<NodeId>, FrameError> {
    reader.list(NODE_BYTES, "replicas", |reader| reader.i32())
}

/// `0` for none, or `1` and the 16 bytes.
fn encode_optional_uuid(uuid: Option<&Uuid>, out: &mut Vec<u8>) {
    match uuid {
        None => out.push(0),
        Some(uuid) => {
            out.push(1);
            out.extend_from_slice(uuid);
        }
    }
}

fn decode_optional_uuid(reader: &mut Reader<'_>) -> Result<Option<Uuid>, FrameError> {
    match reader.u8()? {
        0 => Ok(None),
        1 => {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(reader.take(16)?);
            Ok(Some(uuid))
        }
        flag => Err(FrameError::Malformed(format!("uuid flag {flag}"))),
    }
}

/// `0` for none, or `1`, `first_producer_id i64` and `size i64`.
fn encode_optional_block(block: Option<&ProducerIdBlock>, out: &mut Vec<u8>) {
    match block {
        None => out.push(0),
        Some(block) => {
            out.push(1);
            out.extend_from_slice(&block.first_producer_id.to_be_bytes());
            out.extend_from_slice(&block.size.to_be_bytes());
        }
    }
}

fn decode_optional_block(reader: &mut Reader<'_>) -> Result<Option<ProducerIdBlock>, FrameError> {
    if !reader.flag()? {
        return Ok(None);
    }
    Ok(Some(ProducerIdBlock {
        first_producer_id: reader.i64()?,
        size: reader.i64()?,
    }))
}

/// `0` for none, or `1`, `leader i32, leader_epoch i32, partition_epoch i32` and the ISR.
fn encode_optional_partition(
    partition: Option<&AlteredPartition>,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let Some(partition) = partition else {
        out.push(0);
        return Ok(());
    };
    out.push(1);
    out.extend_from_slice(&partition.leader.to_be_bytes());
    out.extend_from_slice(&partition.leader_epoch.to_be_bytes());
    out.extend_from_slice(&partition.partition_epoch.to_be_bytes());
    encode_nodes(&partition.isr, out)
}

fn decode_optional_partition(
    reader: &mut Reader<'_>,
) -> Result<Option<AlteredPartition>, FrameError> {
    if !reader.flag()? {
        return Ok(None);
    }
    Ok(Some(AlteredPartition {
        leader: reader.i32()?,
        leader_epoch: reader.i32()?,
        partition_epoch: reader.i32()?,
        isr: decode_nodes(reader)?,
    }))
}

/// `i16 length` + UTF-8; a string longer than `i16::MAX` bytes cannot be sent.
fn encode_string(text: &str, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let length = i16::try_from(text.len())
        .map_err(|_| FrameError::Malformed(format!("a string of {} bytes", text.len())))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn encode_optional_string(text: Option<&str>, out: &mut Vec<u8>) -> Result<(), FrameError> {
    match text {
        Some(text) => encode_string(text, out),
        None => {
            out.extend_from_slice(&(-1i16).to_be_bytes());
            Ok(())
        }
    }
}

fn encode_endpoint(endpoint: &BrokerEndpoint, out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.extend_from_slice(&endpoint.node_id.to_be_bytes());
    encode_string(&endpoint.host, out)?;
    out.extend_from_slice(&endpoint.port.to_be_bytes());
    encode_optional_string(endpoint.rack.as_deref(), out)?;
    encode_list(&endpoint.listeners, out, |listener, out| {
        encode_string(&listener.name, out)?;
        encode_string(&listener.host, out)?;
        out.extend_from_slice(&listener.port.to_be_bytes());
        out.extend_from_slice(&listener.security_protocol.to_be_bytes());
        Ok(())
    })
}

fn decode_endpoint(reader: &mut Reader<'_>) -> Result<BrokerEndpoint, FrameError> {
    Ok(BrokerEndpoint {
        node_id: reader.i32()?,
        host: reader.string()?.unwrap_or_default(),
        port: reader.u16()?,
        rack: reader.string()?,
        // Two empty strings, a port and a protocol: at least 8 bytes a listener.
        listeners: reader.list(8, "listeners", |reader| {
            Ok(Listener {
                name: reader.string()?.unwrap_or_default(),
                host: reader.string()?.unwrap_or_default(),
                port: reader.u16()?,
                security_protocol: reader.i16()?,
            })
        })?,
    })
}

/// Reads one frame; `max` bounds its declared length before anything is allocated.
pub fn read_frame(stream: &mut impl Read, max: u64) -> Result<Frame, FrameError> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let size = u64::from(u32::from_be_bytes(length));
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body)?;
    Frame::decode(&body)
}

pub fn write_frame(stream: &mut impl Write, frame: &Frame) -> Result<(), FrameError> {
    stream.write_all(&frame.encode()?)?;
    Ok(())
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
