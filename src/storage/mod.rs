//! The partition log: segments of Kafka v2 record batches on disk, written with O_DIRECT,
//! with sparse offset and time indexes, crash recovery, retention and a per-shard batch cache.
//!
//! Owns: everything under `<data_dir>/<topic>-<partition>/`.
//! May import: `crate::model`, `crate::config` (for `SyncPolicy`). Knows nothing of sockets,
//! requests or shards (no `crate::server`, `crate::shard`, `crate::protocol`).
//! Runs on: the shard that owns the partition; a `PartitionLog` is `!Send` and every method
//! is called from that shard's executor only.
//! Invariants: offsets are dense and increasing per batch; the high watermark never passes
//! the log end offset; a batch that fails its CRC is never returned by `read`.
//!
//! Layout: `log` (public façade and types) over `state` (shared state), `append`,
//! `flusher` (syncs, group commit) with `writer` (the O_DIRECT write stream), `reader`, `recovery` (open/close) with `tail` (the last segment: torn tail or damage), `retention`
//! (retention, DeleteRecords, truncation), `segment`, `index`, `scan`, `scrub` (paced
//! re-check of finished segments), `cache`, `producer`,
//! `checkpoint`, `io`, `signal`, `stats` (shard-wide counters: fdatasync latency), `txn_state` (transactions: last stable offset, aborted
//! transaction index), `txn_tickets` (transaction verification, KIP-890 part 1);
//! `compaction` (cleanup.policy=compact) and `conform` (topic rules applied to incoming
//! batches: compression.type, keys on compacted topics); `offline` (directory operations
//! outside an open log: tombstone deletion, repair, producer-id survey); `raft_log` (the cluster
//! metadata Raft log, hard state and snapshot under its own directory, std fs). See
//! docs/durability.md for the durability contract.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod append;
mod blocking_fs;
mod cache;
mod checkpoint;
mod compaction;
mod conform;
mod error;
mod flusher;
mod index;
mod io;
mod log;
mod offline;
mod producer;
pub mod raft_log;
mod reader;
mod recovery;
mod retention;
mod scan;
mod scrub;
mod segment;
pub(crate) mod signal;
mod state;
mod stats;
mod tail;
mod txn_state;
mod txn_tickets;
mod writer;

#[cfg(test)]
mod tests;

pub use blocking_fs::{BlockingOp, FS_GATE_ENV, run_off_shard, set_in_flight_max};
pub use cache::{BatchCache, CacheStats};
pub use compaction::{CleanupPolicy, CompactionStats};
pub use error::{RecordError, StorageError};
pub use io::{PROBE_FILE_PREFIX, one_off_executor, prime_iopoll_probe};
pub use log::{
    AppendResult, LogConfig, PRODUCER_IDS_MAX_DEFAULT, PartitionLog, ReadLimits, ReadResult,
};
pub use offline::{
    DAMAGED_SUFFIX, RepairReport, TOMBSTONE_SUFFIX, max_producer_id, remove_partition_dir,
    repair_damaged, start_empty_log_at, tombstone_name,
};
pub use scrub::ScrubStats;
pub use state::LogStats;
pub use stats::StorageStats;
pub use txn_state::{AbortedTransaction, ProducerInfo};

/// Runs the recovery scanner's batch parser over `bytes` as if they were a segment:
/// returns how many leading bytes are valid batches. For fuzzing and tests.
#[doc(hidden)]
pub fn valid_segment_prefix(bytes: &[u8]) -> usize {
    let mut position = 0usize;
    while let Some(rest) = bytes.get(position..) {
        match scan::parse_one(rest) {
            Ok(total) if total > 0 => position += total,
            _ => break,
        }
    }
    position
}
