//! The append path: validate a produce request's batches, wait for write-buffer space,
//! then — without any further `.await`, so it is atomic on the shard — check idempotence,
//! assign offsets, stamp the broker-owned header fields, roll the segment if due, and queue
//! the batches for the flusher while making them visible to reads.
//!
//! Owns: validation limits, offset assignment, segment roll decisions. May import:
//! `crate::model::batch`, `crate::model::validation`, storage modules. Runs on: the shard
//! owning the partition.
//! Invariants: offsets are dense and increasing (each batch's base offset is the previous
//! batch's last offset + 1); a client's records are one batch that passed
//! `validate_client_records` (Kafka's LogValidator rules: the records count matches
//! lastOffsetDelta, every record parses, ...) before anything is stored, and the broker's
//! own batches pass the framing and CRC-32C checks; only baseOffset and partitionLeaderEpoch are
//! rewritten (plus maxTimestamp, attributes and CRC for LogAppendTime topics); a duplicate
//! is never stored twice; a batch older than its producer's epoch (raised by transaction
//! markers) is refused.
//!
//! Stamping is in place when the batch is uniquely owned: a client's records arrive as their
//! own region of the request buffer (`Records::Owned`, split off the frame by
//! `protocol::produce_request`), so base offset and leader epoch (outside the CRC) are
//! written into the received bytes and the same memory goes on to the write queue and the
//! batch cache. Regions under `STAMP_IN_PLACE_BYTES_MIN` are copied instead, so a cached
//! batch never keeps a read buffer alive that is much larger than itself.

use super::StorageError;
use super::cache::MemoryBatch;
use super::index::{BatchSummary, INDEX_ENTRIES_MAX};
use super::log::{AppendResult, LogConfig};
use super::producer::ProducerBatch;
use super::segment::Segment;
use super::state::{LogState, PendingWrite};
use super::{txn_state, txn_tickets};
use crate::model::batch::{self, BatchError, RecordBatchHeader};
use crate::model::validation::{self, ValidationLimits};
use crate::model::{Offset, TimestampType};
use bytes::{Bytes, BytesMut};
use std::rc::Rc;

/// Who wrote the batches of an append (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendOrigin {
    /// A producer: every rule of `model::validation` applies.
    Client,
    /// The broker itself (coordinators): framing and CRC are checked; control batches
    /// (transaction markers) are allowed.
    Broker,
}

/// Owned regions smaller than this are stamped in a copy (see the module doc): a batch of
/// this size keeps at most a few times its size of read buffer alive (read buffers grow in
/// 64 KiB steps or to the frame being read).
pub(crate) const STAMP_IN_PLACE_BYTES_MIN: usize = 16 * 1024;

/// The records of an append.
#[derive(Debug)]
pub(crate) enum Records {
    /// A client's records, a region nothing else can see: stamped in place.
    Owned(BytesMut),
    /// Bytes that may be shared (the broker's own batches): stamped in a copy unless unique.
    Shared(Bytes),
}

impl Records {
    fn bytes(&self) -> &[u8] {
        match self {
            Records::Owned(bytes) => bytes,
            Records::Shared(bytes) => bytes,
        }
    }

    fn len(&self) -> usize {
        self.bytes().len()
    }

    /// The records as a writable buffer: the region itself when owned (and large enough), the
    /// same allocation when shared but unique, else a copy.
    fn into_writable(self) -> BytesMut {
        match self {
            Records::Owned(bytes) if bytes.len() >= STAMP_IN_PLACE_BYTES_MIN => bytes,
            Records::Owned(bytes) => BytesMut::from(&bytes[..]),
            Records::Shared(bytes) => bytes
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..])),
        }
    }
}

