//! Partition replication (Kafka's protocol: ISR, high watermark, leader epochs, KIP-101/279/320
//! truncation, KIP-966 high-watermark rule) as pure state machines, and the seeded
//! deterministic simulator that tests them with the controller's real decisions.
//!
//! Owns: the leader's view of its followers (`leader`: fetch positions, high watermark, ISR
//! shrink/expand proposals), the follower's truncation and fetch decisions (`follower`), and
//! the simulator (`sim`, tests only). May import: `crate::model` (error codes, the leader-epoch
//! cache), `crate::cluster` (partition state, the controller's partition decisions). No I/O,
//! no clocks, no sockets: times are arguments, records stay with the caller.
//! Invariants: the high watermark never decreases and only counts offsets every member of the
//! (maximal) ISR holds; a follower truncates to the leader's log before it fetches in a new
//! leader epoch; a request carrying another leader epoch than the partition's is refused.
//! Runs on: the shard that owns the partition (the broker shell drives it; see
//! docs/replication.md for what is wired and what is not yet).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod follower;
pub mod leader;
#[cfg(test)]
mod sim;

pub use crate::cluster::NodeId;

/// Checks the `current_leader_epoch` a request carries against the partition's (KIP-320):
/// an older epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (this replica has
/// not learnt it yet); -1 (a client that does not send one) is accepted.
pub fn check_leader_epoch(
    current_leader_epoch: i32,
    partition_leader_epoch: i32,
) -> Result<(), crate::model::ErrorCode> {
    use crate::model::ErrorCode;
    if current_leader_epoch < 0 || current_leader_epoch == partition_leader_epoch {
        Ok(())
    } else if current_leader_epoch < partition_leader_epoch {
        Err(ErrorCode::FencedLeaderEpoch)
    } else {
        Err(ErrorCode::UnknownLeaderEpoch)
    }
}
