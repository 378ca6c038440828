//! The read path: whole batches from memory (pending or cached) or, for cold data, from a
//! DMA read of the segment located with the offset index; plus timestamp lookups.
//!
//! Owns: fetch-size semantics (KIP-74 `min_one_batch`), cold-read chunking, CRC checks of
//! bytes read from disk, the open read handles of segments. May import: storage modules.
//! Runs on: the shard owning the partition.
//! Invariants: a batch read from disk is returned only after `validate_batch` passed, else
//! the read fails with `CorruptData`; only bytes below a segment's `disk_bytes` are read
//! from disk (anything later is still in memory); cold bytes are copied once from the DMA
//! buffer into one `Bytes` that the returned batches slice.

use super::StorageError;
use super::cache::batch_containing;
use super::io;
use super::log::{ReadLimits, ReadResult};
use super::scan::{self, Stop};
use super::segment::Segment;
use super::state::LogState;
use super::txn_state;
use crate::model::Offset;
use crate::model::batch::{BATCH_HEADER_BYTES, BatchError, RecordBatchHeader};
use crate::model::compression;
use bytes::Bytes;
use glommio::io::DmaFile;
use std::rc::Rc;

/// A batch and the offset after it.
struct Found {
    base_offset: i64,
    next_offset: i64,
    bytes: Bytes,
}

/// A consumer fetch: batches up to the high watermark.
pub(crate) async fn read(
    state: &LogState,
    start: Offset,
    limits: ReadLimits,
) -> Result<ReadResult, StorageError> {
    read_below(state, start, limits, || state.high_watermark.get()).await
}

/// A replica fetch (`read` for a follower): batches up to the log end, not the high
/// watermark; a follower copies what the leader holds before consumers may see it.
pub(crate) async fn read_to_log_end(
    state: &LogState,
    start: Offset,
    limits: ReadLimits,
) -> Result<ReadResult, StorageError> {
    read_below(state, start, limits, || state.log_end.get()).await
}

/// `read` and `read_to_log_end`: batches from `start` ending below `limit()`, with the
/// partition's offsets. Generic over the bound so neither path boxes a closure.
async fn read_below(
    state: &LogState,
    start: Offset,
    limits: ReadLimits,
    limit: impl Fn() -> i64,
) -> Result<ReadResult, StorageError> {
    check_read(state, start)?;
    let collected = collect(state, start.0, limits, limit).await?;
    Ok(ReadResult {
        batches: collected.batches,
        disk_bytes: collected.disk_bytes,
        disk_limited: collected.disk_limited,
        high_watermark: Offset(state.high_watermark.get()),
        log_start_offset: Offset(state.log_start.get()),
        last_stable_offset: Offset(txn_state::last_stable_offset(state)),
        aborted_transactions: Vec::new(),
    })
}

/// Err unless the log is open and `start` is in `[log_start_offset, log_end_offset]`.
pub(crate) fn check_read(state: &LogState, start: Offset) -> Result<(), StorageError> {
    if state.closed.get() {
        return Err(StorageError::Closed);
    }
    let (log_start, log_end) = (state.log_start.get(), state.log_end.get());
    if start.0 < log_start || start.0 > log_end {
        return Err(StorageError::OffsetOutOfRange {
            requested: start,
            log_start: Offset(log_start),
            log_end: Offset(log_end),
        });
    }
    Ok(())
}

/// What `collect` gathered.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub batches: Vec<Bytes>,
    pub disk_bytes: usize,
    pub disk_limited: bool,
}

