//! The pure part of compaction: the key map (latest offset of each key in the dirty range)
//! and the decision, batch by batch, of which records survive.
//!
//! Owns: `KeyMap`, `filter_batch`. May import: `crate::model`. No I/O.
//! Invariants: a record is dropped only if a later record with the same key is in the map
//! (superseded) or it is a tombstone below the mapped end older than `delete.retention.ms`;
//! records without a key, control batches, transactional batches and batches that cannot be
//! decoded are kept as they are; a rebuilt batch keeps its base offset, lastOffsetDelta,
//! baseTimestamp, producer fields and codec; an idempotent producer's batch emptied by
//! compaction stays as an empty batch if no later batch of that producer was mapped (so its
//! last sequence number survives, as in Kafka).

use crate::model::RecordBatchHeader;
use crate::model::batch::Compression;
use crate::model::compression::{self, RawRecord, Rebuild};
use std::collections::HashMap;

/// Map memory charged per key besides the key bytes (hash table slot, `Vec` header).
pub(crate) const KEY_ENTRY_OVERHEAD_BYTES: usize = 64;

/// The latest offset of every key seen in the dirty range, within a byte budget.
#[derive(Debug, Default)]
pub(crate) struct KeyMap {
    latest: HashMap<Vec<u8>, i64>,
    bytes: usize,
    bytes_max: usize,
    /// Last batch base offset of each producer id seen (for empty-batch retention).
    producers: HashMap<i64, i64>,
    /// Offsets below this have been mapped (in this pass or an earlier one).
    pub end: i64,
}

/// What `KeyMap::add_batch` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Its keys are in the map (or it has none that compaction may use).
    Mapped,
    /// The map has no room for its keys; nothing was added.
    Full,
}

impl KeyMap {
    pub(crate) fn new(bytes_max: usize, start: i64) -> KeyMap {
        KeyMap {
            bytes_max,
            end: start,
            ..KeyMap::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.latest.len()
    }

    pub(crate) fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Adds the keys of `batch` (a valid stored batch) unless the budget would overflow.
    /// Control, transactional and undecodable batches add no keys (their records are never
    /// compacted and supersede nothing).
    pub(crate) fn add_batch(&mut self, batch: &[u8], decompressed_max: usize) -> Added {
        let Ok(header) = RecordBatchHeader::view(batch) else {
            return Added::Mapped;
        };
        let base = header.base_offset();
        let decoded = usable_records(header, batch, decompressed_max);
        if let Some(records) = &decoded {
            let parsed = records.parsed();
            let new_bytes: usize = parsed
                .iter()
                .filter_map(|r| r.key)
                .filter(|key| !self.latest.contains_key(*key))
                .map(|key| key.len() + KEY_ENTRY_OVERHEAD_BYTES)
                .sum();
            if self.bytes + new_bytes > self.bytes_max && !self.latest.is_empty() {
                return Added::Full;
            }
            for record in &parsed {
                if let Some(key) = record.key {
                    let offset = base + i64::from(record.offset_delta);
                    if let Some(latest) = self.latest.get_mut(key) {
                        *latest = offset;
                    } else {
                        self.bytes += key.len() + KEY_ENTRY_OVERHEAD_BYTES;
                        self.latest.insert(key.to_vec(), offset);
                    }
                }
            }
        }
        if header.has_producer_id() {
            self.producers.insert(header.producer_id.get(), base);
        }
        self.end = self.end.max(header.next_offset());
        Added::Mapped
    }

    /// True if a later batch of this batch's producer was mapped.
    fn producer_has_later_batch(&self, header: &RecordBatchHeader) -> bool {
        self.producers
            .get(&header.producer_id.get())
            .is_some_and(|&last| last > header.base_offset())
    }
}

/// The decoded records of a batch compaction may touch.
pub(crate) struct Decoded {
    bytes: Vec<u8>,
    count: i32,
}

impl Decoded {
    fn parsed(&self) -> Vec<RawRecord<'_>> {
        compression::parse_records(&self.bytes, self.count).unwrap_or_default()
    }
}

/// The records of a non-control, non-transactional batch whose records decode and whose
/// offsets are consistent; `None` for anything else (kept intact).
fn usable_records(header: &RecordBatchHeader, batch: &[u8], max: usize) -> Option<Decoded> {
    if header.is_control() || header.is_transactional() {
        return None;
    }
    let bytes = compression::batch_records(batch, max).ok()?;
    let count = header.records_count.get();
    let parsed = compression::parse_records(&bytes, count).ok()?;
    if !compression::offsets_consistent(header, &parsed) {
        return None;
    }
    drop(parsed);
    Some(Decoded { bytes, count })
}

