//! Transition tests for the consumer-protocol group: joins, incremental reconciliation with
//! revocation before reassignment, epochs, leaves, timeouts, static members, regex
//! subscriptions, request validation and offset-commit checks.

use super::*;
use crate::model::ErrorCode;

const SESSION_MS: u64 = 45_000;
const REBALANCE_MS: i32 = 30_000;
const T: TopicId = [1; 16];
const U: TopicId = [2; 16];

fn limits() -> ConsumerGroupLimits {
    ConsumerGroupLimits {
        session_timeout_ms: SESSION_MS,
        heartbeat_interval_ms: 5_000,
        members_max: 4,
        assignors: vec![AssignorKind::Uniform, AssignorKind::Range],
        regex_len_max: 1_000,
    }
}

fn image(topics: &[(&str, TopicId, i32)]) -> TopicsImage {
    let mut image = TopicsImage::new();
    for (name, id, partitions) in topics {
        image.insert(name, *id, *partitions);
    }
    image
}

fn six() -> TopicsImage {
    image(&[("t", T, 6)])
}

pub(super) fn parts(topic: TopicId, partitions: &[i32]) -> Assignment {
    let mut assignment = Assignment::new();
    if !partitions.is_empty() {
        assignment.insert(topic, partitions.iter().copied().collect());
    }
    assignment
}

fn join(member: &str, topics: &[&str]) -> HeartbeatInput {
    HeartbeatInput {
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned_partitions: Some(Assignment::new()),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        ..HeartbeatInput::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<Assignment>) -> HeartbeatInput {
    HeartbeatInput {
        member_id: member.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned_partitions: owned,
        ..HeartbeatInput::default()
    }
}

fn ok(outcome: &HeartbeatOutcome) -> &HeartbeatOutcome {
    assert_eq!(outcome.error, ErrorCode::None, "{outcome:?}");
    outcome
}

fn group() -> ConsumerGroup {
    ConsumerGroup::new("g", limits())
}

#[test]
fn first_member_gets_every_partition_at_epoch_one() {
    let mut g = group();
    let out = g.heartbeat(join("a", &["t"]), &six(), 0);
    ok(&out);
    assert_eq!(out.member_epoch, 1);
    assert_eq!(out.heartbeat_interval_ms, 5_000);
    assert_eq!(out.assignment, Some(parts(T, &[0, 1, 2, 3, 4, 5])));
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    g.check_invariants().unwrap();
    // A plain heartbeat with nothing new carries no assignment.
    let out = g.heartbeat(beat("a", 1, None), &six(), 1);
    assert_eq!(ok(&out).assignment, None);
    assert_eq!(out.member_epoch, 1);
}

#[test]
fn second_member_waits_until_the_first_revokes() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    let out = g.heartbeat(join("b", &["t"]), &six(), 1);
    // b's target is three partitions a still holds: b is at epoch 2 with nothing yet.
    assert_eq!(ok(&out).member_epoch, 2);
    assert_eq!(out.assignment, Some(Assignment::new()));
    assert_eq!(g.state(), ConsumerGroupState::Reconciling);
    // a must revoke first: it keeps its epoch and is told its smaller assignment.
    let out = g.heartbeat(beat("a", 1, None), &six(), 2);
    assert_eq!(ok(&out).member_epoch, 1);
    let kept = out.assignment.clone().unwrap();
    assert_eq!(assignment_size(&kept), 3);
    // Until a reports the revocation, b still gets nothing.
    let out = g.heartbeat(beat("b", 2, Some(Assignment::new())), &six(), 3);
    assert_eq!(ok(&out).assignment, None);
    let out = g.heartbeat(beat("a", 1, Some(parts(T, &[0, 1, 2, 3, 4, 5]))), &six(), 4);
    assert_eq!(ok(&out).member_epoch, 1, "still owns revoked partitions");
    let out = g.heartbeat(beat("a", 1, Some(kept.clone())), &six(), 5);
    assert_eq!(ok(&out).member_epoch, 2);
    let out = g.heartbeat(beat("b", 2, Some(Assignment::new())), &six(), 6);
    let gained = ok(&out).assignment.clone().unwrap();
    assert_eq!(assignment_size(&gained), 3);
    assert!(gained[&T].is_disjoint(&kept[&T]));
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    g.check_invariants().unwrap();
}