/// Batches from the one containing `start`, within `limits`, each ending below `limit()`
/// (the high watermark, or the last stable offset for read_committed).
pub(crate) async fn collect(
    state: &LogState,
    start: i64,
    limits: ReadLimits,
    limit: impl Fn() -> i64,
) -> Result<Collected, StorageError> {
    let max_bytes = limits.max_bytes;
    let mut out = Collected::default();
    let mut total = 0usize;
    let mut cursor = start;
    loop {
        if cursor >= limit() {
            break;
        }
        let (found, from_disk) = match batch_containing(&state.memory, cursor) {
            Some((base_offset, bytes)) => {
                state.cache.count_hit();
                (vec![found(base_offset, bytes)?], false)
            }
            None => {
                let disk_left = limits.disk_bytes_max.saturating_sub(out.disk_bytes);
                if disk_left == 0 {
                    out.disk_limited = true;
                    break;
                }
                let budget = max_bytes.saturating_sub(total).min(disk_left);
                match read_disk(state, cursor, budget).await {
                    Ok(found) => (found, true),
                    // Serve what we have; the next read starts at the problem and reports it.
                    Err(_) if !out.batches.is_empty() => break,
                    Err(error) => return Err(error),
                }
            }
        };
        if found.is_empty() {
            // Compaction leaves offset gaps; one may end a segment: go on with the next.
            match base_after_gap(state, cursor) {
                Some(next) => {
                    cursor = next;
                    continue;
                }
                None => break,
            }
        }
        for batch in found {
            let first = out.batches.is_empty();
            let len = batch.bytes.len();
            let fits = total + len <= max_bytes || (first && limits.min_one_batch);
            // Whole batches below the limit only (the LSO may be the log start offset,
            // inside a batch).
            let limit = limit();
            if batch.base_offset >= limit || batch.next_offset > limit || !fits {
                return Ok(out);
            }
            if from_disk {
                let disk_fits = out.disk_bytes + len <= limits.disk_bytes_max
                    || (first && limits.min_one_batch);
                if !disk_fits {
                    out.disk_limited = true;
                    return Ok(out);
                }
                out.disk_bytes += len;
            }
            total += len;
            cursor = batch.next_offset;
            out.batches.push(batch.bytes);
        }
        if total >= max_bytes {
            break;
        }
    }
    Ok(out)
}

/// The base offset of the segment after the one holding `offset`, if that one is wholly
/// on disk (so finding nothing at `offset` there means a gap, not unwritten data).
fn base_after_gap(state: &LogState, offset: i64) -> Option<i64> {
    let segments = state.segments.borrow();
    let point = segments.partition_point(|s| s.base_offset <= offset);
    let current = segments.get(point.checked_sub(1)?)?;
    let next = segments.get(point)?;
    (current.disk_bytes() == current.size_bytes()).then_some(next.base_offset)
}

fn found(base_offset: i64, bytes: Bytes) -> Result<Found, StorageError> {
    let next_offset = RecordBatchHeader::view(&bytes)?.next_offset();
    Ok(Found {
        base_offset,
        next_offset,
        bytes,
    })
}

/// The open read handle of `segment`, opening it (and registering it with the per-shard
/// open-file limit) if needed; `None` if compaction replaced the segment meanwhile.
async fn segment_file(
    state: &LogState,
    segment: &Segment,
) -> Result<Option<Rc<DmaFile>>, StorageError> {
    if let Some(file) = segment.cached_file() {
        state.cache.touch_file(segment.uid, &segment.file);
        return Ok(Some(file));
    }
    let Some(file) = state.open_segment_path(segment).await? else {
        return Ok(None);
    };
    let file = Rc::new(file);
    *segment.file.borrow_mut() = Some(file.clone());
    state.cache.touch_file(segment.uid, &segment.file);
    Ok(Some(file))
}