/// The inputs of the keep/drop decision besides the map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub decompressed_max: usize,
}

/// Counters of one pass (also returned by `PartitionLog::compact`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments read and replaced by rewritten ones.
    pub segments_rewritten: usize,
    /// Segments the pass produced (groups of old segments merge into one).
    pub segments_written: usize,
    /// Records dropped, expired tombstones included.
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub batches_removed: u64,
    /// Batches kept as they are because they are control or transactional batches or
    /// could not be decoded.
    pub batches_kept_intact: u64,
    pub keys_mapped: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Sum of the waits the I/O budget asked for.
    pub throttled_ms: u64,
    /// Earliest time a kept tombstone becomes removable (-1: none kept).
    pub next_tombstone_deadline_ms: i64,
    /// A segment swap was abandoned (the log changed under the pass); nothing is lost.
    pub aborted: bool,
}

/// What happens to one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    Unchanged,
    Rewritten(Vec<u8>),
    Dropped,
}

/// Decides which records of `batch` survive.
pub(crate) fn filter_batch(
    batch: &[u8],
    map: &KeyMap,
    rules: &Rules,
    stats: &mut CompactionStats,
) -> Filtered {
    let Ok(header) = RecordBatchHeader::view(batch) else {
        return Filtered::Unchanged;
    };
    let Some(decoded) = usable_records(header, batch, rules.decompressed_max) else {
        stats.batches_kept_intact += 1;
        return Filtered::Unchanged;
    };
    let parsed = decoded.parsed();
    let mut kept: Vec<&RawRecord<'_>> = Vec::with_capacity(parsed.len());
    for record in &parsed {
        if keep(header, record, map, rules, stats) {
            kept.push(record);
        }
    }
    if kept.len() == parsed.len() {
        return Filtered::Unchanged;
    }
    stats.records_removed += (parsed.len() - kept.len()) as u64;
    if kept.is_empty() {
        if header.has_producer_id() && !map.producer_has_later_batch(header) {
            return rebuild(header, &[], Compression::None)
                .map_or(Filtered::Unchanged, Filtered::Rewritten);
        }
        stats.batches_removed += 1;
        return Filtered::Dropped;
    }
    let codec = header.compression().unwrap_or(Compression::None);
    rebuild(header, &kept, codec).map_or(Filtered::Unchanged, Filtered::Rewritten)
}

fn keep(
    header: &RecordBatchHeader,
    record: &RawRecord<'_>,
    map: &KeyMap,
    rules: &Rules,
    stats: &mut CompactionStats,
) -> bool {
    let Some(key) = record.key else {
        return true;
    };
    let offset = header.base_offset() + i64::from(record.offset_delta);
    if map.latest(key).is_some_and(|latest| latest > offset) {
        return false;
    }
    if record.value.is_some() || offset >= map.end {
        return true;
    }
    let timestamp = compression::record_timestamp(header, record);
    let deadline = timestamp.saturating_add(rules.delete_retention_ms);
    if rules.now_ms >= deadline {
        stats.tombstones_removed += 1;
        return false;
    }
    if stats.next_tombstone_deadline_ms < 0 || deadline < stats.next_tombstone_deadline_ms {
        stats.next_tombstone_deadline_ms = deadline;
    }
    true
}

