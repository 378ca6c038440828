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

mod machine;
pub mod records;
#[cfg(test)]
mod tests;

pub use machine::*;

/// Kafka's partition of `__consumer_offsets` for a group: `abs(hashCode(group)) % count`,
/// with Java's `String.hashCode` over UTF-16 units.
pub fn offsets_partition_for(group_id: &str, partition_count: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partition_count.max(1)
}

/// Kafka's internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
