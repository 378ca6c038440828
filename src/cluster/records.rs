//! Typed cluster-metadata records and their binary codec.
//!
//! Owns: the record types every broker applies in log order, and their wire form inside a
//! metadata-log entry. May import: `crate::metadata::TopicId` only. No I/O.
//! Invariants: every encoded record starts with a header `[record type: u16 BE][version: u16
//! BE]`; decoding arbitrary bytes returns a `RecordDecodeError` and never panics nor allocates
//! more than the bytes it was given can describe (counts are checked against the bytes left).
//!
//! Field encodings (all big-endian): `i8/i16/i32/i64` fixed width; `bool` one byte 0/1; a
//! string is `u16 length` + UTF-8; bytes are `u32 length` + bytes; a list is `u32 count` +
//! elements; an option is a `u8` flag (0 absent, 1 present) + the value; a node id that may
//! be absent (a partition leader) is an `i32` with -1 for "none".

use crate::metadata::TopicId;
use thiserror::Error;

/// A broker's node id (`node.id` in Kafka).
pub type NodeId = i32;
/// A 16-byte UUID: a broker incarnation id, an ACL id, a cluster id.
pub type Uuid = [u8; 16];

/// Node id on the wire meaning "no leader".
pub const NO_LEADER: i32 = -1;
/// Leader field of a `PartitionChange` meaning "leader unchanged" (Kafka's -2).
pub const LEADER_UNCHANGED: i32 = -2;
/// Resource type of a topic config, as Kafka's `ConfigResource.Type.TOPIC`.
const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// Resource type of a broker config, as Kafka's `ConfigResource.Type.BROKER`.
const CONFIG_RESOURCE_BROKER: i8 = 4;
/// Resource type of a group config, as Kafka's `ConfigResource.Type.GROUP`.
const CONFIG_RESOURCE_GROUP: i8 = 32;

/// The version this build writes for a record type with nothing of a newer version to carry.
/// Decoding refuses versions newer than `RECORD_VERSION_MAX`.
pub const RECORD_VERSION: u16 = 0;
/// The newest version this build reads: version 1 of `Partition` and `PartitionChange` adds
/// the reassignment's adding and removing replicas (written only when a record carries
/// them, so logs without reassignments stay readable by builds that read version 0 only).
pub const RECORD_VERSION_MAX: u16 = 1;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordDecodeError {
    #[error("record truncated: needed {needed} more bytes, {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    #[error("unknown metadata record type {0}")]
    UnknownType(u16),
    #[error("metadata record type {record_type} version {version} is newer than this build")]
    UnsupportedVersion { record_type: u16, version: u16 },
    #[error("{0} bytes after the end of the record")]
    TrailingBytes(usize),
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("field `{field}`: {reason}")]
    InvalidValue {
        field: &'static str,
        reason: &'static str,
    },
    #[error("count {count} for `{field}` exceeds what {remaining} remaining bytes can hold")]
    CountTooLarge {
        field: &'static str,
        count: u64,
        remaining: usize,
    },
}

/// One endpoint a broker listens on (Kafka's `BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id (PLAINTEXT 0, SSL 1, SASL_PLAINTEXT 2, SASL_SSL 3).
    pub security_protocol: i16,
}

/// A broker (re-)registration. A new incarnation (process start) gets a new, higher epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub node_id: NodeId,
    pub incarnation_id: Uuid,
    /// Increases with every registration in the cluster (not only this node's).
    pub broker_epoch: i64,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// A registering broker starts fenced; a snapshot records the current state.
    pub fenced: bool,
}

/// Fences or unfences the registration `(node_id, broker_epoch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerFencingRecord {
    pub node_id: NodeId,
    pub broker_epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub topic_id: TopicId,
    pub name: String,
}

