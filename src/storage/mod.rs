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

mod error;
mod log;

pub use error::StorageError;
pub use log::{AppendResult, BatchCache, LogConfig, PartitionLog, ReadResult};
