//! Kafka's leader-epoch cache: which leader epoch started at which offset of a partition's
//! log. Storage persists it (`storage::checkpoint`, Kafka's text format); replication reads
//! it to answer OffsetsForLeaderEpoch and to find where a follower's log diverges.
//!
//! Owns: the cache and its text codec. May import: nothing from this crate.
//! Invariants: entries strictly increase in epoch and never decrease in start offset.

/// Text-format version of the leader-epoch checkpoint.
const VERSION: &str = "0";

/// An OffsetsForLeaderEpoch answer: where the largest epoch at or below the asked one ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochEnd {
    /// Every epoch of the log is above the asked one (Kafka's UNDEFINED_EPOCH_OFFSET).
    Undefined,
    /// `epoch` (the largest at or below the asked one) ends at `end_offset`.
    At { epoch: i32, end_offset: i64 },
}

/// Which leader epoch started at which offset (Kafka's leader-epoch cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// `(epoch, start offset)` pairs, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// Records that `epoch` starts at `start_offset`; returns true if that is new. An epoch at
    /// or below the newest one, a negative epoch, or a start below the newest start is refused.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(last, last_start)) if epoch <= last || start_offset < last_start => false,
            _ => {
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    /// Forgets epochs that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// Kafka OffsetsForLeaderEpoch: the largest epoch <= `epoch` and the offset where the
    /// next epoch starts (or `log_end_offset`); `None` if every epoch is above `epoch`.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
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

    /// `end_offset_for` as an OffsetsForLeaderEpoch answer.
    pub fn epoch_end(&self, epoch: i32, log_end_offset: i64) -> EpochEnd {
        match self.end_offset_for(epoch, log_end_offset) {
            None => EpochEnd::Undefined,
            Some((epoch, end_offset)) => EpochEnd::At { epoch, end_offset },
        }
    }

    /// Kafka's `leader-epoch-checkpoint` text: version, count, then `epoch start` lines.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        text.into_bytes()
    }

    /// Parses `encode`'s text; `None` if malformed or out of order.
    pub fn decode(bytes: &[u8]) -> Option<LeaderEpochCache> {
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
        Some(cache)
    }
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
        assert!(
            !cache.assign(4, 9),
            "a start below the newest start is refused"
        );
        assert_eq!(cache.latest_epoch(), Some(3));
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
        assert_eq!(LeaderEpochCache::decode(b"0\n2\n1 5\n2 3\n"), None);
    }
}
