//! `PartitionLog`: the public face of one partition's log.
//!
//! PLACEHOLDER IMPLEMENTATION: keeps batches in memory only. The public API below is the
//! contract the shard/server layers use; the durable O_DIRECT implementation replaces the
//! internals (see issue 2) without changing these signatures.

use super::StorageError;
use crate::config::{StorageConfig, SyncPolicy};
use crate::model::batch::{self, RecordBatchHeader};
use crate::model::{Offset, TimestampType};
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Effective settings of one partition log: broker storage config merged with topic configs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub index_interval_bytes: u64,
    pub batch_bytes_max: u64,
    pub write_buffer_bytes_max: u64,
    pub write_chunk_bytes: u64,
    pub sync_policy: SyncPolicy,
    pub sync_interval_ms: u64,
    pub sync_bytes: u64,
    pub read_chunk_bytes: u64,
    /// -1: keep forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    /// `message.timestamp.type`: LogAppendTime makes append stamp the broker's clock.
    pub timestamp_type: TimestampType,
}

impl LogConfig {
    pub fn from_storage(config: &StorageConfig) -> LogConfig {
        LogConfig {
            segment_bytes: config.segment_bytes,
            segment_ms: config.segment_ms,
            index_interval_bytes: config.index_interval_bytes,
            batch_bytes_max: config.batch_bytes_max,
            write_buffer_bytes_max: config.write_buffer_bytes_max,
            write_chunk_bytes: config.write_chunk_bytes,
            sync_policy: config.sync_policy,
            sync_interval_ms: config.sync_interval_ms,
            sync_bytes: config.sync_bytes,
            read_chunk_bytes: config.read_chunk_bytes,
            retention_ms: -1,
            retention_bytes: -1,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// Per-shard cache of recent batches, bounded by a byte budget.
#[derive(Debug)]
pub struct BatchCache {
    budget_bytes: u64,
}

impl BatchCache {
    pub fn new(budget_bytes: u64) -> BatchCache {
        BatchCache { budget_bytes }
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }
}

/// Outcome of appending one produce request's records to a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: Offset,
    /// Offset of the last record of the last batch.
    pub last_offset: Offset,
    /// Broker time stamped on the batches for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
}

/// Whole batches read from the log, as stored.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub batches: Vec<Bytes>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub last_stable_offset: Offset,
}

impl ReadResult {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

pub struct PartitionLog {
    dir: PathBuf,
    config: RefCell<LogConfig>,
    batches: RefCell<Vec<(Offset, Bytes)>>,
    log_start_offset: Cell<Offset>,
    log_end_offset: Cell<Offset>,
    append_waiters: RefCell<Vec<futures::channel::oneshot::Sender<()>>>,
    _cache: Rc<BatchCache>,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering it after a crash.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        cache: Rc<BatchCache>,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create_dir", dir, e))?;
        Ok(Rc::new(PartitionLog {
            dir: dir.to_path_buf(),
            config: RefCell::new(config),
            batches: RefCell::new(Vec::new()),
            log_start_offset: Cell::new(Offset::ZERO),
            log_end_offset: Cell::new(Offset::ZERO),
            append_waiters: RefCell::new(Vec::new()),
            _cache: cache,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the topic-level settings (retention, segment size, ...).
    pub fn update_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }

    /// Validates every batch in `records` (one produce request's data for this partition),
    /// assigns offsets, stamps `leader_epoch`, and appends. Returns once the batches are
    /// *written* (in the log's buffers and visible to `read`), not when they are durable:
    /// call `wait_synced` for that.
    pub async fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult, StorageError> {
        let config = self.config.borrow().clone();
        let mut owned = BytesMut::from(&records[..]);
        let mut position = 0usize;
        let mut spans = Vec::new();
        while position < owned.len() {
            let total = batch::validate_batch(&owned[position..])?;
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
            return Err(StorageError::InvalidBatch(batch::BatchError::TooShort {
                available: 0,
            }));
        }
        let base_offset = self.log_end_offset.get();
        let mut next = base_offset;
        let mut log_append_time_ms = -1;
        let mut stamped = Vec::with_capacity(spans.len());
        for (start, total) in spans {
            let slice = &mut owned[start..start + total];
            batch::stamp_batch(slice, next.0, leader_epoch);
            if config.timestamp_type == TimestampType::LogAppendTime {
                batch::stamp_log_append_time(slice, now_ms)?;
                log_append_time_ms = now_ms;
            }
            let header = RecordBatchHeader::view(slice)?;
            let batch_base = next;
            next = Offset(header.next_offset());
            stamped.push((batch_base, start, total));
        }
        let frozen = owned.freeze();
        {
            let mut batches = self.batches.borrow_mut();
            for (batch_base, start, total) in stamped {
                batches.push((batch_base, frozen.slice(start..start + total)));
            }
        }
        self.log_end_offset.set(next);
        for waiter in self.append_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
        Ok(AppendResult {
            base_offset,
            last_offset: Offset(next.0 - 1),
            log_append_time_ms,
            log_start_offset: self.log_start_offset.get(),
        })
    }

    /// Returns once every batch up to and including `offset` is *synced* (fdatasync
    /// returned). Concurrent callers share one sync (group commit).
    pub async fn wait_synced(&self, _offset: Offset) -> Result<(), StorageError> {
        Ok(())
    }

    /// Reads whole batches starting with the one containing `start`, up to `max_bytes`.
    /// With `min_one_batch`, the first batch is returned even if it exceeds `max_bytes`
    /// (KIP-74). `start == log_end_offset` returns no batches; outside
    /// `[log_start_offset, log_end_offset]` is `OffsetOutOfRange`.
    pub async fn read(
        &self,
        start: Offset,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log_start = self.log_start_offset.get();
        let log_end = self.log_end_offset.get();
        if start < log_start || start > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: start,
                log_start,
                log_end,
            });
        }
        let batches = self.batches.borrow();
        let first = batches.partition_point(|(base, bytes)| {
            RecordBatchHeader::view(bytes)
                .map(|h| h.next_offset() <= start.0)
                .unwrap_or(true)
                && *base <= start
        });
        let mut out = Vec::new();
        let mut total = 0usize;
        for (_, bytes) in batches[first..].iter() {
            if total + bytes.len() > max_bytes && !(out.is_empty() && min_one_batch) {
                break;
            }
            total += bytes.len();
            out.push(bytes.clone());
        }
        Ok(ReadResult {
            batches: out,
            high_watermark: log_end,
            log_start_offset: log_start,
            last_stable_offset: log_end,
        })
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset.get()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset.get()
    }

