//! Reassignment tests: a target adds replicas that complete the move once in the ISR (the
//! removed leader hands over, the partition and leader epochs grow), a subset target
//! completes at once, a cancellation restores the original set, and bad requests get
//! Kafka's codes. Every decision's records apply to the image.

use super::*;
use crate::cluster::isr_changes::alter_partition;
use crate::cluster::partition_changes::AlterPartitionRequest;
use crate::cluster::test_cluster::{Cluster, three_replicas};

fn reassign(topic: &str, partition: i32, target: Option<&[NodeId]>) -> ReassignmentRequest {
    ReassignmentRequest {
        topic: topic.to_string(),
        partition,
        target: target.map(<[NodeId]>::to_vec),
    }
}

fn codes(decision: &ReassignmentDecision) -> Vec<i16> {
    decision.results.iter().map(|r| r.error_code).collect()
}

/// The leader's AlterPartition of `orders`-0 to `new_isr` at the current epochs.
fn isr_to(cluster: &Cluster, id: TopicId, new_isr: &[NodeId]) -> AlterPartitionRequest {
    let state = cluster.image.partition(&id, 0).unwrap();
    let leader = state.leader.unwrap();
    AlterPartitionRequest {
        leader,
        leader_broker_epoch: cluster.epochs[&leader],
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        new_isr: new_isr.to_vec(),
        new_isr_broker_epochs: new_isr
            .iter()
            .map(|node| (*node, cluster.epochs[node]))
            .collect(),
    }
}

#[test]
fn a_move_completes_once_the_new_replicas_are_in_sync_and_the_removed_leader_hands_over() {
    let mut cluster = Cluster::new(&[None, None, None, None, None]);
    let id = three_replicas(&mut cluster, &[]);
    let before = cluster.image.partition(&id, 0).unwrap().clone();
    assert_eq!(
        (before.replicas.clone(), before.leader),
        (vec![1, 2, 3], Some(1))
    );

    let decision = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[4, 5, 2]))]);
    assert_eq!(codes(&decision), vec![0]);
    cluster.apply(&decision.records);
    let moving = cluster.image.partition(&id, 0).unwrap().clone();
    assert_eq!(moving.replicas, vec![4, 5, 2, 1, 3]);
    assert_eq!(moving.adding_replicas, vec![4, 5]);
    assert_eq!(moving.removing_replicas, vec![1, 3]);
    assert_eq!(moving.isr, before.isr, "the ISR waits for the new replicas");
    assert_eq!(moving.leader, Some(1));
    assert_eq!(moving.partition_epoch, before.partition_epoch + 1);
    // One new replica caught up: not complete yet.
    let one = alter_partition(
        &cluster.image,
        &cluster.settings,
        id,
        0,
        &isr_to(&cluster, id, &[1, 2, 3, 4]),
    )
    .unwrap();
    assert_eq!(one.records.len(), 1);
    cluster.apply(&one.records);
    assert!(in_progress(cluster.image.partition(&id, 0).unwrap()));

    // Both: the ISR change, then the completion (a separate record).
    let both = alter_partition(
        &cluster.image,
        &cluster.settings,
        id,
        0,
        &isr_to(&cluster, id, &[1, 2, 3, 4, 5]),
    )
    .unwrap();
    assert_eq!(both.records.len(), 2);
    assert_eq!(
        both.state.isr,
        vec![1, 2, 3, 4, 5],
        "the answer is the ISR change"
    );
    cluster.apply(&both.records);
    let done = cluster.image.partition(&id, 0).unwrap().clone();
    assert_eq!(done.replicas, vec![4, 5, 2]);
    assert_eq!(done.isr, vec![2, 4, 5]);
    assert!(done.adding_replicas.is_empty() && done.removing_replicas.is_empty());
    assert_eq!(
        done.leader,
        Some(4),
        "the first target replica in the ISR leads"
    );
    assert_eq!(done.leader_epoch, moving.leader_epoch + 1);
    assert_eq!(done.partition_epoch, both.state.partition_epoch + 1);
}

