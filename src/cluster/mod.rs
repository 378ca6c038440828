//! Cluster metadata (KRaft-shaped): the typed records of the metadata log, the image every
//! broker builds by applying them in order, and the active controller's pure decisions.
//!
//! Owns: pure state and decisions only. May import: `crate::model`, `crate::metadata`
//! (topic ids, topic-name and topic-config validation), `crate::config` (the `[cluster]`
//! section); `raft` (the metadata Raft driver) also
//! the `raft` crate and `crate::storage::raft_log`, whose store does std file I/O when opened on
//! a directory. No sockets, no glommio, no clocks: time is an argument (ticks, for Raft).
//! Invariants: applying the same records in the same order gives the same image on every
//! broker; an image restored from a snapshot equals the image it was taken from.
//! Runs on: whichever shard hosts the metadata log (see docs/cluster.md).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod controller;
pub mod image;
pub mod image_machine;
pub mod isr_changes;
pub mod leader_elections;
pub mod observation;
pub mod partition_changes;
pub mod raft;
pub mod reassignments;
pub mod records;
pub mod sim;
#[cfg(test)]
mod test_cluster;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod topic_changes;

pub use controller::ControllerError;
pub use image::{ImageError, MetadataImage};
pub use records::{MetadataRecord, NodeId, RecordDecodeError};