/// The full state of one partition: written when it is created and in snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// Eligible leader replicas (KIP-966): out of the ISR but known to hold the committed data.
    pub elr: Vec<NodeId>,
    pub last_known_elr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas being added (not yet in the ISR) and
    /// replicas to remove once they are; both empty otherwise. Written from version 1.
    pub adding_replicas: Vec<NodeId>,
    pub removing_replicas: Vec<NodeId>,
}

/// What a `PartitionChange` does to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderChange {
    Unchanged,
    /// No leader: the partition is offline.
    None,
    To(NodeId),
}

/// A change to an existing partition; `None` fields are unchanged. The new epochs are
/// explicit so that applying the record can check they only grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader: LeaderChange,
    pub replicas: Option<Vec<NodeId>>,
    pub isr: Option<Vec<NodeId>>,
    pub elr: Option<Vec<NodeId>>,
    pub last_known_elr: Option<Vec<NodeId>>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The reassignment's replicas being added and removed (see `PartitionRecord`);
    /// written from version 1.
    pub adding_replicas: Option<Vec<NodeId>>,
    pub removing_replicas: Option<Vec<NodeId>>,
}

/// Whose config a `ConfigChange` sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    Topic(String),
    Broker(NodeId),
    /// The cluster-wide default for broker configs (Kafka's empty broker resource name).
    BrokerDefault,
    /// A consumer group's overrides (Kafka's GROUP resource, KIP-848 `GroupConfig`).
    Group(String),
}

/// Sets (`value` present) or deletes (`value` absent) one config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChangeRecord {
    pub resource: ConfigResource,
    pub name: String,
    pub value: Option<String>,
}

/// A block of producer ids `[first_producer_id, first_producer_id + size)` handed to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdsBlockRecord {
    pub node_id: NodeId,
    pub broker_epoch: i64,
    pub first_producer_id: i64,
    pub size: i64,
}

/// An ACL binding (Kafka's `AccessControlEntryRecord`); stored for the security issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlEntryRecord {
    pub id: Uuid,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

