//! Transition tests for the group state machine: every state, error code and the rejoin
//! races the coordinator must survive.

use super::*;
use crate::model::ErrorCode;
use bytes::Bytes;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn limits() -> GroupLimits {
    GroupLimits {
        session_timeout_ms_min: 1_000,
        session_timeout_ms_max: 300_000,
        initial_rebalance_delay_ms: 0,
        members_max: 100,
    }
}

fn join_input(token: RequestToken, member_id: &str, fresh: &str) -> JoinInput {
    JoinInput {
        token,
        member_id: member_id.to_string(),
        group_instance_id: None,
        fresh_member_id: fresh.to_string(),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

fn sync_input(
    token: RequestToken,
    member_id: &str,
    generation_id: i32,
    assignments: &[(&str, &str)],
) -> SyncInput {
    SyncInput {
        token,
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
            .collect(),
    }
}

fn joins(effects: &[Effect]) -> Vec<(RequestToken, JoinOutcome)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CompleteJoin { token, outcome } => Some((*token, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(effects: &[Effect]) -> Vec<(RequestToken, SyncOutcome)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CompleteSync { token, outcome } => Some((*token, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn persisted(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::Persist(_)))
}

/// One member "a" joined and synced: Stable at generation 1.
fn stable_with_a() -> Group {
    let mut group = Group::new("g", limits());
    let (reply, effects) = group.join(join_input(1, "", "a"), 0);
    assert_eq!(reply, Reply::Later);
    let completed = joins(&effects);
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].1.generation_id, 1);
    assert_eq!(completed[0].1.leader, "a");
    let (_, effects) = group.sync(sync_input(2, "a", 1, &[("a", "A")]), 0);
    assert!(persisted(&effects));
    assert_eq!(group.state(), GroupState::Stable);
    group
}

#[test]
fn first_dynamic_member_gets_member_id_required_then_joins() {
    let mut group = Group::new("g", limits());
    let mut input = join_input(1, "", "m-1");
    input.require_known_member_id = true;
    let (reply, effects) = group.join(input, 0);
    assert!(effects.is_empty());
    let Reply::Now(outcome) = reply else {
        panic!("expected an immediate reply")
    };
    assert_eq!(outcome.error, ErrorCode::MemberIdRequired);
    assert_eq!(outcome.member_id, "m-1");
    assert_eq!(group.state(), GroupState::Empty);
    let (reply, effects) = group.join(join_input(2, "m-1", "unused"), 5);
    assert_eq!(reply, Reply::Later);
    let completed = joins(&effects);
    assert_eq!(completed[0].0, 2);
    assert_eq!(
        completed[0].1.members.len(),
        1,
        "the leader sees all members"
    );
    assert_eq!(group.state(), GroupState::CompletingRebalance);
}

#[test]
fn leader_sync_completes_everyone_waiting() {
    let mut group = stable_with_a();
    let (reply, _) = group.join(join_input(3, "", "b"), 10);
    assert_eq!(reply, Reply::Later);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat("a", None, 1, 11),
        ErrorCode::RebalanceInProgress
    );
    let (reply, effects) = group.join(join_input(4, "a", "x"), 12);
    assert_eq!(reply, Reply::Later);
    let completed = joins(&effects);
    assert_eq!(completed.len(), 2);
    for (token, outcome) in &completed {
        assert_eq!(outcome.generation_id, 2);
        assert_eq!(outcome.leader, "a");
        let expected_members = if *token == 4 { 2 } else { 0 };
        assert_eq!(outcome.members.len(), expected_members);
    }
    let (reply, effects) = group.sync(sync_input(5, "b", 2, &[]), 13);
    assert_eq!(reply, Reply::Later);
    assert!(effects.is_empty());
    let (_, effects) = group.sync(sync_input(6, "a", 2, &[("a", "A2"), ("b", "B2")]), 14);
    let done = syncs(&effects);
    assert_eq!(done.len(), 2);
    let b = done.iter().find(|(t, _)| *t == 5).unwrap();
    assert_eq!(b.1.assignment, Bytes::from_static(b"B2"));
    assert_eq!(group.state(), GroupState::Stable);
    assert_eq!(group.heartbeat("b", None, 2, 15), ErrorCode::None);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_deadline() {
    let mut group = stable_with_a();
    group.join(join_input(3, "", "b"), 100);
    let deadline = 100 + REBALANCE_MS as u64;
    // "a" keeps heartbeating (told to rejoin) but never rejoins.
    let mut now = 100;
    while now + 5_000 < deadline {
        now += 5_000;
        assert_eq!(
            group.heartbeat("a", None, 1, now),
            ErrorCode::RebalanceInProgress
        );
        assert!(joins(&group.tick(now)).is_empty());
    }
    let effects = group.tick(deadline);
    let completed = joins(&effects);
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].1.leader, "b");
    assert_eq!(group.member_ids(), vec!["b".to_string()]);
    assert_eq!(
        group.heartbeat("a", None, 2, deadline),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn expired_session_triggers_rebalance() {
    let mut group = stable_with_a();
    group.join(join_input(3, "", "b"), 0);
    group.join(join_input(4, "a", "x"), 0);
    group.sync(sync_input(5, "a", 2, &[("a", "A"), ("b", "B")]), 0);
    assert_eq!(group.state(), GroupState::Stable);
    assert_eq!(group.heartbeat("a", None, 2, 5_000), ErrorCode::None);
    let effects = group.tick(SESSION_MS as u64 + 1);
    assert!(joins(&effects).is_empty());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.member_ids(), vec!["a".to_string()]);
}

#[test]
fn static_member_rejoin_keeps_assignment_without_rebalance() {
    let mut group = Group::new("g", limits());
    let mut input = join_input(1, "", "s-1");
    input.group_instance_id = Some("instance-1".to_string());
    group.join(input.clone(), 0);
    group.sync(sync_input(2, "s-1", 1, &[("s-1", "P0")]), 0);
    let mut other = join_input(3, "", "d-1");
    other.protocols = input.protocols.clone();
    group.join(other, 1);
    group.join(
        JoinInput {
            token: 4,
            member_id: "s-1".to_string(),
            ..input.clone()
        },
        1,
    );
    group.sync(sync_input(5, "s-1", 2, &[("s-1", "P0"), ("d-1", "P1")]), 1);
    assert_eq!(group.state(), GroupState::Stable);
    // The static member restarts: unknown member id, same instance id.
    let restart = JoinInput {
        token: 6,
        fresh_member_id: "s-2".to_string(),
        ..input
    };
    let (reply, effects) = group.join(restart, 2);
    let Reply::Now(outcome) = reply else {
        panic!("static rejoin must answer at once")
    };
    assert_eq!(outcome.error, ErrorCode::None);
    assert_eq!(outcome.member_id, "s-2");
    assert_eq!(outcome.generation_id, 2);
    assert!(
        outcome.skip_assignment,
        "the static leader must not reassign"
    );
    assert!(effects.is_empty());
    assert_eq!(group.state(), GroupState::Stable);
    let (reply, _) = group.sync(sync_input(7, "s-2", 2, &[]), 3);
    let Reply::Now(synced) = reply else { panic!() };
    assert_eq!(synced.assignment, Bytes::from_static(b"P0"));
    // The old incarnation is fenced.
    assert_eq!(
        group.heartbeat("s-1", Some("instance-1"), 2, 3),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(group.heartbeat("d-1", None, 2, 3), ErrorCode::None);
}

#[test]
fn error_codes_for_bad_requests() {
    let mut group = stable_with_a();
    assert_eq!(
        group.heartbeat("zz", None, 1, 1),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        group.heartbeat("a", None, 7, 1),
        ErrorCode::IllegalGeneration
    );
    let (reply, _) = group.sync(sync_input(9, "a", 7, &[]), 1);
    assert_eq!(
        reply,
        Reply::Now(SyncOutcome::error(ErrorCode::IllegalGeneration))
    );
    let (reply, _) = group.sync(sync_input(9, "zz", 1, &[]), 1);
    assert_eq!(
        reply,
        Reply::Now(SyncOutcome::error(ErrorCode::UnknownMemberId))
    );
    let (reply, _) = group.join(join_input(10, "zz", "q"), 1);
    assert!(matches!(reply, Reply::Now(o) if o.error == ErrorCode::UnknownMemberId));
    let mut bad_timeout = join_input(11, "", "q");
    bad_timeout.session_timeout_ms = 10;
    let (reply, _) = group.join(bad_timeout, 1);
    assert!(matches!(reply, Reply::Now(o) if o.error == ErrorCode::InvalidSessionTimeout));
    let mut other_protocol = join_input(12, "", "q");
    other_protocol.protocols = vec![("roundrobin".to_string(), Bytes::new())];
    let (reply, _) = group.join(other_protocol, 1);
    assert!(matches!(reply, Reply::Now(o) if o.error == ErrorCode::InconsistentGroupProtocol));
    let mut wrong_type = join_input(13, "", "q");
    wrong_type.protocol_type = "connect".to_string();
    let (reply, _) = group.join(wrong_type, 1);
    assert!(matches!(reply, Reply::Now(o) if o.error == ErrorCode::InconsistentGroupProtocol));
}

#[test]
fn sync_during_preparing_rebalance_is_rejected() {
    let mut group = stable_with_a();
    group.join(join_input(3, "", "b"), 1);
    let (reply, _) = group.sync(sync_input(4, "a", 1, &[]), 2);
    assert_eq!(
        reply,
        Reply::Now(SyncOutcome::error(ErrorCode::RebalanceInProgress))
    );
}

#[test]
fn leader_that_never_syncs_restarts_the_rebalance() {
    let mut group = stable_with_a();
    group.join(join_input(3, "", "b"), 0);
    group.join(join_input(4, "a", "x"), 0);
    let (reply, _) = group.sync(sync_input(5, "b", 2, &[]), 1);
    assert_eq!(reply, Reply::Later);
    let mut now = 1;
    while now + 5_000 <= REBALANCE_MS as u64 {
        now += 5_000;
        assert_eq!(group.heartbeat("a", None, 2, now), ErrorCode::None);
        assert_eq!(group.heartbeat("b", None, 2, now), ErrorCode::None);
        assert!(syncs(&group.tick(now)).is_empty());
    }
    let effects = group.tick(REBALANCE_MS as u64 + 1);
    let failed = syncs(&effects);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1.error, ErrorCode::RebalanceInProgress);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn leaving_members_rebalance_and_the_last_one_empties_the_group() {
    let mut group = stable_with_a();
    group.join(join_input(3, "", "b"), 0);
    group.join(join_input(4, "a", "x"), 0);
    group.sync(sync_input(5, "a", 2, &[("a", "A"), ("b", "B")]), 0);
    let (errors, effects) = group.leave(&[("b".to_string(), None)], 1);
    assert_eq!(errors, vec![ErrorCode::None]);
    assert!(joins(&effects).is_empty(), "a must rejoin first");
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let (errors, _) = group.leave(&[("nobody".to_string(), None)], 1);
    assert_eq!(errors, vec![ErrorCode::UnknownMemberId]);
    let (_, effects) = group.leave(&[("a".to_string(), None)], 2);
    assert!(persisted(&effects));
    assert_eq!(group.state(), GroupState::Empty);
    assert!(!group.has_members());
}

#[test]
fn a_second_join_from_the_same_member_supersedes_the_first() {
    let mut group = stable_with_a();
    group.join(join_input(3, "", "b"), 0);
    group.join(join_input(4, "a", "x"), 0);
    group.sync(sync_input(5, "a", 2, &[("a", "A"), ("b", "B")]), 0);
    // "c" arrives; "a" rejoins twice while "b" has not rejoined yet.
    group.join(join_input(6, "", "c"), 1);
    let (reply, effects) = group.join(join_input(7, "a", "x"), 1);
    assert_eq!(reply, Reply::Later);
    assert!(joins(&effects).is_empty());
    let (reply, effects) = group.join(join_input(8, "a", "x"), 2);
    assert_eq!(reply, Reply::Later);
    let completed = joins(&effects);
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].0, 7);
    assert_eq!(completed[0].1.error, ErrorCode::RebalanceInProgress);
    let (_, effects) = group.join(join_input(9, "b", "x"), 3);
    let completed = joins(&effects);
    assert_eq!(completed.len(), 3);
    assert!(
        completed
            .iter()
            .any(|(t, o)| *t == 8 && o.error == ErrorCode::None)
    );
}

