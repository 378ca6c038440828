//! Partition reassignment (KIP-455, as Kafka's KRaft controller does it): moving a
//! partition's replicas to another set of brokers with the data copied first.
//!
//! AlterPartitionReassignments sets a target. The partition's replicas become the target
//! followed by the replicas to remove (`removing_replicas`: current ones not in the target);
//! `adding_replicas` are target ones not in the current set. The new replicas follow the
//! leader like any replica and join the ISR through AlterPartition once caught up. When
//! every adding replica is in the ISR the reassignment completes: the replicas become the
//! target, the ISR loses the removed replicas, and a removed leader hands leadership to the
//! first target replica in the ISR. A reassignment that adds nothing completes at once (if
//! the ISR keeps a member). A null target cancels: the adding replicas go, the original set
//! stays.
//!
//! Owns: the decisions (pure). May import: `super::image`, `super::partition_changes`,
//! `super::records`. Runs on: the active controller.
//! Invariants: a completed reassignment never leaves the ISR empty or the leader outside
//! it; adding and removing replicas are disjoint subsets of the replicas; every change
//! bumps the partition epoch, and the leader epoch when the leader changes.

use super::image::{MetadataImage, PartitionState};
use super::leader_elections::ElectionResult;
use super::partition_changes::{change_record, finish};
use super::records::{MetadataRecord, NodeId};
use crate::metadata::TopicId;
use crate::model::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

/// One partition of an AlterPartitionReassignments request: `target` replicas, or `None`
/// to cancel the reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentRequest {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<NodeId>>,
}

/// The records of one AlterPartitionReassignments request (one raft entry) and its
/// per-partition results in request order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReassignmentDecision {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<ElectionResult>,
}

/// Decides AlterPartitionReassignments. A broker is usable when registered and unfenced
/// (for a new leader); a target may name any registered broker. Errors per partition, as
/// Kafka: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (empty, duplicates, an
/// unregistered broker; or a cancellation that would leave no ISR member),
/// NO_REASSIGNMENT_IN_PROGRESS (a cancellation with none).
pub fn alter_reassignments(
    image: &MetadataImage,
    requests: &[ReassignmentRequest],
) -> ReassignmentDecision {
    let usable = |node: NodeId| image.broker(node).is_some_and(|broker| !broker.fenced);
    let registered = |node: NodeId| image.broker(node).is_some();
    // Several entries for one partition apply in order, each on the state the previous left.
    let mut changed: BTreeMap<(TopicId, i32), (PartitionState, PartitionState)> = BTreeMap::new();
    let mut decision = ReassignmentDecision::default();
    for request in requests {
        let result = |code: ErrorCode| ElectionResult {
            topic: request.topic.clone(),
            partition: request.partition,
            error_code: code.code(),
        };
        let Some(topic) = image.topic_by_name(&request.topic) else {
            decision
                .results
                .push(result(ErrorCode::UnknownTopicOrPartition));
            continue;
        };
        let key = (topic.id, request.partition);
        let Some(current) = changed
            .get(&key)
            .map(|(_, now)| now.clone())
            .or_else(|| image.partition(&topic.id, request.partition).cloned())
        else {
            decision
                .results
                .push(result(ErrorCode::UnknownTopicOrPartition));
            continue;
        };
        if let Some(target) = &request.target
            && let Err(code) = check_target(target, &registered)
        {
            decision.results.push(result(code));
            continue;
        }
        let next = match reassign(&current, request.target.as_deref(), &usable) {
            Ok(next) => next,
            Err(code) => {
                decision.results.push(result(code));
                continue;
            }
        };
        changed
            .entry(key)
            .and_modify(|(_, now)| *now = next.clone())
            .or_insert((current, next));
        decision.results.push(result(ErrorCode::None));
    }
    for ((topic_id, partition), (before, after)) in changed {
        if before != after {
            decision
                .records
                .push(change_record(topic_id, partition, &before, &after));
        }
    }
    decision
}

/// The partition after a (checked) `target` is set, or its move cancelled (`None`), with
/// its epochs: unchanged when nothing changes.
pub fn reassign(
    state: &PartitionState,
    target: Option<&[NodeId]>,
    usable: &dyn Fn(NodeId) -> bool,
) -> Result<PartitionState, ErrorCode> {
    let next = match target {
        Some(target) => start(state, target, usable),
        None => cancel(state, usable)?,
    };
    Ok(finish(state, next).unwrap_or_else(|| state.clone()))
}