/// Reads batches from disk starting with the one containing `offset`; about `budget`
/// bytes of them (at least one whole batch), never past what is on disk.
async fn read_disk(
    state: &LogState,
    offset: i64,
    budget: usize,
) -> Result<Vec<Found>, StorageError> {
    // A segment compaction replaced while its file was being opened is looked up again
    // (the swap has switched the segment list by then, so this repeats at most once per swap).
    let (segment, file) = loop {
        let Some(segment) = state.segment_for(offset) else {
            return Ok(Vec::new());
        };
        if offset >= segment.next_offset() {
            return Ok(Vec::new());
        }
        if let Some(file) = segment_file(state, &segment).await? {
            break (segment, file);
        }
    };
    let config = state.config();
    let disk_end = segment.disk_bytes();
    let mut position = segment
        .index
        .borrow()
        .position_for(offset - segment.base_offset);
    let slack = config.index_interval_bytes as usize + BATCH_HEADER_BYTES;
    let mut want = budget.saturating_add(slack).clamp(
        io::BLOCK_BYTES as usize,
        config.read_chunk_bytes.max(4096) as usize,
    );
    loop {
        if position >= disk_end {
            return Ok(Vec::new());
        }
        let len = (want as u64).min(disk_end - position) as usize;
        state.cache.count_miss();
        let bytes = Bytes::from(io::read_at(&file, &segment.log_path, position, len).await?);
        let parsed = parse_chunk(
            &segment,
            position,
            &bytes,
            offset,
            len as u64 == disk_end - position,
        )
        .inspect_err(|error| note_corrupt(state, &segment, error))?;
        match parsed {
            Parsed::Batches(batches) if batches.is_empty() => position += len as u64,
            Parsed::Batches(batches) => return Ok(batches),
            Parsed::Skip { to } => position = to,
            Parsed::Grow { needed } => want = needed,
        }
    }
}

enum Parsed {
    Batches(Vec<Found>),
    /// Every complete batch in the chunk is before `offset`; continue at `to`.
    Skip {
        to: u64,
    },
    /// The first wanted batch does not fit the chunk; read `needed` bytes instead.
    Grow {
        needed: usize,
    },
}

/// Validates the batches of a chunk read at `position`; keeps those at or past `offset`.
/// Valid batches before a problem are served; the next read meets the problem again.
fn parse_chunk(
    segment: &Segment,
    position: u64,
    bytes: &Bytes,
    offset: i64,
    reaches_disk_end: bool,
) -> Result<Parsed, StorageError> {
    let mut batches = Vec::new();
    let mut at = 0usize;
    let mut expected = segment.base_offset;
    while at < bytes.len() {
        let stop = match scan::parse_one(&bytes[at..]) {
            Ok(len) => {
                let header = RecordBatchHeader::view(&bytes[at..])?;
                if header.base_offset() < expected || header.next_offset() > segment.next_offset() {
                    // baseOffset is not CRC-covered: a batch out of place is corrupt too.
                    if !batches.is_empty() {
                        break;
                    }
                    return Err(misplaced(
                        segment,
                        position + at as u64,
                        header.base_offset(),
                        expected,
                    ));
                }
                expected = header.next_offset();
                if header.next_offset() > offset {
                    batches.push(Found {
                        base_offset: header.base_offset(),
                        next_offset: header.next_offset(),
                        bytes: bytes.slice(at..at + len),
                    });
                }
                at += len;
                continue;
            }
            Err(Stop::Invalid(BatchError::CrcMismatch { .. }))
                if batches.is_empty()
                    && let Some(skip) = skippable_corrupt(&bytes[at..], offset, expected) =>
            {
                match past_corrupt(skip, position, at, reaches_disk_end) {
                    Past::Skip(len) => {
                        at += len;
                        continue;
                    }
                    Past::Return(parsed) => return Ok(parsed),
                    Past::Fail => Stop::Invalid(BatchError::BadLength { batch_length: 0 }),
                }
            }
            Err(stop) => stop,
        };
        if !batches.is_empty() {
            break;
        }
        let here = position + at as u64;
        return stopped(
            segment,
            here,
            stop,
            at > 0,
            bytes.len() - at,
            reaches_disk_end,
        );
    }
    Ok(Parsed::Batches(batches))
}

/// Counts a corrupt batch a read ran into (reported once per batch in /metrics).
fn note_corrupt(state: &LogState, segment: &Segment, error: &StorageError) {
    if let StorageError::CorruptData { position, .. }
    | StorageError::MisplacedBatch { position, .. } = error
    {
        state.note_corrupt(segment.base_offset, *position);
    }
}