#[test]
fn commit_validation_follows_kafka() {
    let empty = Group::new("g", limits());
    assert_eq!(empty.validate_commit("", None, -1), ErrorCode::None);
    let mut group = stable_with_a();
    assert_eq!(group.validate_commit("a", None, 1), ErrorCode::None);
    assert_eq!(
        group.validate_commit("a", None, 0),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        group.validate_commit("", None, -1),
        ErrorCode::UnknownMemberId
    );
    group.join(join_input(3, "", "b"), 0);
    assert_eq!(
        group.validate_commit("a", None, 1),
        ErrorCode::None,
        "allowed while preparing"
    );
    group.join(join_input(4, "a", "x"), 0);
    assert_eq!(
        group.validate_commit("a", None, 2),
        ErrorCode::RebalanceInProgress
    );
    group.mark_dead();
    assert_eq!(
        group.validate_commit("a", None, 2),
        ErrorCode::CoordinatorNotAvailable
    );
}

#[test]
fn protocol_selection_takes_the_most_voted_common_protocol() {
    let mut group = Group::new("g", limits());
    let both = |first: &str, second: &str| {
        vec![
            (first.to_string(), Bytes::new()),
            (second.to_string(), Bytes::new()),
        ]
    };
    let mut a = join_input(1, "", "a");
    a.protocols = both("range", "roundrobin");
    group.join(a.clone(), 0);
    group.sync(sync_input(2, "a", 1, &[]), 0);
    let mut b = join_input(3, "", "b");
    b.protocols = both("roundrobin", "range");
    group.join(b, 0);
    let mut c = join_input(4, "", "c");
    c.protocols = both("roundrobin", "range");
    group.join(c, 0);
    let (_, effects) = group.join(
        JoinInput {
            token: 5,
            member_id: "a".to_string(),
            ..a
        },
        0,
    );
    let completed = joins(&effects);
    assert_eq!(completed.len(), 3);
    assert!(
        completed
            .iter()
            .all(|(_, o)| o.protocol_name.as_deref() == Some("roundrobin"))
    );
}