/// A target is a non-empty list of registered brokers without duplicates.
fn check_target(target: &[NodeId], registered: &dyn Fn(NodeId) -> bool) -> Result<(), ErrorCode> {
    let distinct: BTreeSet<NodeId> = target.iter().copied().collect();
    if target.is_empty() || distinct.len() != target.len() {
        return Err(ErrorCode::InvalidReplicaAssignment);
    }
    if !target.iter().all(|node| registered(*node)) {
        return Err(ErrorCode::InvalidReplicaAssignment);
    }
    Ok(())
}

/// The state with `target` set (epochs untouched: `finish` sets them), completed at once if
/// nothing is to be added.
fn start(
    state: &PartitionState,
    target: &[NodeId],
    usable: &dyn Fn(NodeId) -> bool,
) -> PartitionState {
    let removing: Vec<NodeId> = state
        .replicas
        .iter()
        .copied()
        .filter(|node| !target.contains(node))
        .collect();
    let adding: Vec<NodeId> = target
        .iter()
        .copied()
        .filter(|node| !state.replicas.contains(node))
        .collect();
    let mut next = state.clone();
    next.replicas = target
        .iter()
        .copied()
        .chain(removing.iter().copied())
        .collect();
    next.adding_replicas = adding;
    next.removing_replicas = removing;
    maybe_complete(&next, usable).unwrap_or(next)
}

/// Cancels the reassignment in progress: the adding replicas leave the replicas, the ISR
/// and the leadership.
fn cancel(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
) -> Result<PartitionState, ErrorCode> {
    if !in_progress(state) {
        return Err(ErrorCode::NoReassignmentInProgress);
    }
    without(state, &state.adding_replicas, usable).ok_or(ErrorCode::InvalidReplicaAssignment)
}

/// Whether `state` has a reassignment in progress.
pub fn in_progress(state: &PartitionState) -> bool {
    !state.adding_replicas.is_empty() || !state.removing_replicas.is_empty()
}

/// The completed state if `state`'s reassignment can complete now: every adding replica is
/// in the ISR, the ISR keeps a member without the removed replicas, and (if the leader is
/// removed) a usable target replica in the ISR can lead. Epochs untouched.
pub fn maybe_complete(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
) -> Option<PartitionState> {
    if !in_progress(state) {
        return None;
    }
    if !state
        .adding_replicas
        .iter()
        .all(|node| state.isr.contains(node))
    {
        return None;
    }
    without(state, &state.removing_replicas, usable)
}

/// `state` with `gone` out of its replicas, ISR and ELR and no reassignment in progress; a
/// leader among `gone` hands over to the first replica in the ISR that can lead. `None` if
/// the ISR would be empty or nobody could lead. Epochs untouched.
fn without(
    state: &PartitionState,
    gone: &[NodeId],
    usable: &dyn Fn(NodeId) -> bool,
) -> Option<PartitionState> {
    let kept = |node: &NodeId| !gone.contains(node);
    let mut next = state.clone();
    next.replicas.retain(kept);
    next.isr.retain(kept);
    next.elr.retain(kept);
    next.last_known_elr.retain(kept);
    next.adding_replicas.clear();
    next.removing_replicas.clear();
    if next.isr.is_empty() {
        return None;
    }
    if next
        .leader
        .is_some_and(|leader| !next.isr.contains(&leader))
    {
        next.leader = Some(first_usable_in_isr(&next, usable)?);
    }
    Some(next)
}

/// The first replica (in replica order) in the ISR that can lead.
fn first_usable_in_isr(state: &PartitionState, usable: &dyn Fn(NodeId) -> bool) -> Option<NodeId> {
    state
        .replicas
        .iter()
        .copied()
        .find(|node| state.isr.contains(node) && usable(*node))
}

/// The change that completes `state`'s reassignment, if it can complete now (a separate
/// record after the ISR change that made it possible, so the leader that asked for that
/// ISR change learns the new replica set from the metadata like every broker).
pub fn completion_record(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    state: &PartitionState,
) -> Option<(PartitionState, MetadataRecord)> {
    let usable = |node: NodeId| image.broker(node).is_some_and(|broker| !broker.fenced);
    let next = completed(state, &usable)?;
    let record = change_record(topic_id, partition, state, &next);
    Some((next, record))
}

/// `state` with its reassignment completed, with its epochs, if it can complete now.
pub fn completed(
    state: &PartitionState,
    usable: &dyn Fn(NodeId) -> bool,
) -> Option<PartitionState> {
    finish(state, maybe_complete(state, usable)?)
}

#[cfg(test)]
#[path = "reassignments_tests.rs"]
mod tests;
