//! The classic consumer-group protocol as a pure state machine:
//! `(group, input, now_ms) -> (reply, effects)`. No sockets, clocks or executors here, so
//! every transition is unit-tested. The coordinator shell (`shard::group_coordinator`) turns
//! Kafka requests into inputs, delivers effects (delayed join/sync responses, persistence)
//! and drives `tick` from a timer.
//!
//! Owns: group membership, generations, rebalance state, member assignments.
//! May import: `crate::model` only. Runs on: the shard owning the group's
//! `__consumer_offsets` partition.
//! Invariants: the generation only grows; the leader is a member; a member awaits at most
//! one join and one sync (identified by the shell's request token); a group with no members
//! is Empty (or Dead once deleted).

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod consumer;
mod interface;
mod machine;
mod record_codec;
pub mod records;
#[cfg(test)]
mod tests;

pub use interface::*;
pub use machine::*;

/// Kafka's partition of `__consumer_offsets` for a group.
pub fn offsets_partition_for(group_id: &str, partition_count: i32) -> i32 {
    crate::model::coordinator_partition(group_id, partition_count)
}

/// Kafka's internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