#[test]
fn restore_brings_back_a_stable_group() {
    let group = stable_with_a();
    let snapshot = group.snapshot();
    let restored = Group::restore(&snapshot, limits(), 1_000);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.generation_id(), 1);
    assert_eq!(restored.leader_id(), Some("a"));
    assert_eq!(restored.snapshot(), snapshot);
}

#[test]
fn offsets_partition_matches_kafka_java_hash() {
    // Java: "my-group".hashCode() == -1_906_497_762; abs % 50 == 12.
    assert_eq!(offsets_partition_for("my-group", 50), 12);
    assert!(offsets_partition_for("", 50) == 0);
    for name in ["a", "group-with-a-long-name", "ünïcödé"] {
        let p = offsets_partition_for(name, 16);
        assert!((0..16).contains(&p));
    }
}

/// A group with `initial_rebalance_delay_ms` = 3000, as Kafka ships.
fn delayed_group() -> Group {
    let mut limits = limits();
    limits.initial_rebalance_delay_ms = 3_000;
    Group::new("g", limits)
}

#[test]
fn initial_delay_holds_the_first_rebalance_of_an_empty_group() {
    let mut group = delayed_group();
    let (reply, effects) = group.join(join_input(1, "", "a"), 0);
    assert_eq!(reply, Reply::Later);
    assert!(
        joins(&effects).is_empty(),
        "all joined, but the delay holds"
    );
    assert!(joins(&group.tick(2_999)).is_empty());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let completed = joins(&group.tick(3_000));
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].1.generation_id, 1);
}

