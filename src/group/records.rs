//! Keys and values stored in `__consumer_offsets`, in Kafka's own layouts so Kafka tools can
//! read them: OffsetCommit key v1 / value v3, GroupMetadata key v2 / value v3. A null value
//! is a tombstone (deleted offset or group). Decoding never panics on bad bytes.

use super::record_codec::{Reader, Writer};
use super::{GroupSnapshot, MemberSnapshot};
use thiserror::Error;

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_KEY_VERSION: i16 = 2;
const GROUP_VALUE_VERSION: i16 = 3;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown record version {0}")]
    UnknownVersion(i16),
    #[error("invalid UTF-8 in record")]
    BadString,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        /// None: tombstone.
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
}

pub fn commit_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(OFFSET_KEY_VERSION)
        .string(group)
        .string(topic)
        .i32(partition);
    w.0
}

pub fn commit_value(value: &CommittedOffset) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(OFFSET_VALUE_VERSION)
        .i64(value.offset)
        .i32(value.leader_epoch)
        .string(&value.metadata)
        .i64(value.commit_timestamp_ms);
    w.0
}

pub fn group_key(group: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(GROUP_KEY_VERSION).string(group);
    w.0
}

pub fn group_value(snapshot: &GroupSnapshot, timestamp_ms: i64) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(GROUP_VALUE_VERSION)
        .string(&snapshot.protocol_type)
        .i32(snapshot.generation_id)
        .nullable_string(snapshot.protocol_name.as_deref())
        .nullable_string(snapshot.leader.as_deref())
        .i64(timestamp_ms)
        .i32(snapshot.members.len() as i32);
    for member in &snapshot.members {
        w.string(&member.member_id)
            .nullable_string(member.group_instance_id.as_deref())
            .string(&member.client_id)
            .string(&member.client_host)
            .i32(member.rebalance_timeout_ms)
            .i32(member.session_timeout_ms)
            .bytes(&member.subscription)
            .bytes(&member.assignment);
    }
    w.0
}

/// Decodes one `__consumer_offsets` record.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<OffsetsRecord, RecordError> {
    let mut k = Reader(key);
    match k.i16()? {
        0 | 1 => {
            let group = k.string()?;
            let topic = k.string()?;
            let partition = k.i32()?;
            let value = value.map(decode_commit_value).transpose()?;
            Ok(OffsetsRecord::Commit {
                group,
                topic,
                partition,
                value,
            })
        }
        GROUP_KEY_VERSION => {
            let group = k.string()?;
            let value = value.map(|v| decode_group_value(&group, v)).transpose()?;
            Ok(OffsetsRecord::Group { group, value })
        }
        other => Err(RecordError::UnknownVersion(other)),
    }
}

fn decode_commit_value(value: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if !(0..=OFFSET_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion(version));
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(group: &str, value: &[u8]) -> Result<GroupSnapshot, RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if version != GROUP_VALUE_VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let protocol_type = r.string()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let _state_timestamp = r.i64()?;
    let count = r.i32()?.max(0) as usize;
    let mut members = Vec::with_capacity(count.min(value.len() / 8));
    for _ in 0..count {
        members.push(MemberSnapshot {
            member_id: r.string()?,
            group_instance_id: r.nullable_string()?,
            client_id: r.string()?,
            client_host: r.string()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupSnapshot {
        group_id: group.to_string(),
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn commit_round_trip_and_tombstone() {
        let value = CommittedOffset {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".to_string(),
            commit_timestamp_ms: 7,
        };
        let key = commit_key("g", "t", 3);
        let decoded = decode(&key, Some(&commit_value(&value))).unwrap();
        assert_eq!(
            decoded,
            OffsetsRecord::Commit {
                group: "g".to_string(),
                topic: "t".to_string(),
                partition: 3,
                value: Some(value)
            }
        );
        assert!(matches!(
            decode(&key, None),
            Ok(OffsetsRecord::Commit { value: None, .. })
        ));
    }

    #[test]
    fn group_round_trip() {
        let snapshot = GroupSnapshot {
            group_id: "g".to_string(),
            protocol_type: "consumer".to_string(),
            generation_id: 4,
            protocol_name: Some("range".to_string()),
            leader: Some("m1".to_string()),
            members: vec![MemberSnapshot {
                member_id: "m1".to_string(),
                group_instance_id: Some("i1".to_string()),
                client_id: "c".to_string(),
                client_host: "/h".to_string(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let decoded = decode(&group_key("g"), Some(&group_value(&snapshot, 9))).unwrap();
        assert_eq!(
            decoded,
            OffsetsRecord::Group {
                group: "g".to_string(),
                value: Some(snapshot)
            }
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[0, 1, 0], None).is_err());
        assert!(decode(&[0, 9, 0, 0], None).is_err());
        let key = group_key("g");
        assert!(decode(&key, Some(&[0, 3, 0, 5, b'a'])).is_err());
    }
}
