//! Records and restore: a group written as its records and read back is the same group,
//! and bad bytes are refused without a panic.

use super::records::{self, ConsumerRecord};
use super::*;
use crate::model::ErrorCode;

const T: TopicId = [1; 16];

fn limits() -> ConsumerGroupLimits {
    ConsumerGroupLimits {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        members_max: 10,
        assignors: vec![AssignorKind::Uniform, AssignorKind::Range],
        regex_len_max: 100,
    }
}

fn image() -> TopicsImage {
    let mut image = TopicsImage::new();
    image.insert("t", T, 6);
    image
}

fn join(member: &str, instance: Option<&str>) -> HeartbeatInput {
    HeartbeatInput {
        member_id: member.to_string(),
        instance_id: instance.map(str::to_string),
        rack_id: Some("rack-1".to_string()),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        subscribed_topic_regex: Some("x.*".to_string()),
        server_assignor: Some("range".to_string()),
        owned_partitions: Some(Assignment::new()),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

/// A group with a stable member, one revoking and one waiting.
fn busy_group() -> ConsumerGroup {
    let mut g = ConsumerGroup::new("g", limits());
    g.heartbeat(join("a", None), &image(), 0);
    g.heartbeat(join("b", Some("i-b")), &image(), 0);
    let revoking = HeartbeatInput {
        member_id: "a".to_string(),
        member_epoch: 1,
        rebalance_timeout_ms: -1,
        ..HeartbeatInput::default()
    };
    g.heartbeat(revoking, &image(), 1);
    g
}

#[test]
fn a_restored_group_is_the_same_group() {
    let g = busy_group();
    let stored = g.records();
    assert_eq!(stored.len(), 2 + 3 * 2);
    let restored = ConsumerGroup::restore("g", &stored, limits(), 100).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored.records(), stored);
    assert_eq!(restored.describe(), g.describe());
    assert_eq!(restored.state(), ConsumerGroupState::Reconciling);
}

#[test]
fn members_carry_on_after_a_restore() {
    let g = busy_group();
    let mut restored = ConsumerGroup::restore("g", &g.records(), limits(), 100).unwrap();
    let a = g.describe().members[0].clone();
    let kept = a.assignment.clone();
    // a still revokes at epoch 1; once it reports, it reaches epoch 2 and b gets the rest.
    let report = HeartbeatInput {
        member_id: "a".to_string(),
        member_epoch: 1,
        rebalance_timeout_ms: -1,
        owned_partitions: Some(kept),
        ..HeartbeatInput::default()
    };
    let out = restored.heartbeat(report, &image(), 200);
    assert_eq!(out.error, ErrorCode::None);
    assert_eq!(out.member_epoch, 2);
    let b = HeartbeatInput {
        member_id: "b".to_string(),
        instance_id: Some("i-b".to_string()),
        member_epoch: 2,
        rebalance_timeout_ms: -1,
        ..HeartbeatInput::default()
    };
    let out = restored.heartbeat(b, &image(), 200);
    assert_eq!(out.error, ErrorCode::None);
    assert_eq!(assignment_size(out.assignment.as_ref().unwrap()), 3);
    restored.check_invariants().unwrap();
    // Sessions restart at the restore: nobody expires before now + session.
    assert!(restored.tick(100 + 44_999).is_empty());
}

#[test]
fn every_record_decodes_to_what_was_encoded() {
    let g = busy_group();
    let kinds: Vec<String> = g
        .records()
        .iter()
        .map(|(k, v)| {
            assert_eq!(records::group_of(k).as_deref(), Some("g"));
            match records::decode(k, v).unwrap().unwrap() {
                ConsumerRecord::Metadata { epoch } => format!("metadata {epoch}"),
                ConsumerRecord::TargetMetadata { assignment_epoch } => {
                    format!("target {assignment_epoch}")
                }
                ConsumerRecord::MemberMetadata { member_id, value } => {
                    assert_eq!(value.rack_id.as_deref(), Some("rack-1"));
                    assert_eq!(value.subscribed_topic_regex.as_deref(), Some("x.*"));
                    format!("member {member_id}")
                }
                ConsumerRecord::TargetMember { member_id, .. } => format!("target {member_id}"),
                ConsumerRecord::CurrentAssignment { member_id, value } => {
                    format!("current {member_id} {}", value.member_epoch)
                }
            }
        })
        .collect();
    assert!(kinds.contains(&"metadata 2".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"current a 1".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"current b 2".to_string()), "{kinds:?}");
    // Offset and classic group keys are not consumer-group keys.
    assert_eq!(
        records::group_of(&crate::group::records::group_key("g")),
        None
    );
}

#[test]
fn bad_bytes_are_refused_without_a_panic() {
    let stored = busy_group().records();
    for (key, value) in &stored {
        for cut in 0..value.len() {
            let _ = records::decode(key, &value[..cut]);
        }
        let mut flipped = value.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = records::decode(key, &flipped);
            flipped[i] ^= 0xff;
        }
    }
    assert!(records::decode(&[0, 3], &[0, 0]).is_err());
}