pub(crate) async fn append(
    state: &Rc<LogState>,
    records: Records,
    leader_epoch: i32,
    now_ms: i64,
    origin: AppendOrigin,
) -> Result<AppendResult, StorageError> {
    state.check_writable()?;
    let config = state.config();
    let (records, spans) = match (origin, records) {
        (AppendOrigin::Client, records) => validate_client(records, &config)?,
        (AppendOrigin::Broker, records) => {
            let records = match super::conform::reencoded(records.bytes(), &config)? {
                Some(reencoded) => Records::Shared(Bytes::from(reencoded)),
                None => records,
            };
            let spans = validate(records.bytes(), &config)?;
            (records, spans)
        }
    };
    let units = (records.len() as u64).min(state.admission_capacity);
    if state.admission.available() < units {
        state.shard_stats.append_waited();
    }
    if state.admission.acquire(units).await.is_err() {
        state.check_writable()?;
        return Err(StorageError::Closed);
    }
    // From here on no `.await`: the rest of the append is atomic on this shard.
    let result = state.check_writable().and_then(|()| {
        let batches = Placement {
            records,
            spans: &spans,
            origin,
        };
        place(state, batches, leader_epoch, now_ms, units, &config)
    });
    match &result {
        Ok(outcome) if !outcome.duplicate => {}
        _ => state.admission.signal(units),
    }
    result
}

/// A follower's append (Kafka's `appendAsFollower`): the leader's batches are stored as they
/// are, with the offsets, leader epochs and producer state the leader gave them; only their
/// framing and CRC-32C are checked (a follower never re-encodes, so its bytes equal the
/// leader's). The first batch must start at the log end and each batch where the previous
/// one ends (offsets stay dense, as recovery requires: shardlog's compaction keeps batch
/// ranges); otherwise nothing is stored (`UnexpectedAppendOffset`). Producer ids are recorded, not checked: the leader did
/// that. Visibility follows the same rule as `append`, capped by the replicated high
/// watermark (`PartitionLog::set_replicated_high_watermark`).
pub(crate) async fn append_replicated(
    state: &Rc<LogState>,
    records: Bytes,
    now_ms: i64,
) -> Result<AppendResult, StorageError> {
    state.check_writable()?;
    let config = state.config();
    let spans = validate(&records, &config)?;
    let units = (records.len() as u64).min(state.admission_capacity);
    if state.admission.acquire(units).await.is_err() {
        state.check_writable()?;
        return Err(StorageError::Closed);
    }
    // From here on no `.await`: the rest of the append is atomic on this shard.
    let result = state
        .check_writable()
        .and_then(|()| place_replicated(state, &records, &spans, now_ms, units, &config));
    if result.is_err() {
        state.admission.signal(units);
    }
    result
}

fn place_replicated(
    state: &LogState,
    records: &Bytes,
    spans: &[(usize, usize)],
    now_ms: i64,
    units: u64,
    config: &LogConfig,
) -> Result<AppendResult, StorageError> {
    let mut expected = state.log_end.get();
    for &(start, _) in spans {
        let header = RecordBatchHeader::view(&records[start..])?;
        if header.base_offset() != expected || header.last_offset() < header.base_offset() {
            return Err(StorageError::UnexpectedAppendOffset {
                base_offset: header.base_offset(),
                expected,
            });
        }
        expected = header.last_offset() + 1;
    }
    let first_base = RecordBatchHeader::view(records)?.base_offset();
    let mut next = state.log_end.get();
    let count = spans.len();
    for (index, &(start, len)) in spans.iter().enumerate() {
        let bytes = records.slice(start..start + len);
        let leader_epoch = RecordBatchHeader::view(&bytes)?
            .partition_leader_epoch
            .get();
        let item_units = if index + 1 == count { units } else { 0 };
        next = place_batch(state, bytes, leader_epoch, now_ms, item_units, config)?;
    }
    Ok(placed(state, first_base, next, -1, config))
}

/// Validates a client's records (one batch), then applies the topic's rules (which may
/// re-encode the batch); returns them with the batch's (start, length).
fn validate_client(
    records: Records,
    config: &LogConfig,
) -> Result<(Records, Vec<(usize, usize)>), StorageError> {
    if records.len() as u64 > config.batch_bytes_max {
        return Err(StorageError::BatchTooLarge {
            size: records.len(),
            max: config.batch_bytes_max,
        });
    }
    let limits = ValidationLimits {
        decompressed_bytes_max: usize::try_from(config.decompressed_batch_bytes_max)
            .unwrap_or(usize::MAX),
    };
    validation::validate_client_records(records.bytes(), &limits)?;
    let records = match super::conform::reencoded(records.bytes(), config)? {
        Some(reencoded) => Records::Shared(Bytes::from(reencoded)),
        None => records,
    };
    let total = RecordBatchHeader::view(records.bytes())?.total_bytes()?;
    assert_eq!(
        total,
        records.len(),
        "conform keeps a client's single batch"
    );
    Ok((records, vec![(0, total)]))
}

