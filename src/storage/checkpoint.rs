//! Small per-partition metadata files: the log start offset checkpoint, the recovery point
//! checkpoint (every offset below it was synced), the leader-epoch checkpoint (Kafka's text
//! format), and the clean-shutdown marker.
//!
//! Owns: these formats and `LeaderEpochCache`. May import: `super::io`.
//! Invariants: leader-epoch entries strictly increase in epoch and never decrease in start
//! offset; files are replaced atomically; the recovery point only moves back when the log
//! is truncated on purpose (`truncate_to`). Runs on: the shard owning the partition.

use super::StorageError;
use super::io;
use std::path::{Path, PathBuf};

pub(crate) const LOG_START_FILE: &str = "log-start-offset.checkpoint";
/// Kafka's `recovery-point-offset-checkpoint`, per partition: offsets below it were synced.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset.checkpoint";
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
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

/// Which leader epoch started at which offset (Kafka's leader-epoch cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub(crate) fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset`; returns true if that is new.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(last, _)) if epoch <= last => false,
            _ => {
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    /// Forgets epochs that start at or after `end_offset`.
    pub(crate) fn truncate_from(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// Kafka OffsetsForLeaderEpoch: the largest epoch <= `epoch` and the offset where the
    /// next epoch starts (or `log_end_offset`).
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let point = self.entries.partition_point(|&(e, _)| e <= epoch);
        if point == 0 {
            return None;
        }
        let found = self.entries[point - 1].0;
        let end = self
            .entries
            .get(point)
            .map_or(log_end_offset, |&(_, start)| start);
        Some((found, end))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        text.into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<LeaderEpochCache> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let mut fields = lines.next()?.split_whitespace();
            let epoch: i32 = fields.next()?.parse().ok()?;
            let start: i64 = fields.next()?.parse().ok()?;
            if !cache.assign(epoch, start) {
                return None;
            }
        }
        let ordered = cache.entries.windows(2).all(|w| w[0].1 <= w[1].1);
        ordered.then_some(cache)
    }
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
    fn leader_epochs_roundtrip_and_lookup() {
        let mut cache = LeaderEpochCache::default();
        assert!(cache.assign(1, 0));
        assert!(!cache.assign(1, 5));
        assert!(!cache.assign(-1, 5));
        assert!(cache.assign(3, 10));
        assert_eq!(
            LeaderEpochCache::decode(&cache.encode()),
            Some(cache.clone())
        );
        assert_eq!(cache.end_offset_for(0, 20), None);
        assert_eq!(cache.end_offset_for(2, 20), Some((1, 10)));
        assert_eq!(cache.end_offset_for(7, 20), Some((3, 20)));
        assert!(cache.truncate_from(10));
        assert_eq!(cache.entries(), &[(1, 0)]);
        assert_eq!(LeaderEpochCache::decode(b"0\n2\n1 0\n"), None);
        assert_eq!(parse_log_start(b"0\n42\n"), Some(42));
        assert_eq!(parse_log_start(b"1\n42\n"), None);
    }
}
