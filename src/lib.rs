//! shardlog: a Kafka-compatible message broker, thread-per-core on io_uring (glommio).
//!
//! Module dependencies point one way: model ← protocol ← server;
//! model ← storage ← shard ← server; group and metadata sit beside storage.
//! See docs/architecture.md.

pub mod cluster;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod huge_alloc;
pub mod metadata;
pub mod model;
pub mod protocol;
pub mod quorum;
pub mod replication;
pub mod security;
pub mod server;
pub mod shard;
pub mod storage;
pub mod txn;