/// Checks every batch of `records`; returns each batch's (start, length).
fn validate(records: &[u8], config: &LogConfig) -> Result<Vec<(usize, usize)>, StorageError> {
    let mut spans = Vec::new();
    let mut position = 0usize;
    while position < records.len() {
        let total = batch::validate_batch(&records[position..])?;
        if total as u64 > config.batch_bytes_max {
            return Err(StorageError::BatchTooLarge {
                size: total,
                max: config.batch_bytes_max,
            });
        }
        spans.push((position, total));
        position += total;
    }
    if spans.is_empty() {
        return Err(StorageError::InvalidBatch(BatchError::TooShort {
            available: 0,
        }));
    }
    Ok(spans)
}

/// The validated batches of one append.
struct Placement<'a> {
    records: Records,
    spans: &'a [(usize, usize)],
    origin: AppendOrigin,
}

fn place(
    state: &LogState,
    batches: Placement<'_>,
    leader_epoch: i32,
    now_ms: i64,
    units: u64,
    config: &LogConfig,
) -> Result<AppendResult, StorageError> {
    let Placement {
        records,
        spans,
        origin,
    } = batches;
    txn_state::check_append(state, records.bytes(), spans)?;
    if origin == AppendOrigin::Client {
        txn_tickets::check_client_append(state, records.bytes(), spans)?;
    }
    let producer_batches: Vec<ProducerBatch> = spans
        .iter()
        .filter_map(|&(start, _)| RecordBatchHeader::view(&records.bytes()[start..]).ok())
        .filter_map(ProducerBatch::from_header)
        .collect();
    if !producer_batches.is_empty()
        && let Some(original) = state.producers.borrow().check_all(&producer_batches)?
    {
        return Ok(AppendResult {
            base_offset: Offset(original.base_offset),
            last_offset: Offset(original.last_offset),
            log_append_time_ms: -1,
            log_start_offset: Offset(state.log_start.get()),
            duplicate: true,
        });
    }
    let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
    let base_offset = state.log_end.get();
    let stamped = stamp(
        records,
        spans,
        base_offset,
        leader_epoch,
        log_append_time,
        now_ms,
    )?;
    let mut next = base_offset;
    let count = spans.len();
    for (i, &(start, len)) in spans.iter().enumerate() {
        let bytes = stamped.slice(start..start + len);
        let item_units = if i + 1 == count { units } else { 0 };
        next = place_batch(state, bytes, leader_epoch, now_ms, item_units, config)?;
    }
    let log_append_time_ms = if log_append_time { now_ms } else { -1 };
    Ok(placed(state, base_offset, next, log_append_time_ms, config))
}

/// The batches `[base_offset, next)` are placed: the log end moves, readers may see them
/// (now, or once flushed with `visible_when_flushed`: a consumer never sees a record kill -9
/// could take back, `flusher::publish_flushed`), and the flusher is woken.
fn placed(
    state: &LogState,
    base_offset: i64,
    next: i64,
    log_append_time_ms: i64,
    config: &LogConfig,
) -> AppendResult {
    state.log_end.set(next);
    if !config.visible_when_flushed {
        state.publish_visible(next);
    }
    state.log_end_moved.notify();
    state.work.notify();
    AppendResult {
        base_offset: Offset(base_offset),
        last_offset: Offset(next - 1),
        log_append_time_ms,
        log_start_offset: Offset(state.log_start.get()),
        duplicate: false,
    }
}