/// The size of the CRC-corrupt batch at the start of `bytes` if the batch after it starts
/// at or before `offset` (so the corrupt one holds none of the offsets wanted, and a reader
/// past it is not stuck on it). `Err(needed)`: the next header is not in `bytes`.
fn skippable_corrupt(bytes: &[u8], offset: i64, expected: i64) -> Option<Result<usize, usize>> {
    let len = RecordBatchHeader::view(bytes)
        .and_then(|h| h.total_bytes())
        .ok()?;
    let Some(next) = bytes.get(len..len + BATCH_HEADER_BYTES) else {
        return Some(Err(len + BATCH_HEADER_BYTES));
    };
    let next = RecordBatchHeader::view(next).ok()?;
    let base = next.base_offset();
    (next.magic == crate::model::batch::MAGIC_V2 && base <= offset && base >= expected)
        .then_some(Ok(len))
}

/// What a read does where parsing stopped at `here` (`after_batches`: valid batches
/// before it in the chunk; `available`: bytes from `here` to the chunk end).
fn stopped(
    segment: &Segment,
    here: u64,
    stop: Stop,
    after_batches: bool,
    available: usize,
    reaches_disk_end: bool,
) -> Result<Parsed, StorageError> {
    match stop {
        Stop::Incomplete { .. } if !reaches_disk_end && after_batches => {
            Ok(Parsed::Skip { to: here })
        }
        Stop::Incomplete { needed } if !reaches_disk_end => Ok(Parsed::Grow {
            needed: needed.max(BATCH_HEADER_BYTES),
        }),
        Stop::Incomplete { needed } => Err(corrupt(
            segment,
            here,
            BatchError::Truncated { needed, available },
        )),
        Stop::Zeros => Err(corrupt(
            segment,
            here,
            BatchError::BadLength { batch_length: 0 },
        )),
        Stop::Invalid(error) => Err(corrupt(segment, here, error)),
    }
}

/// How a read gets past a skippable corrupt batch (see `skippable_corrupt`).
enum Past {
    /// Skip it: the next batch is in this chunk.
    Skip(usize),
    /// Read on from it (`Skip`) or read more (`Grow`) to see the next header.
    Return(Parsed),
    /// Nothing follows it on disk: the read fails on it.
    Fail,
}

fn past_corrupt(
    skip: Result<usize, usize>,
    position: u64,
    at: usize,
    reaches_disk_end: bool,
) -> Past {
    match skip {
        Ok(len) => Past::Skip(len),
        Err(_) if at > 0 => Past::Return(Parsed::Skip {
            to: position + at as u64,
        }),
        Err(needed) if !reaches_disk_end => Past::Return(Parsed::Grow { needed }),
        Err(_) => Past::Fail,
    }
}

fn misplaced(segment: &Segment, position: u64, base_offset: i64, expected: i64) -> StorageError {
    tracing::error!(
        path = %segment.log_path.display(), position, base_offset, expected,
        "misplaced batch on disk; not served"
    );
    StorageError::MisplacedBatch {
        path: segment.log_path.clone(),
        position,
        base_offset,
        expected,
    }
}

fn corrupt(segment: &Segment, position: u64, source: BatchError) -> StorageError {
    tracing::error!(
        path = %segment.log_path.display(), position, %source,
        "corrupt batch on disk; not served"
    );
    StorageError::CorruptData {
        path: segment.log_path.clone(),
        position,
        source,
    }
}

