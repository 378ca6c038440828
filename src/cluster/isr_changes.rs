//! The active controller's AlterPartition decision (Kafka API 56): a partition leader asks
//! to change its ISR, and the controller checks the request against the image. A pure
//! function of the image; the per-partition rule is `partition_changes::alter_partition`
//! (KIP-966 ELR).
//!
//! Owns: the order of AlterPartition's checks against the image (the leader's broker epoch,
//! the topic id, the partition) and the inputs of the rule (the topic's
//! `min.insync.replicas`, usable replicas, registered broker epochs). May import:
//! `super::{image, records, partition_changes, controller}`, `crate::metadata` (topic ids).
//! No I/O, no clock. Runs wherever the active controller runs.
//! Invariants: an accepted request returns at most one `PartitionChange` record, which
//! applies to the image it was decided on; a request that changes nothing returns none.

use super::controller::{ControllerError, ControllerSettings, ElectionPolicy};
use super::image::{MetadataImage, PartitionState};
use super::partition_changes::{self, AlterPartitionRequest, change_record};
use super::records::{MetadataRecord, NodeId};
use crate::metadata::{TopicId, topic_id_hex};

/// An accepted AlterPartition: the partition's state after it, and the `PartitionChange`
/// record that makes it so (none when the request changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionDecision {
    pub state: PartitionState,
    pub records: Vec<MetadataRecord>,
}

/// AlterPartition (Kafka API 56) of one partition, in Kafka's order: the leader's broker epoch
/// against its registration (an unregistered leader is STALE_BROKER_EPOCH too), the topic id
/// (UNKNOWN_TOPIC_ID) and partition (UNKNOWN_TOPIC_OR_PARTITION), then
/// `partition_changes::alter_partition` with the topic's `min.insync.replicas`
/// (`ElectionPolicy`), a replica usable when registered and unfenced (as in elections).
pub fn alter_partition(
    image: &MetadataImage,
    settings: &ControllerSettings,
    topic_id: TopicId,
    partition: i32,
    request: &AlterPartitionRequest,
) -> Result<AlterPartitionDecision, ControllerError> {
    let registered = image.broker(request.leader).map(|b| b.broker_epoch);
    let Some(leader_broker_epoch) =
        registered.filter(|epoch| *epoch == request.leader_broker_epoch)
    else {
        return Err(ControllerError::StaleBrokerEpoch {
            node_id: request.leader,
            registered: registered.unwrap_or(-1),
            requested: request.leader_broker_epoch,
        });
    };
    let topic = image
        .topic(&topic_id)
        .ok_or_else(|| ControllerError::UnknownTopicId(topic_id_hex(&topic_id)))?;
    let state = image.partition(&topic_id, partition).ok_or_else(|| {
        ControllerError::UnknownTopicOrPartition(format!("{}-{partition}", topic.name))
    })?;
    let policy = ElectionPolicy::of(image, topic, settings);
    let usable = |node: NodeId| image.broker(node).is_some_and(|broker| !broker.fenced);
    let registered_broker_epoch = |node: NodeId| image.broker(node).map(|b| b.broker_epoch);
    let next = partition_changes::alter_partition(
        state,
        request,
        leader_broker_epoch,
        policy.min_insync_replicas,
        &usable,
        &registered_broker_epoch,
    )
    .map_err(ControllerError::AlterPartitionRefused)?;
    let mut records = if next == *state {
        Vec::new()
    } else {
        vec![change_record(topic_id, partition, state, &next)]
    };
    // An ISR that now holds every replica a reassignment adds completes it, in a change of
    // its own after this one (the answer carries the ISR change).
    if let Some((_, completion)) =
        super::reassignments::completion_record(image, topic_id, partition, &next)
    {
        records.push(completion);
    }
    Ok(AlterPartitionDecision {
        state: next,
        records,
    })
}

#[cfg(test)]
#[path = "isr_changes_tests.rs"]
mod tests;
