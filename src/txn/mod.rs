//! The transaction coordinator's logic as pure functions over `TxnMetadata`, and the
//! `__transaction_state` record format. The shell (`shard::txn_coordinator`) persists
//! metadata, writes transaction markers to partitions and answers requests.
//!
//! Owns: transactional-id state transitions (Empty → Ongoing → Prepare* → Complete*),
//! producer fencing by epoch, transaction timeouts.
//! May import: `crate::model` only. Runs on: the shard owning the transactional id's
//! `__transaction_state` partition.
//! Invariants: the producer epoch only grows for a producer id; a transaction is Prepare*
//! only while its markers are being written; Complete* has no partitions.

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod machine;
pub mod records;
#[cfg(test)]
mod tests;

pub use machine::*;

/// Kafka's internal topic holding transaction metadata.
pub const TRANSACTIONS_TOPIC: &str = "__transaction_state";