#[test]
fn a_member_that_no_longer_owns_the_revoked_partitions_advances_at_once() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    g.heartbeat(join("b", &["t"]), &six(), 1);
    // a says it owns nothing (it lost its partitions): no revocation round needed.
    let out = g.heartbeat(beat("a", 1, Some(Assignment::new())), &six(), 2);
    assert_eq!(ok(&out).member_epoch, 2);
    assert_eq!(assignment_size(out.assignment.as_ref().unwrap()), 3);
}

#[test]
fn epochs_are_checked_and_a_lost_response_is_tolerated() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    g.heartbeat(join("b", &["t"]), &six(), 1);
    let out = g.heartbeat(beat("a", 1, Some(Assignment::new())), &six(), 2);
    let assigned = out.assignment.unwrap();
    // The response with epoch 2 was lost: epoch 1 with owned ⊆ assigned is accepted.
    let out = g.heartbeat(beat("a", 1, Some(assigned.clone())), &six(), 3);
    assert_eq!(ok(&out).member_epoch, 2);
    // ... but not without owned partitions, nor with more than it is assigned.
    let out = g.heartbeat(beat("a", 1, None), &six(), 4);
    assert_eq!(out.error, ErrorCode::FencedMemberEpoch);
    let out = g.heartbeat(beat("a", 1, Some(parts(T, &[0, 1, 2, 3, 4, 5]))), &six(), 4);
    assert_eq!(out.error, ErrorCode::FencedMemberEpoch);
    // An epoch from the future is fenced.
    let out = g.heartbeat(beat("a", 7, None), &six(), 5);
    assert_eq!(out.error, ErrorCode::FencedMemberEpoch);
    // An unknown member is told so.
    let out = g.heartbeat(beat("zz", 2, None), &six(), 5);
    assert_eq!(out.error, ErrorCode::UnknownMemberId);
    // A fenced member rejoins at epoch 0 under its id and gets its assignment back.
    let out = g.heartbeat(join("a", &["t"]), &six(), 6);
    assert_eq!(ok(&out).member_epoch, 2);
    assert_eq!(out.assignment, Some(assigned));
    g.check_invariants().unwrap();
}

#[test]
fn leaving_frees_partitions_and_bumps_the_group_epoch() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    g.heartbeat(join("b", &["t"]), &six(), 1);
    g.heartbeat(beat("a", 1, Some(Assignment::new())), &six(), 2);
    g.heartbeat(beat("b", 2, Some(Assignment::new())), &six(), 3);
    let out = g.heartbeat(beat("b", -1, None), &six(), 4);
    assert_eq!(ok(&out).member_epoch, -1);
    assert_eq!(g.group_epoch(), 3);
    let out = g.heartbeat(beat("a", 2, None), &six(), 5);
    assert_eq!(ok(&out).member_epoch, 3);
    assert_eq!(out.assignment, Some(parts(T, &[0, 1, 2, 3, 4, 5])));
    let out = g.heartbeat(beat("b", -1, None), &six(), 6);
    assert_eq!(out.error, ErrorCode::UnknownMemberId);
    g.check_invariants().unwrap();
}