/// Stamps offsets and the leader epoch (and LogAppendTime, which rewrites the CRC) into the
/// records: in place when they are owned, else in a copy (`Records::into_writable`).
fn stamp(
    records: Records,
    spans: &[(usize, usize)],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: bool,
    now_ms: i64,
) -> Result<Bytes, StorageError> {
    let mut owned = records.into_writable();
    let mut next = base_offset;
    for &(start, len) in spans {
        let slice = &mut owned[start..start + len];
        batch::stamp_batch(slice, next, leader_epoch);
        if log_append_time {
            batch::stamp_log_append_time(slice, now_ms)?;
        }
        next = RecordBatchHeader::view(slice)?.next_offset();
    }
    Ok(owned.freeze())
}

/// Appends one stamped batch to the active segment (rolling first if due); returns the
/// next offset.
fn place_batch(
    state: &LogState,
    bytes: Bytes,
    leader_epoch: i32,
    now_ms: i64,
    units: u64,
    config: &LogConfig,
) -> Result<i64, StorageError> {
    let header = RecordBatchHeader::view(&bytes)?;
    let base_offset = header.base_offset();
    let summary_bytes = bytes.len() as u64;
    let segment = active_for(
        state,
        base_offset,
        header.last_offset(),
        summary_bytes,
        now_ms,
        config,
    );
    let summary = BatchSummary {
        position: segment.size_bytes(),
        bytes: summary_bytes,
        base_offset,
        last_offset: header.last_offset(),
        max_timestamp: header.max_timestamp.get(),
    };
    if segment.is_empty() {
        segment.set_roll_base_ms(now_ms);
    }
    segment.on_append(&summary, config.index_interval_bytes);
    if let Some(producer) = ProducerBatch::from_header(header) {
        state
            .producers
            .borrow_mut()
            .record(&producer, base_offset, summary.last_offset);
    }
    txn_state::on_append(state, &bytes, base_offset, summary.last_offset);
    if state
        .leader_epochs
        .borrow_mut()
        .assign(leader_epoch, base_offset)
    {
        state.leader_epochs_dirty.set(true);
    }
    let next_offset = summary.last_offset + 1;
    state.memory.borrow_mut().insert(
        base_offset,
        MemoryBatch {
            bytes: bytes.clone(),
            next_offset,
            ticket: 0,
        },
    );
    state.pending.borrow_mut().push_back(PendingWrite {
        segment,
        position: summary.position,
        bytes,
        base_offset,
        next_offset,
        units,
    });
    state
        .pending_bytes
        .set(state.pending_bytes.get() + summary_bytes);
    state.size_bytes.set(state.size_bytes.get() + summary_bytes);
    Ok(next_offset)
}

/// The segment the next batch goes to: the active one, or a new one if a roll is due.
fn active_for(
    state: &LogState,
    base_offset: i64,
    last_offset: i64,
    bytes: u64,
    now_ms: i64,
    config: &LogConfig,
) -> Rc<Segment> {
    let active = state.active_segment();
    if let Some(active) = &active
        && !roll_due(active, last_offset, bytes, now_ms, config)
    {
        return active.clone();
    }
    if let Some(active) = &active {
        active.seal();
    }
    let segment = Rc::new(Segment::new(
        &state.dir,
        base_offset,
        state.cache.next_id(),
        now_ms,
    ));
    let snapshot = txn_state::encode_snapshot(state, base_offset);
    *segment.roll_snapshot.borrow_mut() = Some(snapshot);
    state.segments.borrow_mut().push_back(segment.clone());
    segment
}

fn roll_due(active: &Segment, last_offset: i64, bytes: u64, now_ms: i64, c: &LogConfig) -> bool {
    if active.is_sealed() {
        return true;
    }
    if active.is_empty() {
        return false;
    }
    let age_ms = now_ms.saturating_sub(active.roll_base_ms());
    active.size_bytes() + bytes > c.segment_bytes
        || age_ms > i64::try_from(c.segment_ms).unwrap_or(i64::MAX)
        || last_offset - active.base_offset > i64::from(i32::MAX)
        || active.index.borrow().offsets.len() >= INDEX_ENTRIES_MAX
}

#[cfg(test)]
#[path = "append_stamp_tests.rs"]
mod stamp_tests;
