//! Small per-partition metadata files: the log start offset checkpoint, the recovery point
//! checkpoint (every offset below it was synced), the high-watermark checkpoint of a
//! replicated partition (every offset below it was committed), the leader-epoch checkpoint
//! (Kafka's text format), and the clean-shutdown marker.
//!
//! Owns: these formats. May import: `super::io`, `crate::model::leader_epochs` (the leader
//! epoch cache and its text codec).
//! Invariants: leader-epoch entries strictly increase in epoch and never decrease in start
//! offset; files are replaced atomically; the recovery point only moves back when the log
//! is truncated on purpose (`truncate_to`). Runs on: the shard owning the partition.

use super::StorageError;
use super::io;
pub use crate::model::leader_epochs::LeaderEpochCache;
use std::path::{Path, PathBuf};

pub(crate) const LOG_START_FILE: &str = "log-start-offset.checkpoint";
/// Kafka's `recovery-point-offset-checkpoint`, per partition: offsets below it were synced.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset.checkpoint";
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's `replication-offset-checkpoint`, per partition: the replicated high watermark.
pub(crate) const HIGH_WATERMARK_FILE: &str = "replication-offset.checkpoint";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const VERSION: &str = "0";

pub(crate) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Parses `0\n<offset>\n`; `None` if absent or malformed (logged by the caller).
pub(crate) fn parse_log_start(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let offset: i64 = lines.next()?.trim().parse().ok()?;
    (offset >= 0).then_some(offset)
}

pub(crate) async fn write_log_start(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_offset(dir, LOG_START_FILE, offset).await
}

pub(crate) async fn read_log_start(dir: &Path) -> Result<Option<i64>, StorageError> {
    read_offset(dir, LOG_START_FILE).await
}

pub(crate) async fn write_recovery_point(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_offset(dir, RECOVERY_POINT_FILE, offset).await
}

pub(crate) async fn read_recovery_point(dir: &Path) -> Result<Option<i64>, StorageError> {
    read_offset(dir, RECOVERY_POINT_FILE).await
}

pub(crate) async fn write_high_watermark(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_offset(dir, HIGH_WATERMARK_FILE, offset).await
}

pub(crate) async fn read_high_watermark(dir: &Path) -> Result<Option<i64>, StorageError> {
    read_offset(dir, HIGH_WATERMARK_FILE).await
}

async fn write_offset(dir: &Path, name: &str, offset: i64) -> Result<(), StorageError> {
    let text = format!("{VERSION}\n{offset}\n");
    io::write_file_atomically(&path(dir, name), text.into_bytes()).await
}

/// A `0\n<offset>\n` checkpoint; a malformed one is logged and ignored (it only narrows
/// what recovery trusts).
async fn read_offset(dir: &Path, name: &str) -> Result<Option<i64>, StorageError> {
    let file = path(dir, name);
    let Some(bytes) = io::read_small_file(&file).await? else {
        return Ok(None);
    };
    let parsed = parse_log_start(&bytes);
    if parsed.is_none() {
        tracing::error!(path = %file.display(), "malformed offset checkpoint ignored");
    }
    Ok(parsed)
}

pub(crate) async fn read_leader_epochs(dir: &Path) -> Result<LeaderEpochCache, StorageError> {
    let file = path(dir, LEADER_EPOCH_FILE);
    let Some(bytes) = io::read_small_file(&file).await? else {
        return Ok(LeaderEpochCache::default());
    };
    Ok(LeaderEpochCache::decode(&bytes).unwrap_or_else(|| {
        tracing::error!(path = %file.display(), "malformed leader-epoch checkpoint ignored");
        LeaderEpochCache::default()
    }))
}

pub(crate) async fn write_leader_epochs(
    dir: &Path,
    cache: &LeaderEpochCache,
) -> Result<(), StorageError> {
    io::write_file_atomically(&path(dir, LEADER_EPOCH_FILE), cache.encode()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoints_parse() {
        assert_eq!(parse_log_start(b"0\n42\n"), Some(42));
        assert_eq!(parse_log_start(b"1\n42\n"), None);
    }
}