#[test]
fn a_silent_member_is_removed_after_the_session_timeout() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    g.heartbeat(join("b", &["t"]), &six(), 1_000);
    g.heartbeat(beat("a", 1, Some(Assignment::new())), &six(), 2_000);
    g.heartbeat(beat("b", 2, Some(Assignment::new())), &six(), 3_000);
    assert!(g.tick(SESSION_MS - 1).is_empty());
    assert_eq!(g.next_deadline_ms(), Some(SESSION_MS + 2_000));
    g.heartbeat(beat("b", 2, None), &six(), 40_000);
    let fenced = g.tick(SESSION_MS + 2_000);
    assert_eq!(fenced.len(), 1);
    assert_eq!(fenced[0].member_id, "a");
    let out = g.heartbeat(beat("b", 2, None), &six(), SESSION_MS + 3_000);
    assert_eq!(ok(&out).member_epoch, 3);
    assert_eq!(out.assignment, Some(parts(T, &[0, 1, 2, 3, 4, 5])));
    let out = g.heartbeat(beat("a", 2, None), &six(), SESSION_MS + 3_000);
    assert_eq!(out.error, ErrorCode::UnknownMemberId);
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    g.heartbeat(join("b", &["t"]), &six(), 0);
    g.heartbeat(beat("a", 1, None), &six(), 1_000);
    let deadline = 1_000 + REBALANCE_MS as u64;
    g.heartbeat(beat("a", 1, None), &six(), deadline - 1);
    g.heartbeat(beat("b", 2, None), &six(), deadline - 1);
    let fenced = g.tick(deadline);
    assert_eq!(
        fenced,
        vec![FencedMember {
            member_id: "a".to_string(),
            reason: "revocation timeout"
        }]
    );
    let out = g.heartbeat(beat("b", 2, None), &six(), deadline + 1);
    assert_eq!(out.assignment, Some(parts(T, &[0, 1, 2, 3, 4, 5])));
}

fn static_join(member: &str, instance: &str) -> HeartbeatInput {
    HeartbeatInput {
        instance_id: Some(instance.to_string()),
        ..join(member, &["t"])
    }
}

#[test]
fn a_static_member_keeps_its_partitions_across_a_restart() {
    let mut g = group();
    g.heartbeat(static_join("a1", "i-a"), &six(), 0);
    g.heartbeat(static_join("b1", "i-b"), &six(), 0);
    let out = g.heartbeat(beat("a1", 1, Some(Assignment::new())), &six(), 1);
    let a_parts = out.assignment.unwrap();
    g.heartbeat(beat("b1", 2, Some(Assignment::new())), &six(), 1);
    let epoch = g.group_epoch();
    // While a1 is active, another member cannot take its instance id.
    let out = g.heartbeat(static_join("a2", "i-a"), &six(), 2);
    assert_eq!(out.error, ErrorCode::UnreleasedInstanceId);
    // A static leave (-2) keeps the partitions and the epoch.
    let leave = HeartbeatInput {
        instance_id: Some("i-a".to_string()),
        ..beat("a1", -2, None)
    };
    assert_eq!(ok(&g.heartbeat(leave, &six(), 3)).member_epoch, -2);
    assert_eq!(g.group_epoch(), epoch);
    // The restarted instance (new member id) gets the same partitions at once.
    let out = g.heartbeat(static_join("a2", "i-a"), &six(), 4);
    assert_eq!(ok(&out).member_epoch, epoch);
    assert_eq!(out.assignment, Some(a_parts));
    assert_eq!(g.group_epoch(), epoch);
    // The old member id is fenced for that instance.
    let stale = HeartbeatInput {
        instance_id: Some("i-a".to_string()),
        ..beat("a1", epoch, None)
    };
    assert_eq!(
        g.heartbeat(stale, &six(), 5).error,
        ErrorCode::FencedInstanceId
    );
    g.check_invariants().unwrap();
}

#[test]
fn a_static_member_gone_for_its_session_loses_its_partitions() {
    let mut g = group();
    g.heartbeat(static_join("a1", "i-a"), &six(), 0);
    let leave = HeartbeatInput {
        instance_id: Some("i-a".to_string()),
        ..beat("a1", -2, None)
    };
    g.heartbeat(leave, &six(), 1);
    assert_eq!(g.tick(SESSION_MS).len(), 1);
    assert!(g.is_empty());
    assert_eq!(g.state(), ConsumerGroupState::Empty);
    let out = g.heartbeat(static_join("a2", "i-a"), &six(), SESSION_MS + 1);
    assert_eq!(ok(&out).assignment, Some(parts(T, &[0, 1, 2, 3, 4, 5])));
}

