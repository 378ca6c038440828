//! A consumer group's durable state as Kafka's `__consumer_offsets` records for consumer
//! groups: ConsumerGroupMetadata (key v3), ConsumerGroupMemberMetadata (v5),
//! ConsumerGroupTargetAssignmentMetadata (v6), ConsumerGroupTargetAssignmentMember (v7) and
//! ConsumerGroupCurrentMemberAssignment (v8), values at version 0 in Kafka's flexible
//! layout (compact strings and arrays, empty tagged fields). ConsumerGroupPartitionMetadata
//! (v4, dropped by Kafka 4.1) is not written: the topics image is read from the catalog.
//! Decoding never panics on bad bytes.

use super::types::{Assignment, MemberState, TopicId};
use crate::group::record_codec::{Reader, Writer};
use crate::group::records::RecordError;

pub const METADATA_KEY_VERSION: i16 = 3;
pub const MEMBER_METADATA_KEY_VERSION: i16 = 5;
pub const TARGET_METADATA_KEY_VERSION: i16 = 6;
pub const TARGET_MEMBER_KEY_VERSION: i16 = 7;
pub const CURRENT_ASSIGNMENT_KEY_VERSION: i16 = 8;
const VALUE_VERSION: i16 = 0;

/// One decoded consumer-group record value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    Metadata {
        epoch: i32,
    },
    MemberMetadata {
        member_id: String,
        value: MemberMetadata,
    },
    TargetMetadata {
        assignment_epoch: i32,
    },
    TargetMember {
        member_id: String,
        assignment: Assignment,
    },
    CurrentAssignment {
        member_id: String,
        value: CurrentAssignment,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

fn state_byte(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_from_byte(byte: i8) -> MemberState {
    match byte {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

/// A consumer-group assignment: a compact array of (topic id, compact array of partitions,
/// tags).
fn write_assignment(w: &mut Writer, assignment: &Assignment) {
    w.uvarint(assignment.len() as u64 + 1);
    for (topic, partitions) in assignment {
        w.raw(topic);
        w.uvarint(partitions.len() as u64 + 1);
        for &p in partitions {
            w.i32(p);
        }
        w.tags();
    }
}

fn read_assignment(r: &mut Reader<'_>) -> Result<Assignment, RecordError> {
    let mut assignment = Assignment::new();
    for _ in 0..r.count(18)? {
        let mut topic: TopicId = [0; 16];
        topic.copy_from_slice(r.take(16)?);
        let mut partitions = std::collections::BTreeSet::new();
        for _ in 0..r.count(4)? {
            partitions.insert(r.i32()?);
        }
        r.tags()?;
        if !partitions.is_empty() {
            assignment.insert(topic, partitions);
        }
    }
    Ok(assignment)
}

fn key(version: i16, group_id: &str, member_id: Option<&str>) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(version);
    w.string(group_id);
    if let Some(member_id) = member_id {
        w.string(member_id);
    }
    w.0
}

fn value(body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(VALUE_VERSION);
    body(&mut w);
    w.tags();
    w.0
}

pub fn metadata(group_id: &str, epoch: i32) -> (Vec<u8>, Vec<u8>) {
    let v = value(|w| {
        w.i32(epoch);
    });
    (key(METADATA_KEY_VERSION, group_id, None), v)
}

pub fn target_metadata(group_id: &str, assignment_epoch: i32) -> (Vec<u8>, Vec<u8>) {
    let v = value(|w| {
        w.i32(assignment_epoch);
    });
    (key(TARGET_METADATA_KEY_VERSION, group_id, None), v)
}

pub fn member_metadata(group_id: &str, member_id: &str, m: &MemberMetadata) -> (Vec<u8>, Vec<u8>) {
    let v = value(|w| {
        w.compact_string(m.instance_id.as_deref());
        w.compact_string(m.rack_id.as_deref());
        w.compact_string(Some(&m.client_id));
        w.compact_string(Some(&m.client_host));
        w.uvarint(m.subscribed_topic_names.len() as u64 + 1);
        for name in &m.subscribed_topic_names {
            w.compact_string(Some(name));
        }
        w.compact_string(m.subscribed_topic_regex.as_deref());
        w.compact_string(m.server_assignor.as_deref());
        w.i32(m.rebalance_timeout_ms);
    });
    (
        key(MEMBER_METADATA_KEY_VERSION, group_id, Some(member_id)),
        v,
    )
}

pub fn target_member(group_id: &str, member_id: &str, target: &Assignment) -> (Vec<u8>, Vec<u8>) {
    let v = value(|w| write_assignment(w, target));
    (key(TARGET_MEMBER_KEY_VERSION, group_id, Some(member_id)), v)
}

pub fn current_assignment(
    group_id: &str,
    member_id: &str,
    c: &CurrentAssignment,
) -> (Vec<u8>, Vec<u8>) {
    let v = value(|w| {
        w.i32(c.member_epoch);
        w.i32(c.previous_member_epoch);
        w.i8(state_byte(c.state));
        write_assignment(w, &c.assigned);
        write_assignment(w, &c.pending_revocation);
    });
    (
        key(CURRENT_ASSIGNMENT_KEY_VERSION, group_id, Some(member_id)),
        v,
    )
}

/// The group id of a consumer-group record key; `None` for any other key.
pub fn group_of(key: &[u8]) -> Option<String> {
    let mut r = Reader(key);
    let version = r.i16().ok()?;
    (METADATA_KEY_VERSION..=CURRENT_ASSIGNMENT_KEY_VERSION)
        .contains(&version)
        .then(|| r.string().ok())
        .flatten()
}

/// Decodes one record of a consumer group (key v3-v8; v4 is read as nothing to restore).
pub fn decode(key: &[u8], value: &[u8]) -> Result<Option<ConsumerRecord>, RecordError> {
    let mut k = Reader(key);
    let key_version = k.i16()?;
    let _group = k.string()?;
    let mut r = Reader(value);
    let value_version = r.i16()?;
    if value_version != VALUE_VERSION {
        return Err(RecordError::UnknownVersion(value_version));
    }
    let record = match key_version {
        METADATA_KEY_VERSION => ConsumerRecord::Metadata { epoch: r.i32()? },
        TARGET_METADATA_KEY_VERSION => ConsumerRecord::TargetMetadata {
            assignment_epoch: r.i32()?,
        },
        MEMBER_METADATA_KEY_VERSION => {
            let member_id = k.string()?;
            let instance_id = r.compact_string()?;
            let rack_id = r.compact_string()?;
            let client_id = r.compact_string()?.unwrap_or_default();
            let client_host = r.compact_string()?.unwrap_or_default();
            let mut subscribed_topic_names = Vec::new();
            for _ in 0..r.count(1)? {
                subscribed_topic_names.push(r.compact_string()?.unwrap_or_default());
            }
            ConsumerRecord::MemberMetadata {
                member_id,
                value: MemberMetadata {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex: r.compact_string()?,
                    server_assignor: r.compact_string()?,
                    rebalance_timeout_ms: r.i32()?,
                },
            }
        }
        TARGET_MEMBER_KEY_VERSION => ConsumerRecord::TargetMember {
            member_id: k.string()?,
            assignment: read_assignment(&mut r)?,
        },
        CURRENT_ASSIGNMENT_KEY_VERSION => ConsumerRecord::CurrentAssignment {
            member_id: k.string()?,
            value: CurrentAssignment {
                member_epoch: r.i32()?,
                previous_member_epoch: r.i32()?,
                state: state_from_byte(r.i8()?),
                assigned: read_assignment(&mut r)?,
                pending_revocation: read_assignment(&mut r)?,
            },
        },
        4 => return Ok(None),
        other => return Err(RecordError::UnknownVersion(other)),
    };
    r.tags()?;
    Ok(Some(record))
}
