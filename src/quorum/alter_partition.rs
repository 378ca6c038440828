//! A partition leader's AlterPartition (Kafka API 56) in cluster mode: one partition's ISR
//! change sent to the active controller through the forwarder, and the partition state it got.
//!
//! Owns: the translation between one AlterPartition item and the controller protocol's
//! request and answer. May import: `super::{forwarder, frame}`,
//! `crate::cluster::{partition_changes, records}`, `crate::model::ErrorCode`. Runs on: a
//! shard (`alter_partition` awaits the forwarder's oneshot; the socket work is the
//! forwarder thread's).
//! Invariants: `Ok` only for an answer with error code 0 that carries a partition state (the
//! controller answers it once the change is applied, or at once when it changed nothing); any
//! other answer is an `Err` with a Kafka code, so a caller never mistakes a refusal for the
//! new state. Retries are the caller's (Kafka's leader keeps one AlterPartition in flight).

use super::forwarder::forward;
use super::frame::ControllerRequest;
use crate::cluster::partition_changes::AlterPartitionRequest;
use crate::cluster::records::Uuid;
use crate::model::ErrorCode;
use std::time::Instant;

pub use super::frame::AlteredPartition;

/// One partition of an AlterPartition, as its leader sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionItem {
    /// The topic id the metadata log knows the topic by.
    pub topic_id: Uuid,
    pub partition: i32,
    pub request: AlterPartitionRequest,
}

/// Sends one AlterPartition to the active controller through the forwarder
/// (`super::forwarder::forward`) and waits at most until `deadline` (plus the forwarder's
/// grace). Ok: the partition's state after the change committed (or the current state if it
/// changed nothing). Err: Kafka's error code (the controller's decision, or
/// REQUEST_TIMED_OUT / NOT_CONTROLLER from the transport).
pub async fn alter_partition(
    item: AlterPartitionItem,
    deadline: Instant,
) -> Result<AlteredPartition, ErrorCode> {
    let request = ControllerRequest::AlterPartition {
        topic_id: item.topic_id,
        partition: item.partition,
        request: item.request,
    };
    let response = forward(request, deadline)
        .await
        .map_err(ErrorCode::from_code)?;
    answer(response.error_code, response.partition)
}

/// The outcome of a controller answer's error code and partition state.
fn answer(
    error_code: i16,
    partition: Option<AlteredPartition>,
) -> Result<AlteredPartition, ErrorCode> {
    if error_code != ErrorCode::None.code() {
        return Err(ErrorCode::from_code(error_code));
    }
    // A success without a state would be a controller bug: refused rather than guessed.
    partition.ok_or(ErrorCode::UnknownServerError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AlteredPartition {
        AlteredPartition {
            leader: 1,
            leader_epoch: 2,
            partition_epoch: 3,
            isr: vec![1, 2],
        }
    }

    #[test]
    fn only_a_success_with_a_state_is_ok() {
        assert_eq!(answer(0, Some(state())), Ok(state()));
        assert_eq!(answer(77, None), Err(ErrorCode::StaleBrokerEpoch));
        assert_eq!(
            answer(95, Some(state())),
            Err(ErrorCode::InvalidUpdateVersion)
        );
        assert_eq!(answer(0, None), Err(ErrorCode::UnknownServerError));
    }

    #[test]
    fn without_cluster_mode_the_transport_answers_not_controller() {
        let item = AlterPartitionItem {
            topic_id: [1; 16],
            partition: 0,
            request: AlterPartitionRequest {
                leader: 1,
                leader_broker_epoch: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                new_isr: vec![1],
                new_isr_broker_epochs: Vec::new(),
            },
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let outcome = futures_lite::future::block_on(alter_partition(item, deadline));
        assert_eq!(outcome, Err(ErrorCode::NotController));
    }
}