#[test]
fn a_regex_subscription_picks_up_a_new_topic() {
    let mut g = group();
    let regex_join = HeartbeatInput {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some("or.*".to_string()),
        ..join("a", &[])
    };
    let one = image(&[("orders", T, 2), ("other-x", U, 0), ("xorders", [3; 16], 4)]);
    let out = g.heartbeat(regex_join, &one, 0);
    assert_eq!(ok(&out).assignment, Some(parts(T, &[0, 1])));
    let two = image(&[
        ("orders", T, 2),
        ("orders-eu", U, 1),
        ("xorders", [3; 16], 4),
    ]);
    let out = g.heartbeat(beat("a", 1, None), &two, 1);
    assert_eq!(ok(&out).member_epoch, 2);
    let mut expected = parts(T, &[0, 1]);
    expected.insert(U, [0].into_iter().collect());
    assert_eq!(out.assignment, Some(expected));
}

#[test]
fn bad_requests_get_kafka_errors() {
    let mut g = group();
    let cases = [
        (join("", &["t"]), ErrorCode::InvalidRequest),
        (
            HeartbeatInput {
                subscribed_topic_names: None,
                ..join("a", &[])
            },
            ErrorCode::InvalidRequest,
        ),
        (
            HeartbeatInput {
                rebalance_timeout_ms: -1,
                ..join("a", &["t"])
            },
            ErrorCode::InvalidRequest,
        ),
        (
            HeartbeatInput {
                owned_partitions: Some(parts(T, &[1])),
                ..join("a", &["t"])
            },
            ErrorCode::InvalidRequest,
        ),
        (beat("a", -2, None), ErrorCode::InvalidRequest),
        (
            HeartbeatInput {
                server_assignor: Some("sticky".to_string()),
                ..join("a", &["t"])
            },
            ErrorCode::UnsupportedAssignor,
        ),
        (
            HeartbeatInput {
                subscribed_topic_regex: Some("(".to_string()),
                ..join("a", &[])
            },
            ErrorCode::InvalidRegularExpression,
        ),
    ];
    for (input, error) in cases {
        let out = g.heartbeat(input.clone(), &six(), 0);
        assert_eq!(out.error, error, "{input:?}");
        assert!(out.error_message.is_some());
    }
    assert!(g.is_empty());
    for member in ["a", "b", "c", "d"] {
        ok(&g.heartbeat(join(member, &["t"]), &six(), 0));
    }
    let out = g.heartbeat(join("e", &["t"]), &six(), 0);
    assert_eq!(out.error, ErrorCode::GroupMaxSizeReached);
}