/// A SCRAM credential (Kafka's `UserScramCredentialRecord`); stored for the security issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// One entry of the cluster metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// The cluster this log belongs to; written first, never changed.
    ClusterId(Uuid),
    /// A feature's finalized level (`metadata.version` and friends).
    FeatureLevel {
        name: String,
        level: i16,
    },
    RegisterBroker(RegisterBrokerRecord),
    FenceBroker(BrokerFencingRecord),
    UnfenceBroker(BrokerFencingRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic {
        topic_id: TopicId,
    },
    ConfigChange(ConfigChangeRecord),
    ProducerIdsBlock(ProducerIdsBlockRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry {
        id: Uuid,
    },
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
}

/// Record type ids on the wire. Never reuse a number.
mod record_type {
    pub const CLUSTER_ID: u16 = 1;
    pub const FEATURE_LEVEL: u16 = 2;
    pub const REGISTER_BROKER: u16 = 3;
    pub const FENCE_BROKER: u16 = 4;
    pub const UNFENCE_BROKER: u16 = 5;
    pub const TOPIC: u16 = 6;
    pub const PARTITION: u16 = 7;
    pub const PARTITION_CHANGE: u16 = 8;
    pub const REMOVE_TOPIC: u16 = 9;
    pub const CONFIG_CHANGE: u16 = 10;
    pub const PRODUCER_IDS_BLOCK: u16 = 11;
    pub const ACCESS_CONTROL_ENTRY: u16 = 12;
    pub const REMOVE_ACCESS_CONTROL_ENTRY: u16 = 13;
    pub const USER_SCRAM_CREDENTIAL: u16 = 14;
    pub const REMOVE_USER_SCRAM_CREDENTIAL: u16 = 15;
}

impl MetadataRecord {
    /// The record's type id on the wire.
    pub fn record_type(&self) -> u16 {
        use record_type::*;
        match self {
            MetadataRecord::ClusterId(_) => CLUSTER_ID,
            MetadataRecord::FeatureLevel { .. } => FEATURE_LEVEL,
            MetadataRecord::RegisterBroker(_) => REGISTER_BROKER,
            MetadataRecord::FenceBroker(_) => FENCE_BROKER,
            MetadataRecord::UnfenceBroker(_) => UNFENCE_BROKER,
            MetadataRecord::Topic(_) => TOPIC,
            MetadataRecord::Partition(_) => PARTITION,
            MetadataRecord::PartitionChange(_) => PARTITION_CHANGE,
            MetadataRecord::RemoveTopic { .. } => REMOVE_TOPIC,
            MetadataRecord::ConfigChange(_) => CONFIG_CHANGE,
            MetadataRecord::ProducerIdsBlock(_) => PRODUCER_IDS_BLOCK,
            MetadataRecord::AccessControlEntry(_) => ACCESS_CONTROL_ENTRY,
            MetadataRecord::RemoveAccessControlEntry { .. } => REMOVE_ACCESS_CONTROL_ENTRY,
            MetadataRecord::UserScramCredential(_) => USER_SCRAM_CREDENTIAL,
            MetadataRecord::RemoveUserScramCredential { .. } => REMOVE_USER_SCRAM_CREDENTIAL,
        }
    }

    /// The version this record is written in: 1 for a partition record that carries a
    /// reassignment, else `RECORD_VERSION`.
    fn version(&self) -> u16 {
        let reassigning = match self {
            MetadataRecord::Partition(record) => {
                !record.adding_replicas.is_empty() || !record.removing_replicas.is_empty()
            }
            MetadataRecord::PartitionChange(record) => {
                record.adding_replicas.is_some() || record.removing_replicas.is_some()
            }
            _ => false,
        };
        if reassigning { 1 } else { RECORD_VERSION }
    }

    /// Appends the encoded record (header and body) to `out`.
    ///
    /// Panics if a string is longer than 65,535 bytes: records are built by the controller
    /// from validated input (topic names ≤ 249, config values bounded by the request size).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut writer = Writer { out };
        writer.u16(self.record_type());
        writer.u16(self.version());
        match self {
            MetadataRecord::ClusterId(id) => writer.uuid(id),
            MetadataRecord::FeatureLevel { name, level } => {
                writer.string(name);
                writer.i16(*level);
            }
            MetadataRecord::RegisterBroker(record) => writer.register_broker(record),
            MetadataRecord::FenceBroker(record) | MetadataRecord::UnfenceBroker(record) => {
                writer.i32(record.node_id);
                writer.i64(record.broker_epoch);
            }
            MetadataRecord::Topic(record) => {
                writer.uuid(&record.topic_id);
                writer.string(&record.name);
            }
            MetadataRecord::Partition(record) => writer.partition(record, self.version()),
            MetadataRecord::PartitionChange(record) => {
                writer.partition_change(record, self.version())
            }
            MetadataRecord::RemoveTopic { topic_id } => writer.uuid(topic_id),
            MetadataRecord::ConfigChange(record) => writer.config_change(record),
            MetadataRecord::ProducerIdsBlock(record) => {
                writer.i32(record.node_id);
                writer.i64(record.broker_epoch);
                writer.i64(record.first_producer_id);
                writer.i64(record.size);
            }
            MetadataRecord::AccessControlEntry(record) => writer.acl(record),
            MetadataRecord::RemoveAccessControlEntry { id } => writer.uuid(id),
            MetadataRecord::UserScramCredential(record) => writer.scram(record),
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                writer.string(name);
                writer.i8(*mechanism);
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one record; bytes left over are an error.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordDecodeError> {
        let mut reader = Reader { bytes, position: 0 };
        let record = reader.record()?;
        reader.finish()?;
        Ok(record)
    }
}

/// Encodes records as one metadata-log entry: `u32 count`, then each record as `u32 length`
/// + record. The records of one controller decision travel (and are applied) together.
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for record in records {
        let length_at = out.len();
        out.extend_from_slice(&[0; 4]);
        record.encode_into(&mut out);
        let length = u32::try_from(out.len() - length_at - 4).unwrap_or(u32::MAX);
        out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    }
    out
}

/// Decodes an entry written by `encode_batch`.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<MetadataRecord>, RecordDecodeError> {
    let mut reader = Reader { bytes, position: 0 };
    // The smallest record is a 4-byte header behind a 4-byte length.
    let count = reader.count("batch count", 8)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let length = reader.u32()? as usize;
        let body = reader.take(length)?;
        records.push(MetadataRecord::decode(body)?);
    }
    reader.finish()?;
    Ok(records)
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }
    fn i8(&mut self, value: i8) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }
    fn i16(&mut self, value: i16) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }
    fn i32(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }
    fn i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }
    fn bool(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }
    fn uuid(&mut self, value: &Uuid) {
        self.out.extend_from_slice(value);
    }
    fn string(&mut self, value: &str) {
        let length = u16::try_from(value.len())
            .unwrap_or_else(|_| panic!("metadata string of {} bytes exceeds 65535", value.len()));
        self.u16(length);
        self.out.extend_from_slice(value.as_bytes());
    }
    fn optional_string(&mut self, value: &Option<String>) {
        self.bool(value.is_some());
        if let Some(value) = value {
            self.string(value);
        }
    }
    fn bytes(&mut self, value: &[u8]) {
        let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&length.to_be_bytes());
        self.out.extend_from_slice(value);
    }
    fn count(&mut self, count: usize) {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&count.to_be_bytes());
    }
    fn nodes(&mut self, nodes: &[NodeId]) {
        self.count(nodes.len());
        nodes.iter().for_each(|node| self.i32(*node));
    }
    fn optional_nodes(&mut self, nodes: &Option<Vec<NodeId>>) {
        self.bool(nodes.is_some());
        if let Some(nodes) = nodes {
            self.nodes(nodes);
        }
    }
    fn register_broker(&mut self, record: &RegisterBrokerRecord) {
        self.i32(record.node_id);
        self.uuid(&record.incarnation_id);
        self.i64(record.broker_epoch);
        self.count(record.listeners.len());
        for listener in &record.listeners {
            self.string(&listener.name);
            self.string(&listener.host);
            self.u16(listener.port);
            self.i16(listener.security_protocol);
        }
        self.optional_string(&record.rack);
        self.bool(record.fenced);
    }
    fn partition(&mut self, record: &PartitionRecord, version: u16) {
        self.uuid(&record.topic_id);
        self.i32(record.partition);
        self.nodes(&record.replicas);
        self.nodes(&record.isr);
        self.nodes(&record.elr);
        self.nodes(&record.last_known_elr);
        self.i32(record.leader.unwrap_or(NO_LEADER));
        self.i32(record.leader_epoch);
        self.i32(record.partition_epoch);
        if version >= 1 {
            self.nodes(&record.adding_replicas);
            self.nodes(&record.removing_replicas);
        }
    }
    fn partition_change(&mut self, record: &PartitionChangeRecord, version: u16) {
        self.uuid(&record.topic_id);
        self.i32(record.partition);
        self.i32(match record.leader {
            LeaderChange::Unchanged => LEADER_UNCHANGED,
            LeaderChange::None => NO_LEADER,
            LeaderChange::To(node) => node,
        });
        self.optional_nodes(&record.replicas);
        self.optional_nodes(&record.isr);
        self.optional_nodes(&record.elr);
        self.optional_nodes(&record.last_known_elr);
        self.i32(record.leader_epoch);
        self.i32(record.partition_epoch);
        if version >= 1 {
            self.optional_nodes(&record.adding_replicas);
            self.optional_nodes(&record.removing_replicas);
        }
    }
    fn config_change(&mut self, record: &ConfigChangeRecord) {
        match &record.resource {
            ConfigResource::Topic(name) => {
                self.i8(CONFIG_RESOURCE_TOPIC);
                self.string(name);
            }
            ConfigResource::Broker(node) => {
                self.i8(CONFIG_RESOURCE_BROKER);
                self.i32(*node);
            }
            ConfigResource::BrokerDefault => {
                self.i8(CONFIG_RESOURCE_BROKER);
                self.i32(NO_LEADER);
            }
            ConfigResource::Group(group) => {
                self.i8(CONFIG_RESOURCE_GROUP);
                self.string(group);
            }
        }
        self.string(&record.name);
        self.optional_string(&record.value);
    }
    fn acl(&mut self, record: &AccessControlEntryRecord) {
        self.uuid(&record.id);
        self.i8(record.resource_type);
        self.string(&record.resource_name);
        self.i8(record.pattern_type);
        self.string(&record.principal);
        self.string(&record.host);
        self.i8(record.operation);
        self.i8(record.permission_type);
    }
    fn scram(&mut self, record: &UserScramCredentialRecord) {
        self.string(&record.name);
        self.i8(record.mechanism);
        self.bytes(&record.salt);
        self.bytes(&record.stored_key);
        self.bytes(&record.server_key);
        self.i32(record.iterations);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }
    fn take(&mut self, length: usize) -> Result<&'a [u8], RecordDecodeError> {
        let remaining = self.remaining();
        if length > remaining {
            return Err(RecordDecodeError::Truncated {
                needed: length,
                remaining,
            });
        }
        let slice = &self.bytes[self.position..self.position + length];
        self.position += length;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordDecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
    fn finish(&self) -> Result<(), RecordDecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(RecordDecodeError::TrailingBytes(extra)),
        }
    }
    fn u16(&mut self) -> Result<u16, RecordDecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, RecordDecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i8(&mut self) -> Result<i8, RecordDecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, RecordDecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordDecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordDecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn bool(&mut self, field: &'static str) -> Result<bool, RecordDecodeError> {
        match self.array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(RecordDecodeError::InvalidValue {
                field,
                reason: "a flag must be 0 or 1",
            }),
        }
    }
    fn uuid(&mut self) -> Result<Uuid, RecordDecodeError> {
        self.array()
    }
    fn string(&mut self, field: &'static str) -> Result<String, RecordDecodeError> {
        let length = usize::from(self.u16()?);
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordDecodeError::InvalidUtf8 { field })
    }
    fn optional_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, RecordDecodeError> {
        if self.bool(field)? {
            Ok(Some(self.string(field)?))
        } else {
            Ok(None)
        }
    }
    fn bytes(&mut self) -> Result<Vec<u8>, RecordDecodeError> {
        let length = self.u32()? as usize;
        Ok(self.take(length)?.to_vec())
    }
    /// A count of elements of at least `element_bytes_min` bytes each, checked against the
    /// bytes left so a garbage count never becomes a huge allocation.
    fn count(
        &mut self,
        field: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, RecordDecodeError> {
        let count = self.u32()? as usize;
        let remaining = self.remaining();
        if count > remaining / element_bytes_min.max(1) {
            return Err(RecordDecodeError::CountTooLarge {
                field,
                count: count as u64,
                remaining,
            });
        }
        Ok(count)
    }
    fn nodes(&mut self, field: &'static str) -> Result<Vec<NodeId>, RecordDecodeError> {
        let count = self.count(field, 4)?;
        (0..count).map(|_| self.i32()).collect()
    }
    fn optional_nodes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<NodeId>>, RecordDecodeError> {
        if self.bool(field)? {
            Ok(Some(self.nodes(field)?))
        } else {
            Ok(None)
        }
    }
    fn leader(&mut self) -> Result<Option<NodeId>, RecordDecodeError> {
        match self.i32()? {
            NO_LEADER => Ok(None),
            node if node >= 0 => Ok(Some(node)),
            _ => Err(RecordDecodeError::InvalidValue {
                field: "leader",
                reason: "a leader is a node id or -1",
            }),
        }
    }

    fn record(&mut self) -> Result<MetadataRecord, RecordDecodeError> {
        use record_type::*;
        let record_type = self.u16()?;
        let version = self.u16()?;
        if !(CLUSTER_ID..=REMOVE_USER_SCRAM_CREDENTIAL).contains(&record_type) {
            return Err(RecordDecodeError::UnknownType(record_type));
        }
        let newest = match record_type {
            PARTITION | PARTITION_CHANGE => RECORD_VERSION_MAX,
            _ => RECORD_VERSION,
        };
        if version > newest {
            return Err(RecordDecodeError::UnsupportedVersion {
                record_type,
                version,
            });
        }
        Ok(match record_type {
            CLUSTER_ID => MetadataRecord::ClusterId(self.uuid()?),
            FEATURE_LEVEL => MetadataRecord::FeatureLevel {
                name: self.string("feature name")?,
                level: self.i16()?,
            },
            REGISTER_BROKER => MetadataRecord::RegisterBroker(self.register_broker()?),
            FENCE_BROKER => MetadataRecord::FenceBroker(self.fencing()?),
            UNFENCE_BROKER => MetadataRecord::UnfenceBroker(self.fencing()?),
            TOPIC => MetadataRecord::Topic(TopicRecord {
                topic_id: self.uuid()?,
                name: self.string("topic name")?,
            }),
            PARTITION => MetadataRecord::Partition(self.partition(version)?),
            PARTITION_CHANGE => MetadataRecord::PartitionChange(self.partition_change(version)?),
            REMOVE_TOPIC => MetadataRecord::RemoveTopic {
                topic_id: self.uuid()?,
            },
            CONFIG_CHANGE => MetadataRecord::ConfigChange(self.config_change()?),
            PRODUCER_IDS_BLOCK => MetadataRecord::ProducerIdsBlock(ProducerIdsBlockRecord {
                node_id: self.i32()?,
                broker_epoch: self.i64()?,
                first_producer_id: self.i64()?,
                size: self.i64()?,
            }),
            ACCESS_CONTROL_ENTRY => MetadataRecord::AccessControlEntry(self.acl()?),
            REMOVE_ACCESS_CONTROL_ENTRY => {
                MetadataRecord::RemoveAccessControlEntry { id: self.uuid()? }
            }
            USER_SCRAM_CREDENTIAL => MetadataRecord::UserScramCredential(self.scram()?),
            REMOVE_USER_SCRAM_CREDENTIAL => MetadataRecord::RemoveUserScramCredential {
                name: self.string("scram user")?,
                mechanism: self.i8()?,
            },
            other => return Err(RecordDecodeError::UnknownType(other)),
        })
    }
    fn fencing(&mut self) -> Result<BrokerFencingRecord, RecordDecodeError> {
        Ok(BrokerFencingRecord {
            node_id: self.i32()?,
            broker_epoch: self.i64()?,
        })
    }
    fn register_broker(&mut self) -> Result<RegisterBrokerRecord, RecordDecodeError> {
        let node_id = self.i32()?;
        let incarnation_id = self.uuid()?;
        let broker_epoch = self.i64()?;
        // A listener is at least two empty strings, a port and a protocol: 8 bytes.
        let count = self.count("listeners", 8)?;
        let listeners = (0..count)
            .map(|_| {
                Ok(Listener {
                    name: self.string("listener name")?,
                    host: self.string("listener host")?,
                    port: self.u16()?,
                    security_protocol: self.i16()?,
                })
            })
            .collect::<Result<Vec<_>, RecordDecodeError>>()?;
        Ok(RegisterBrokerRecord {
            node_id,
            incarnation_id,
            broker_epoch,
            listeners,
            rack: self.optional_string("rack")?,
            fenced: self.bool("fenced")?,
        })
    }
    fn partition(&mut self, version: u16) -> Result<PartitionRecord, RecordDecodeError> {
        Ok(PartitionRecord {
            topic_id: self.uuid()?,
            partition: self.i32()?,
            replicas: self.nodes("replicas")?,
            isr: self.nodes("isr")?,
            elr: self.nodes("elr")?,
            last_known_elr: self.nodes("last known elr")?,
            leader: self.leader()?,
            leader_epoch: self.i32()?,
            partition_epoch: self.i32()?,
            adding_replicas: if version >= 1 {
                self.nodes("adding replicas")?
            } else {
                Vec::new()
            },
            removing_replicas: if version >= 1 {
                self.nodes("removing replicas")?
            } else {
                Vec::new()
            },
        })
    }
    fn partition_change(
        &mut self,
        version: u16,
    ) -> Result<PartitionChangeRecord, RecordDecodeError> {
        let topic_id = self.uuid()?;
        let partition = self.i32()?;
        let leader = match self.i32()? {
            LEADER_UNCHANGED => LeaderChange::Unchanged,
            NO_LEADER => LeaderChange::None,
            node if node >= 0 => LeaderChange::To(node),
            _ => {
                return Err(RecordDecodeError::InvalidValue {
                    field: "leader",
                    reason: "a leader change is a node id, -1 or -2",
                });
            }
        };
        Ok(PartitionChangeRecord {
            topic_id,
            partition,
            leader,
            replicas: self.optional_nodes("replicas")?,
            isr: self.optional_nodes("isr")?,
            elr: self.optional_nodes("elr")?,
            last_known_elr: self.optional_nodes("last known elr")?,
            leader_epoch: self.i32()?,
            partition_epoch: self.i32()?,
            adding_replicas: if version >= 1 {
                self.optional_nodes("adding replicas")?
            } else {
                None
            },
            removing_replicas: if version >= 1 {
                self.optional_nodes("removing replicas")?
            } else {
                None
            },
        })
    }
    fn config_change(&mut self) -> Result<ConfigChangeRecord, RecordDecodeError> {
        let resource = match self.i8()? {
            CONFIG_RESOURCE_TOPIC => ConfigResource::Topic(self.string("config topic")?),
            CONFIG_RESOURCE_GROUP => ConfigResource::Group(self.string("config group")?),
            CONFIG_RESOURCE_BROKER => match self.i32()? {
                NO_LEADER => ConfigResource::BrokerDefault,
                node if node >= 0 => ConfigResource::Broker(node),
                _ => {
                    return Err(RecordDecodeError::InvalidValue {
                        field: "config broker",
                        reason: "a broker is a node id or -1 for the default",
                    });
                }
            },
            _ => {
                return Err(RecordDecodeError::InvalidValue {
                    field: "config resource type",
                    reason: "only topic (2), broker (4) and group (32) configs are stored",
                });
            }
        };
        Ok(ConfigChangeRecord {
            resource,
            name: self.string("config name")?,
            value: self.optional_string("config value")?,
        })
    }
    fn acl(&mut self) -> Result<AccessControlEntryRecord, RecordDecodeError> {
        Ok(AccessControlEntryRecord {
            id: self.uuid()?,
            resource_type: self.i8()?,
            resource_name: self.string("acl resource name")?,
            pattern_type: self.i8()?,
            principal: self.string("acl principal")?,
            host: self.string("acl host")?,
            operation: self.i8()?,
            permission_type: self.i8()?,
        })
    }
    fn scram(&mut self) -> Result<UserScramCredentialRecord, RecordDecodeError> {
        Ok(UserScramCredentialRecord {
            name: self.string("scram user")?,
            mechanism: self.i8()?,
            salt: self.bytes()?,
            stored_key: self.bytes()?,
            server_key: self.bytes()?,
            iterations: self.i32()?,
        })
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