/// ListOffsets by time: the first record (at or after the log start) whose timestamp is at
/// or after `timestamp`, with its timestamp, as Kafka answers; compressed batches are
/// decompressed (within `decompressed_batch_bytes_max`) to find it. The time index finds the
/// batch; if no record of that batch can be told (a malformed batch is never served, so this
/// is a defensive fallback), its first offset and max timestamp are answered.
pub(crate) async fn offset_for_timestamp(
    state: &LogState,
    timestamp: i64,
) -> Result<Option<(Offset, i64)>, StorageError> {
    let log_start = state.log_start.get();
    let segments = state.segments_snapshot();
    for segment in segments.iter().filter(|s| s.next_offset() > log_start) {
        if segment.max_timestamp().is_none_or(|(ts, _)| ts < timestamp) {
            continue;
        }
        let relative = segment.index.borrow().scan_start_for_timestamp(timestamp);
        let mut cursor = (segment.base_offset + relative).max(log_start);
        while cursor < segment.next_offset() && cursor < state.high_watermark.get() {
            let chunk = state.config().read_chunk_bytes as usize;
            let limits = ReadLimits::bytes(chunk, true);
            let batches = collect(state, cursor, limits, || state.high_watermark.get())
                .await?
                .batches;
            if batches.is_empty() {
                break;
            }
            for bytes in &batches {
                let header = RecordBatchHeader::view(bytes)?;
                if header.max_timestamp.get() >= timestamp {
                    let record = first_record(state, bytes, |ts| ts >= timestamp)?;
                    let offset = header.base_offset().max(log_start);
                    return Ok(record.or(Some((Offset(offset), header.max_timestamp.get()))));
                }
                cursor = header.next_offset();
            }
        }
    }
    Ok(None)
}

/// ListOffsets -3 (KIP-734): the offset and timestamp of the record with the largest
/// timestamp; on ties the earliest such record, as Kafka answers. The batch carrying the
/// largest batch max timestamp is read (decompressed if need be, within
/// `decompressed_batch_bytes_max`) to find the record. When the record cannot be told (the
/// batch is above the high watermark, or compaction removed that record), the batch's last
/// offset is answered.
pub(crate) async fn max_timestamp_record(
    state: &LogState,
) -> Result<Option<(Offset, i64)>, StorageError> {
    let Some((last_offset, timestamp)) = max_timestamp_batch(state) else {
        return Ok(None);
    };
    let limits = ReadLimits::bytes(1, true);
    let batches = collect(state, last_offset.0, limits, || state.high_watermark.get())
        .await?
        .batches;
    let Some(batch) = batches.first() else {
        return Ok(Some((last_offset, timestamp)));
    };
    let record = first_record(state, batch, |ts| ts == timestamp)?;
    Ok(record.or(Some((last_offset, timestamp))))
}

/// The offset and timestamp of the first record of `batch` at or after the log start whose
/// timestamp satisfies `wanted`; the records are decompressed within
/// `decompressed_batch_bytes_max`.
fn first_record(
    state: &LogState,
    batch: &[u8],
    wanted: impl Fn(i64) -> bool,
) -> Result<Option<(Offset, i64)>, StorageError> {
    let header = RecordBatchHeader::view(batch)?;
    let max = usize::try_from(state.config().decompressed_batch_bytes_max).unwrap_or(usize::MAX);
    let records = compression::batch_records(batch, max)?;
    let parsed = compression::parse_records(&records, header.records_count.get())?;
    let log_start = state.log_start.get();
    Ok(parsed.iter().find_map(|record| {
        let offset = header.base_offset() + i64::from(record.offset_delta);
        let timestamp = compression::record_timestamp(header, record);
        (offset >= log_start && wanted(timestamp)).then_some((Offset(offset), timestamp))
    }))
}

/// The largest batch max timestamp (earliest batch on ties) and that batch's last offset.
fn max_timestamp_batch(state: &LogState) -> Option<(Offset, i64)> {
    let log_start = state.log_start.get();
    let mut best: Option<(i64, i64)> = None;
    for segment in state.segments.borrow().iter() {
        if segment.next_offset() <= log_start {
            continue;
        }
        if let Some((ts, offset)) = segment.max_timestamp()
            && best.is_none_or(|(b, _)| ts > b)
        {
            best = Some((ts, offset));
        }
    }
    best.map(|(ts, offset)| (Offset(offset), ts))
}