/// `header`'s batch holding only `kept`, in `codec` (an empty batch is uncompressed, as
/// Kafka writes it).
fn rebuild(
    header: &RecordBatchHeader,
    kept: &[&RawRecord<'_>],
    codec: Compression,
) -> Option<Vec<u8>> {
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.bytes.len()).sum());
    let mut max_timestamp: Option<i64> = None;
    for record in kept {
        records.extend_from_slice(record.bytes);
        let timestamp = compression::record_timestamp(header, record);
        max_timestamp = Some(max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
    }
    let rebuild = Rebuild {
        codec,
        records_count: i32::try_from(kept.len()).ok()?,
        max_timestamp: max_timestamp.unwrap_or(header.max_timestamp.get()),
    };
    compression::assemble(header, &records, rebuild).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::{stamp_batch, validate_batch};
    use crate::model::records::{NewRecord, encode_batch};

    fn batch(base: i64, records: &[(Option<&str>, Option<&str>)], timestamp: i64) -> Vec<u8> {
        let records: Vec<NewRecord<'_>> = records
            .iter()
            .map(|(k, v)| NewRecord {
                key: k.map(str::as_bytes),
                value: v.map(str::as_bytes),
            })
            .collect();
        let mut bytes = encode_batch(&records, timestamp);
        stamp_batch(&mut bytes, base, 0);
        bytes
    }

    fn rules(now_ms: i64) -> Rules {
        Rules {
            now_ms,
            delete_retention_ms: 100,
            decompressed_max: 1 << 20,
        }
    }

    fn keys_of(batch: &[u8]) -> Vec<(i64, Option<String>, bool)> {
        let header = RecordBatchHeader::view(batch).unwrap();
        let bytes = compression::batch_records(batch, 1 << 20).unwrap();
        compression::parse_records(&bytes, header.records_count.get())
            .unwrap()
            .iter()
            .map(|r| {
                (
                    header.base_offset() + i64::from(r.offset_delta),
                    r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                    r.value.is_none(),
                )
            })
            .collect()
    }

    #[test]
    fn keeps_latest_per_key_and_offsets() {
        let first = batch(
            0,
            &[
                (Some("a"), Some("1")),
                (Some("b"), Some("1")),
                (None, Some("x")),
            ],
            0,
        );
        let second = batch(3, &[(Some("a"), Some("2")), (Some("c"), None)], 0);
        let mut map = KeyMap::new(1 << 20, 0);
        assert_eq!(map.add_batch(&first, 1 << 20), Added::Mapped);
        assert_eq!(map.add_batch(&second, 1 << 20), Added::Mapped);
        assert_eq!(map.end, 5);
        assert_eq!(map.latest(b"a"), Some(3));
        let mut stats = CompactionStats {
            next_tombstone_deadline_ms: -1,
            ..CompactionStats::default()
        };
        let Filtered::Rewritten(rewritten) = filter_batch(&first, &map, &rules(50), &mut stats)
        else {
            panic!("first batch loses a");
        };
        assert_eq!(validate_batch(&rewritten), Ok(rewritten.len()));
        let header = RecordBatchHeader::view(&rewritten).unwrap();
        assert_eq!(header.base_offset(), 0);
        assert_eq!(
            header.last_offset_delta.get(),
            2,
            "lastOffsetDelta preserved"
        );
        assert_eq!(
            keys_of(&rewritten),
            vec![(1, Some("b".into()), false), (2, None, false)]
        );
        // The young tombstone stays and sets the deadline; later it goes.
        assert_eq!(
            filter_batch(&second, &map, &rules(50), &mut stats),
            Filtered::Unchanged
        );
        assert_eq!(stats.next_tombstone_deadline_ms, 100);
        let Filtered::Rewritten(later) = filter_batch(&second, &map, &rules(100), &mut stats)
        else {
            panic!("expired tombstone is removed");
        };
        assert_eq!(keys_of(&later), vec![(3, Some("a".into()), false)]);
        assert_eq!(stats.tombstones_removed, 1);
    }

    #[test]
    fn empty_batches_drop_or_stay_for_their_producer() {
        let old = batch(0, &[(Some("a"), Some("1"))], 0);
        let new = batch(1, &[(Some("a"), Some("2"))], 0);
        let mut map = KeyMap::new(1 << 20, 0);
        map.add_batch(&old, 1 << 20);
        map.add_batch(&new, 1 << 20);
        let mut stats = CompactionStats::default();
        assert_eq!(
            filter_batch(&old, &map, &rules(0), &mut stats),
            Filtered::Dropped
        );
        // With a producer id and no later batch of that producer: an empty batch stays.
        let mut idempotent = old.clone();
        idempotent[43..51].copy_from_slice(&7i64.to_be_bytes());
        idempotent[53..57].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&idempotent[21..]);
        idempotent[17..21].copy_from_slice(&crc.to_be_bytes());
        let Filtered::Rewritten(stub) = filter_batch(&idempotent, &map, &rules(0), &mut stats)
        else {
            panic!("producer's last batch stays as an empty batch");
        };
        let header = RecordBatchHeader::view(&stub).unwrap();
        assert_eq!(header.records_count.get(), 0);
        assert_eq!(header.producer_id.get(), 7);
        assert_eq!(header.last_offset(), 0);
    }

    #[test]
    fn map_budget_is_respected() {
        let first = batch(0, &[(Some("aaaa"), Some("1"))], 0);
        let second = batch(1, &[(Some("bbbb"), Some("1"))], 0);
        let mut map = KeyMap::new(KEY_ENTRY_OVERHEAD_BYTES + 4, 0);
        assert_eq!(map.add_batch(&first, 1 << 20), Added::Mapped);
        assert_eq!(map.add_batch(&second, 1 << 20), Added::Full);
        assert_eq!(map.end, 1);
        assert_eq!(map.len(), 1);
        // Updating a key already mapped needs no room.
        let again = batch(1, &[(Some("aaaa"), Some("2"))], 0);
        assert_eq!(map.add_batch(&again, 1 << 20), Added::Mapped);
        assert_eq!(map.latest(b"aaaa"), Some(1));
    }
}