#[test]
fn a_member_joining_during_the_initial_delay_extends_it_by_the_delay() {
    let mut group = delayed_group();
    group.join(join_input(1, "", "a"), 0);
    let (reply, effects) = group.join(join_input(2, "", "b"), 1_000);
    assert_eq!(reply, Reply::Later);
    assert!(joins(&effects).is_empty());
    // "b" joined within the first window: Kafka's InitialDelayedJoin waits another delay.
    assert!(joins(&group.tick(3_000)).is_empty());
    assert!(joins(&group.tick(5_999)).is_empty());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let completed = joins(&group.tick(6_000));
    assert_eq!(completed.len(), 2, "both members in the first generation");
    for (_, outcome) in &completed {
        assert_eq!(outcome.generation_id, 1);
    }
    let leader = completed.iter().find(|(token, _)| *token == 1).unwrap();
    assert_eq!(leader.1.members.len(), 2);
}

#[test]
fn initial_delay_extensions_stop_at_the_rebalance_timeout() {
    let mut group = delayed_group();
    let with_timeout = |token, fresh| {
        let mut input = join_input(token, "", fresh);
        input.rebalance_timeout_ms = 7_000;
        input
    };
    group.join(with_timeout(1, "a"), 0);
    group.join(with_timeout(2, "b"), 1_000); // window 0..3000 -> extended to 6000
    assert!(joins(&group.tick(3_000)).is_empty());
    group.join(with_timeout(3, "c"), 4_000); // window ..6000 -> extended by the 1000 left
    assert!(joins(&group.tick(6_000)).is_empty());
    group.join(with_timeout(4, "d"), 6_500); // no time left: no further extension
    assert!(joins(&group.tick(6_999)).is_empty());
    let completed = joins(&group.tick(7_000));
    assert_eq!(completed.len(), 4);
    assert!(completed.iter().all(|(_, o)| o.generation_id == 1));
}

#[test]
fn initial_delay_without_new_members_is_not_extended_and_rebalances_of_a_live_group_are_not_delayed()
 {
    let mut group = delayed_group();
    group.join(join_input(1, "", "a"), 0);
    let completed = joins(&group.tick(3_000));
    assert_eq!(completed.len(), 1);
    group.sync(sync_input(2, "a", 1, &[("a", "A")]), 3_000);
    assert_eq!(group.state(), GroupState::Stable);
    // A second member of a live group: completes as soon as everyone rejoined.
    group.join(join_input(3, "", "b"), 4_000);
    let (_, effects) = group.join(join_input(4, "a", "x"), 4_001);
    let completed = joins(&effects);
    assert_eq!(completed.len(), 2);
    assert!(completed.iter().all(|(_, o)| o.generation_id == 2));
}
