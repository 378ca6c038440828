//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! last `PRODUCER_BATCHES_KEPT` batches (first/last sequence and offsets), as in Kafka's
//! ProducerStateManager. Used to answer duplicates with their original offsets, reject
//! sequence gaps (OUT_OF_ORDER_SEQUENCE_NUMBER) and fenced epochs (INVALID_PRODUCER_EPOCH).
//!
//! Owns: `ProducerStateMap` and the `<offset>.snapshot` file format (state of every batch
//! below that offset; from version 2 it also carries the transaction section of
//! `txn_state.rs`). May import: `crate::model`, `super::StorageError`.
//! Invariants: per producer, kept batches have increasing offsets and at most
//! `PRODUCER_BATCHES_KEPT` of them; the map never holds more than its `max` producers (the
//! least recently appending one is forgotten and is then accepted with any sequence, as
//! Kafka does for a producer whose state expired). Runs on: the shard owning the partition.

use super::StorageError;
use crate::model::RecordBatchHeader;
use std::collections::{HashMap, VecDeque};

pub(crate) const PRODUCER_BATCHES_KEPT: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPS";
/// Version 2 appends a length-prefixed transaction section (`txn_state.rs`).
const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_VERSION_WITHOUT_TXNS: u16 = 1;

/// The idempotence fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl ProducerBatch {
    /// `None` for batches without a producer id or sequence (not idempotent).
    pub(crate) fn from_header(header: &RecordBatchHeader) -> Option<ProducerBatch> {
        let first_seq = header.base_sequence.get();
        if !header.has_producer_id() || first_seq < 0 {
            return None;
        }
        let delta = i64::from(header.last_offset_delta.get());
        let last_seq = ((i64::from(first_seq) + delta) % (i64::from(i32::MAX) + 1)) as i32;
        Some(ProducerBatch {
            producer_id: header.producer_id.get(),
            epoch: header.producer_epoch.get(),
            first_seq,
            last_seq,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
}

/// Outcome of checking one batch against the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Append,
    Duplicate(BatchMeta),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
    max: usize,
}

impl ProducerStateMap {
    pub(crate) fn new(max: usize) -> ProducerStateMap {
        ProducerStateMap {
            producers: HashMap::new(),
            max: max.max(1),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    fn check_entry(
        entry: Option<&ProducerEntry>,
        batch: &ProducerBatch,
    ) -> Result<SequenceCheck, StorageError> {
        let Some(entry) = entry else {
            return Ok(SequenceCheck::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current_epoch: entry.epoch,
            });
        }
        if batch.epoch > entry.epoch {
            if batch.first_seq != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: batch.producer_id,
                    sequence: batch.first_seq,
                    expected: 0,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(meta) = entry
            .batches
            .iter()
            .find(|m| m.first_seq == batch.first_seq && m.last_seq == batch.last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*meta));
        }
        let Some(last) = entry.batches.back() else {
            return Ok(SequenceCheck::Append);
        };
        let expected = if last.last_seq == i32::MAX {
            0
        } else {
            last.last_seq + 1
        };
        if batch.first_seq != expected {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: batch.producer_id,
                sequence: batch.first_seq,
                expected,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Checks the idempotent batches of one append, in order, as if each earlier one had
    /// been appended (at made-up offsets). Returns the first duplicate, if any.
    pub(crate) fn check_all(
        &self,
        batches: &[ProducerBatch],
    ) -> Result<Option<BatchMeta>, StorageError> {
        let mut overlay: HashMap<i64, ProducerEntry> = HashMap::new();
        for batch in batches {
            let entry = overlay
                .get(&batch.producer_id)
                .or_else(|| self.producers.get(&batch.producer_id));
            match Self::check_entry(entry, batch)? {
                SequenceCheck::Duplicate(meta) => return Ok(Some(meta)),
                SequenceCheck::Append => {
                    let mut updated = entry.cloned().unwrap_or(ProducerEntry {
                        epoch: batch.epoch,
                        batches: VecDeque::new(),
                    });
                    Self::push(&mut updated, batch, -1, -1);
                    overlay.insert(batch.producer_id, updated);
                }
            }
        }
        Ok(None)
    }

    fn push(entry: &mut ProducerEntry, batch: &ProducerBatch, base_offset: i64, last: i64) {
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            base_offset,
            last_offset: last,
        });
    }

    /// Records an appended (or recovered) batch.
    pub(crate) fn record(&mut self, batch: &ProducerBatch, base_offset: i64, last_offset: i64) {
        if !self.producers.contains_key(&batch.producer_id) && self.producers.len() >= self.max {
            self.forget_least_recent();
        }
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::new(),
            });
        Self::push(entry, batch, base_offset, last_offset);
    }

    fn forget_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, entry)| entry.last_offset())
            .map(|(&id, _)| id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
        }
    }

    /// Forgets batches at or past `end_offset` (log truncation).
    pub(crate) fn truncate_from(&mut self, end_offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < end_offset);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }

    /// `(producer id, epoch, last sequence or -1)` of every producer.
    pub(crate) fn last_sequences(&self) -> Vec<(i64, i16, i32)> {
        self.producers
            .iter()
            .map(|(&id, e)| (id, e.epoch, e.batches.back().map_or(-1, |b| b.last_seq)))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        self.encode_snapshot_with(offset, &[])
    }

    /// The snapshot as of `offset`, carrying `txn_section` (opaque here).
    pub(crate) fn encode_snapshot_with(&self, offset: i64, txn_section: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        out.extend_from_slice(&(txn_section.len() as u32).to_be_bytes());
        out.extend_from_slice(txn_section);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot taken at `offset`; `None` if corrupt or for another offset.
    #[cfg(test)]
    pub(crate) fn decode_snapshot(bytes: &[u8], offset: i64, max: usize) -> Option<Self> {
        Self::decode_snapshot_with(bytes, offset, max).map(|(map, _)| map)
    }

    /// Decodes a snapshot taken at `offset` and its transaction section (`None` for a
    /// version 1 snapshot, which has none); `None` if corrupt or for another offset.
    pub(crate) fn decode_snapshot_with(
        bytes: &[u8],
        offset: i64,
        max: usize,
    ) -> Option<(Self, Option<&[u8]>)> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut reader = Reader { bytes: body };
        if reader.take(4)? != SNAPSHOT_MAGIC {
            return None;
        }
        let version = reader.u16()?;
        if (version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_WITHOUT_TXNS)
            || reader.i64()? != offset
        {
            return None;
        }
        let count = reader.u32()? as usize;
        let mut map = ProducerStateMap::new(max);
        for _ in 0..count {
            let id = reader.i64()?;
            let epoch = reader.u16()? as i16;
            let kept = usize::from(reader.take(1)?[0]);
            if kept > PRODUCER_BATCHES_KEPT {
                return None;
            }
            let mut batches = VecDeque::with_capacity(kept);
            for _ in 0..kept {
                batches.push_back(BatchMeta {
                    first_seq: reader.u32()? as i32,
                    last_seq: reader.u32()? as i32,
                    base_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                });
            }
            map.producers.insert(id, ProducerEntry { epoch, batches });
        }
        if version == SNAPSHOT_VERSION_WITHOUT_TXNS {
            return reader.bytes.is_empty().then_some((map, None));
        }
        let len = reader.u32()? as usize;
        let section = reader.take(len)?;
        reader.bytes.is_empty().then_some((map, Some(section)))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first_seq: i32, last_seq: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_seq,
            last_seq,
        }
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut map = ProducerStateMap::new(10);
        assert_eq!(map.check_all(&[batch(0, 5, 6)]).unwrap(), None); // unknown: any seq
        map.record(&batch(0, 0, 1), 0, 1);
        map.record(&batch(0, 2, 4), 2, 4);
        let dup = map.check_all(&[batch(0, 0, 1)]).unwrap();
        assert_eq!(dup.map(|m| m.base_offset), Some(0));
        assert!(matches!(
            map.check_all(&[batch(0, 6, 6)]),
            Err(StorageError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert_eq!(
            map.check_all(&[batch(0, 5, 5), batch(0, 6, 6)]).unwrap(),
            None
        );
        assert!(map.check_all(&[batch(0, 5, 5), batch(0, 7, 7)]).is_err());
        assert!(matches!(
            map.check_all(&[batch(1, 3, 3)]),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        map.record(&batch(1, 0, 0), 5, 5);
        assert!(matches!(
            map.check_all(&[batch(0, 5, 5)]),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        let snapshot = map.encode_snapshot(6);
        assert_eq!(
            ProducerStateMap::decode_snapshot(&snapshot, 6, 10),
            Some(map.clone())
        );
        assert_eq!(ProducerStateMap::decode_snapshot(&snapshot, 7, 10), None);
        map.truncate_from(5);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn keeps_five_batches_and_bounded_producers() {
        let mut map = ProducerStateMap::new(2);
        for i in 0..8 {
            map.record(&batch(0, i, i), i64::from(i), i64::from(i));
        }
        assert!(matches!(
            map.check_all(&[batch(0, 2, 2)]),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert!(map.check_all(&[batch(0, 3, 3)]).unwrap().is_some());
        for id in [8, 9] {
            map.record(
                &ProducerBatch {
                    producer_id: id,
                    ..batch(0, 0, 0)
                },
                100 + id,
                100 + id,
            );
        }
        assert_eq!(map.len(), 2);
    }
}
