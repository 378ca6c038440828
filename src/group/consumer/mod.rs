//! The KIP-848 `consumer` group protocol as a pure state machine, beside the classic one in
//! `group::machine`: members heartbeat (ConsumerGroupHeartbeat) with their subscription and
//! the partitions they own; the group computes a target assignment with a server-side
//! assignor and each member reconciles towards it incrementally.
//!
//! Owns: consumer-group members with member epochs, the group epoch, the target assignment
//! and its epoch, partition ownership (who holds a partition, including partitions a member
//! still has to revoke), session and revocation deadlines.
//! May import: `crate::model` only (plus `regex`). No clocks: `now_ms` comes from the shell.
//! Runs on: the shard owning the group's `__consumer_offsets` partition.
//! Invariants (checked by `ConsumerGroup::check_invariants` and the property tests):
//! - a partition is held (assigned or pending revocation) by at most one member;
//! - a member is given a partition only once no other member holds it (revocation before
//!   reassignment), so two members never own one partition at once;
//! - the group epoch only grows; the target assignment epoch never exceeds it; a member's
//!   epoch never exceeds the target assignment epoch.

mod assignor;
mod durable;
mod group;
mod reconcile;
pub mod records;
mod types;

#[cfg(test)]
mod assignor_tests;
#[cfg(test)]
mod durable_tests;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;

pub use assignor::{AssignorKind, AssignorMember, compute_target_assignment};
pub use durable::GroupRecords;
pub use group::ConsumerGroup;
pub use types::*;