#[test]
fn offset_commits_and_fetches_check_the_member_epoch() {
    let v9 = CommitSource::OffsetCommit { api_version: 9 };
    let mut g = group();
    assert_eq!(g.validate_offset_commit("", -1, v9), Ok(()));
    assert_eq!(
        g.validate_offset_commit("", -1, CommitSource::OffsetCommit { api_version: 2 }),
        Ok(()),
        "an empty group takes commits without a member at any version"
    );
    g.heartbeat(join("a", &["t"]), &six(), 0);
    assert_eq!(g.validate_offset_commit("a", 1, v9), Ok(()));
    assert_eq!(
        g.validate_offset_commit("a", 0, v9),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_commit("a", 2, v9),
        Err(ErrorCode::StaleMemberEpoch),
        "an epoch ahead of the member's is stale too (Kafka compares for equality)"
    );
    assert_eq!(
        g.validate_offset_commit("x", 1, v9),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        g.validate_offset_commit("", -1, v9),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        g.validate_offset_commit("a", 1, CommitSource::OffsetCommit { api_version: 8 }),
        Err(ErrorCode::UnsupportedVersion)
    );
    assert_eq!(
        g.validate_offset_commit("x", 1, CommitSource::OffsetCommit { api_version: 8 }),
        Err(ErrorCode::UnknownMemberId),
        "the member is looked up before the version is checked"
    );
    assert_eq!(
        g.validate_offset_commit("a", 1, CommitSource::TxnOffsetCommit),
        Ok(())
    );
    assert_eq!(
        g.validate_offset_commit("a", 0, CommitSource::TxnOffsetCommit),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(g.validate_offset_fetch(None, -1), Ok(()));
    assert_eq!(g.validate_offset_fetch(Some("a"), 1), Ok(()));
    assert_eq!(
        g.validate_offset_fetch(Some("a"), 2),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_fetch(Some("b"), 1),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        g.validate_offset_fetch(None, 1),
        Err(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn the_group_uses_the_assignor_most_members_ask_for() {
    let mut g = group();
    let with = |member: &str, assignor: &str| HeartbeatInput {
        server_assignor: Some(assignor.to_string()),
        ..join(member, &["t"])
    };
    assert_eq!(g.assignor(), AssignorKind::Uniform);
    g.heartbeat(with("a", "range"), &six(), 0);
    assert_eq!(g.assignor(), AssignorKind::Range);
    g.heartbeat(with("b", "range"), &six(), 0);
    g.heartbeat(with("c", "uniform"), &six(), 0);
    assert_eq!(g.describe().assignor_name, "range");
    let description = g.describe();
    assert_eq!(description.members.len(), 3);
    assert_eq!(description.group_epoch, 3);
    // Range, sticky: a had 0-2 and b 3-5 at epoch 2; each keeps the first two of them.
    let targets: Vec<Assignment> = description
        .members
        .iter()
        .map(|m| m.target_assignment.clone())
        .collect();
    assert_eq!(targets[0], parts(T, &[0, 1]));
    assert_eq!(targets[1], parts(T, &[3, 4]));
    assert_eq!(targets[2], parts(T, &[2, 5]));
}

#[test]
fn new_partitions_bump_the_group_epoch() {
    let mut g = group();
    g.heartbeat(join("a", &["t"]), &six(), 0);
    let grown = image(&[("t", T, 8)]);
    let out = g.heartbeat(beat("a", 1, None), &grown, 1);
    assert_eq!(ok(&out).member_epoch, 2);
    assert_eq!(out.assignment, Some(parts(T, &[0, 1, 2, 3, 4, 5, 6, 7])));
}

/// Rack-aware assignment through the group: members name racks in their heartbeats, the
/// image knows the partitions' replica racks, and each member's target is its rack's
/// partitions. A member that moves to another rack bumps the group epoch (a new
/// subscription), and the new target follows the racks.
#[test]
fn members_with_racks_get_partitions_of_their_rack() {
    let mut g = group();
    let mut racked = image(&[("t", T, 4)]);
    for (partition, rack) in [(0, "b"), (1, "b"), (2, "a"), (3, "a")] {
        racked.set_partition_racks(T, partition, [rack.to_string()].into());
    }
    let in_rack = |input: HeartbeatInput, rack: &str| HeartbeatInput {
        rack_id: Some(rack.to_string()),
        ..input
    };
    ok(&g.heartbeat(in_rack(join("a", &["t"]), "a"), &racked, 0));
    ok(&g.heartbeat(in_rack(join("b", &["t"]), "b"), &racked, 0));
    let targets = |g: &ConsumerGroup| -> Vec<Assignment> {
        g.describe()
            .members
            .into_iter()
            .map(|m| m.target_assignment)
            .collect()
    };
    assert_eq!(targets(&g), vec![parts(T, &[2, 3]), parts(T, &[0, 1])]);
    let epoch = g.group_epoch();
    let member_epoch = g.describe().members[0].member_epoch;
    ok(&g.heartbeat(in_rack(beat("a", member_epoch, None), "c"), &racked, 1));
    assert_eq!(
        g.group_epoch(),
        epoch + 1,
        "a rack change is a new subscription"
    );
    g.check_invariants().unwrap();
}