    /// Offsets below the high watermark are readable by consumers.
    pub fn high_watermark(&self) -> Offset {
        self.log_end_offset.get()
    }

    /// Total bytes of the log on disk.
    pub fn size_bytes(&self) -> u64 {
        self.batches
            .borrow()
            .iter()
            .map(|(_, b)| b.len() as u64)
            .sum()
    }

    /// Completes once the log end offset is past `offset` (immediately if it already is).
    /// Cancel-safe: dropping the future unregisters nothing that matters.
    pub async fn wait_for_append(&self, offset: Offset) {
        if self.log_end_offset.get() > offset {
            return;
        }
        let (sender, receiver) = futures::channel::oneshot::channel();
        self.append_waiters.borrow_mut().push(sender);
        let _ = receiver.await;
    }

    /// Kafka ListOffsets by timestamp: the first offset whose batch max timestamp is
    /// >= `timestamp_ms`, with that timestamp; None if no such batch.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(Offset, i64)>, StorageError> {
        let batches = self.batches.borrow();
        for (base, bytes) in batches.iter() {
            let header = RecordBatchHeader::view(bytes)?;
            if header.max_timestamp.get() >= timestamp_ms {
                return Ok(Some((*base, header.max_timestamp.get())));
            }
        }
        Ok(None)
    }

    /// The largest max-timestamp in the log and the offset carrying it (ListOffsets -3).
    pub async fn max_timestamp(&self) -> Result<Option<(Offset, i64)>, StorageError> {
        let batches = self.batches.borrow();
        let mut best: Option<(Offset, i64)> = None;
        for (_, bytes) in batches.iter() {
            let header = RecordBatchHeader::view(bytes)?;
            let ts = header.max_timestamp.get();
            if best.is_none_or(|(_, b)| ts > b) {
                best = Some((Offset(header.last_offset()), ts));
            }
        }
        Ok(best)
    }

    /// Deletes whole closed segments past `retention.ms`/`retention.bytes` and advances the
    /// log start offset. Returns the number of segments deleted.
    pub async fn apply_retention(&self, _now_ms: i64) -> Result<usize, StorageError> {
        Ok(0)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (never past the high
    /// watermark). Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        let new_start = offset
            .min(self.high_watermark())
            .max(self.log_start_offset.get());
        self.log_start_offset.set(new_start);
        Ok(new_start)
    }

    /// Syncs and closes the log cleanly (writes indexes and a clean-shutdown marker).
    pub async fn close(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Closes the log and deletes its directory (DeleteTopics).
    pub async fn remove(&self) -> Result<(), StorageError> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| StorageError::io("remove_dir", &self.dir, e))
    }
}
