//! The executor pool and per-shard state. Each shard is one glommio executor pinned to a
//! core; it owns the partition logs placed on it (`metadata::shard_for`) and is the only
//! place they change. Other shards reach them with typed messages over the channel mesh.
//!
//! Owns: executors, the mesh (`mesh`: senders with traffic counters), `Shard` state,
//! metrics, background tasks (retention, compaction, scrub, recovery-point checkpoints),
//! the start-up check of the data dir (`data_dir`) and its recovery tools
//! (`data_dir_tools`), the start-up barrier (`startup`), the start-up watchdog
//! (`startup_watchdog`) and the executor nudge that works around a glommio wake-up bug
//! (`executor_nudge`).
//! May import: config, model, metadata, storage. Never sockets (that is `server`).
//! Invariants: a `PartitionLog` is touched only on its owning shard; no `RefCell` borrow is
//! held across an `.await`; shard 0 is the controller that serialises catalog changes.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cluster_topics;
mod controller;
mod coordinator_leadership;
pub mod data_dir;
pub mod data_dir_tools;
pub mod disk;
pub mod executor_nudge;
mod group_coordinator;
mod integrity;
pub mod memory;
pub mod mesh;
pub mod messages;
pub mod metrics;
mod partition_ops;
mod peer_connection;
mod pool;
mod producer_checks;
mod reassignment_throttle;
mod remote_verification;
mod replica_fetcher;
mod replicas;
pub mod reply;
pub mod shutdown;
pub mod startup;
pub mod startup_watchdog;
mod state;
mod txn_coordinator;
mod txn_markers;

pub use group_coordinator::monotonic_ms;
pub use messages::*;
pub use pool::{ShardPoolError, run_pool};
pub use state::{OfflineReason, Shard, ShardError};

/// Milliseconds since the Unix epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