#[test]
fn a_target_within_the_replicas_completes_at_once_and_a_reorder_is_a_change() {
    let mut cluster = Cluster::new(&[None, None, None]);
    let id = three_replicas(&mut cluster, &[]);
    let decision = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[3, 2]))]);
    assert_eq!(codes(&decision), vec![0]);
    cluster.apply(&decision.records);
    let state = cluster.image.partition(&id, 0).unwrap().clone();
    assert_eq!(
        (state.replicas.clone(), state.isr.clone()),
        (vec![3, 2], vec![2, 3])
    );
    assert_eq!(state.leader, Some(3));
    assert!(!in_progress(&state));

    let same = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[3, 2]))]);
    assert_eq!(codes(&same), vec![0]);
    assert!(same.records.is_empty(), "the same replicas: nothing to do");
    let reorder = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[2, 3]))]);
    cluster.apply(&reorder.records);
    let state = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(
        (state.replicas.clone(), state.leader),
        (vec![2, 3], Some(3))
    );
}

#[test]
fn a_cancellation_restores_the_original_replicas() {
    let mut cluster = Cluster::new(&[None, None, None, None]);
    let id = three_replicas(&mut cluster, &[]);
    let before = cluster.image.partition(&id, 0).unwrap().clone();
    let decision = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[4, 2, 3]))]);
    cluster.apply(&decision.records);
    let partial = alter_partition(
        &cluster.image,
        &cluster.settings,
        id,
        0,
        &isr_to(&cluster, id, &[1, 2, 3]),
    )
    .unwrap();
    cluster.apply(&partial.records);
    let cancel = alter_reassignments(&cluster.image, &[reassign("orders", 0, None)]);
    assert_eq!(codes(&cancel), vec![0]);
    cluster.apply(&cancel.records);
    let state = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(
        state.replicas,
        vec![2, 3, 1],
        "the original set (target order first)"
    );
    assert!(!in_progress(state));
    assert_eq!(state.leader, before.leader);
    let again = alter_reassignments(&cluster.image, &[reassign("orders", 0, None)]);
    assert_eq!(
        codes(&again),
        vec![ErrorCode::NoReassignmentInProgress.code()]
    );
}

#[test]
fn bad_requests_get_kafkas_codes_and_change_nothing() {
    let mut cluster = Cluster::new(&[None, None, None]);
    three_replicas(&mut cluster, &[]);
    let requests = [
        reassign("nope", 0, Some(&[1])),
        reassign("orders", 7, Some(&[1])),
        reassign("orders", 0, Some(&[])),
        reassign("orders", 0, Some(&[1, 1])),
        reassign("orders", 0, Some(&[1, 9])),
    ];
    let decision = alter_reassignments(&cluster.image, &requests);
    let unknown = ErrorCode::UnknownTopicOrPartition.code();
    let invalid = ErrorCode::InvalidReplicaAssignment.code();
    assert_eq!(
        codes(&decision),
        vec![unknown, unknown, invalid, invalid, invalid]
    );
    assert!(decision.records.is_empty());
}

#[test]
fn a_new_target_replaces_one_in_progress() {
    let mut cluster = Cluster::new(&[None, None, None, None, None]);
    let id = three_replicas(&mut cluster, &[]);
    let first = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[1, 2, 4]))]);
    cluster.apply(&first.records);
    let second = alter_reassignments(&cluster.image, &[reassign("orders", 0, Some(&[1, 2, 5]))]);
    cluster.apply(&second.records);
    let state = cluster.image.partition(&id, 0).unwrap();
    assert_eq!(state.replicas, vec![1, 2, 5, 4, 3]);
    assert_eq!(state.adding_replicas, vec![5]);
    assert_eq!(state.removing_replicas, vec![4, 3]);
}
