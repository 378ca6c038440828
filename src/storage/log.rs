//! `PartitionLog`: the public face of one partition's log, and its public value types.
//!
//! Owns: the API contract used by the shard/server layers (see each method's doc comment
//! for its semantics and durability word). The work happens in `append`, `reader`,
//! `flusher`, `recovery` and `retention`; all of them share one `Rc<LogState>`.
//! May import: `crate::model`, `crate::config`, the storage modules. Runs on: the shard that
//! owns the partition; `PartitionLog` is `!Send`.
//! Invariants: see `state.rs`. Calls may interleave at `.await` points; none holds a
//! `RefCell` borrow across one.

use super::StorageError;
use super::append::{self, AppendOrigin};
use super::cache::BatchCache;
use super::compaction::{self, CleanupPolicy, CompactionStats};
use super::scrub::{self, ScrubStats};
use super::state::{LogState, LogStats};
use super::stats::StorageStats;
use super::txn_state::{self, AbortedTransaction, ProducerInfo};
use super::{checkpoint, flusher, reader, recovery, retention};
use crate::config::{StorageConfig, SyncPolicy};
use crate::model::{Compression, Offset, TimestampType};
use bytes::{Bytes, BytesMut};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// Producer ids whose idempotence state a partition keeps (least recently used forgotten).
pub const PRODUCER_IDS_MAX_DEFAULT: usize = 10_000;
/// Kafka's defaults for `delete.retention.ms` (1 day) and `min.cleanable.dirty.ratio`.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 86_400_000;
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;

/// Effective settings of one partition log: broker storage config merged with topic configs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// When appended records become visible to readers (the high watermark): once flushed
    /// (the broker's setting: a consumer never reads a record kill -9 could take back), or
    /// as soon as appended (only tests use this, to read right after an append).
    pub visible_when_flushed: bool,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub index_interval_bytes: u64,
    pub batch_bytes_max: u64,
    /// Unwritten appended bytes before `append` waits. Fixed when the log is opened.
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
    /// Segment files the shard keeps open for reads (applied to the shared `BatchCache`).
    pub open_segments_max: usize,
    /// Producer ids tracked for idempotence per partition.
    pub producer_ids_max: usize,
    /// `cleanup.policy`: time/size retention applies with `delete`, compaction with
    /// `compact`.
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type`: `None` keeps batches as produced (`producer`); otherwise
    /// appends re-encode batches in another codec to this one.
    pub compression_type: Option<Compression>,
    /// `delete.retention.ms`: compaction keeps a tombstone at least this long after its
    /// timestamp.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments holding newer records are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty data older than this triggers compaction whatever
    /// the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: dirty bytes / cleanable bytes that trigger compaction.
    pub min_cleanable_dirty_ratio: f64,
    /// Bytes per second a compaction pass may read plus write.
    pub compaction_io_bytes_per_second: u64,
    /// Memory for one pass's key map (key bytes + 64 per key).
    pub compaction_map_bytes_max: u64,
    /// Largest decompressed records section of a client batch (validation refuses more) and
    /// of one handled when recompressing or compacting.
    pub decompressed_batch_bytes_max: u64,
}

impl LogConfig {
    pub fn from_storage(config: &StorageConfig) -> LogConfig {
        LogConfig {
            visible_when_flushed: true,
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
            open_segments_max: config.open_segments_max,
            producer_ids_max: PRODUCER_IDS_MAX_DEFAULT,
            cleanup_policy: CleanupPolicy::DELETE,
            compression_type: None,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            compaction_io_bytes_per_second: config.compaction_io_bytes_per_second,
            compaction_map_bytes_max: config.compaction_map_bytes_max,
            decompressed_batch_bytes_max: config.decompressed_batch_bytes_max,
        }
    }
}

/// When the flusher syncs without being asked by a `wait_synced` caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncRule {
    WhenFlushed,
    Interval(Duration),
    Bytes(u64),
}

impl SyncRule {
    pub(crate) fn of(config: &LogConfig) -> SyncRule {
        match config.sync_policy {
            SyncPolicy::EveryBatch => SyncRule::WhenFlushed,
            SyncPolicy::Interval => {
                SyncRule::Interval(Duration::from_millis(config.sync_interval_ms))
            }
            SyncPolicy::Bytes => SyncRule::Bytes(config.sync_bytes),
        }
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
    /// An idempotent producer resent a batch already in the log: nothing was appended and
    /// the offsets are those of the original (Kafka answers NONE with them).
    pub duplicate: bool,
}

/// How much one read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Record bytes to return at most, in whole batches.
    pub max_bytes: usize,
    /// Return the first batch even if it exceeds `max_bytes` (KIP-74).
    pub min_one_batch: bool,
    /// Bytes of batches that may be read from disk: cold data takes fresh memory, batches
    /// still in memory cost nothing. The first batch of a `min_one_batch` read may exceed
    /// it (but not a zero allowance).
    pub disk_bytes_max: usize,
}

impl ReadLimits {
    /// Up to `max_bytes` (KIP-74 as `min_one_batch` says), from memory or disk.
    pub fn bytes(max_bytes: usize, min_one_batch: bool) -> ReadLimits {
        ReadLimits {
            max_bytes,
            min_one_batch,
            disk_bytes_max: usize::MAX,
        }
    }
}

/// Whole batches read from the log, as stored.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub batches: Vec<Bytes>,
    /// Bytes of `batches` read from disk (the rest came from memory).
    pub disk_bytes: usize,
    /// The read stopped because the next batch had to come from disk and `disk_bytes_max`
    /// was used up: more data is there.
    pub disk_limited: bool,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub last_stable_offset: Offset,
    /// read_committed only: the aborted transactions overlapping the returned batches.
    pub aborted_transactions: Vec<AbortedTransaction>,
}

impl ReadResult {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

pub struct PartitionLog {
    state: Rc<LogState>,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering it after a crash. Must run
    /// inside a glommio executor: it spawns the log's flusher task on the current shard.
    /// `dir()` is then the absolute form of `dir`.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        cache: Rc<BatchCache>,
        shard_stats: Rc<StorageStats>,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        shard_stats.opening(dir);
        cache.set_open_segments_max(config.open_segments_max);
        // glommio's directory calls fail (EBADF) on relative paths.
        let dir = std::path::absolute(dir).map_err(|e| StorageError::io("absolute", dir, e))?;
        let mut recovered = recovery::recover(&dir, &config, &cache).await?;
        let read_only = recovered.read_only.take();
        let state = Rc::new(LogState::new(dir, config, cache, shard_stats, recovered));
        if let Some(error) = read_only {
            // Opened on a full disk: readable, and failed like a log whose write hit ENOSPC.
            state.fail(&error);
        }
        state.flusher_running.set(true);
        glommio::spawn_local(flusher::run(state.clone())).detach();
        Ok(Rc::new(PartitionLog { state }))
    }

    /// True once a write or sync failed (or the open skipped writes on a full disk): appends
    /// fail, reads work. Reopening the log recovers it.
    /// The log is closing or closed (deleted, moved, shutting down): nothing more is appended.
    pub fn is_closing(&self) -> bool {
        self.state.closing.get() || self.state.closed.get()
    }

    pub fn is_failed(&self) -> bool {
        self.state.is_failed()
    }

    /// True if the failure was a full disk (ENOSPC, EDQUOT): reopening once space is back
    /// makes the log writable again.
    pub fn failed_for_lack_of_space(&self) -> bool {
        self.state.failed_for_lack_of_space()
    }

    /// Distinct batches known to be corrupt (found at open, by `scrub` or by a read). They
    /// are never served: a read that reaches one fails with `CorruptData`.
    pub fn corrupt_batches(&self) -> usize {
        self.state.corrupt.borrow().len()
    }

    /// Writes the recovery point checkpoint (every offset below the synced offset survives
    /// power loss) if it moved since the last one. Recovery refuses a log that ends below
    /// it. Returns the checkpointed offset.
    pub async fn checkpoint_recovery_point(&self) -> Result<Offset, StorageError> {
        flusher::advance_recovery_point(&self.state, self.state.synced.get())
            .await
            .map(Offset)
    }

    /// Writes the replicated high watermark to the high-watermark checkpoint if it changed
    /// since the last one (Kafka's `replication-offset-checkpoint`). Nothing for a partition
    /// that is not replicated.
    pub async fn checkpoint_high_watermark(&self) -> Result<(), StorageError> {
        let state = &self.state;
        let Some(high_watermark) = state.replicated_high_watermark.get() else {
            return Ok(());
        };
        if state.high_watermark_checkpoint.get() == Some(high_watermark.min(state.log_end.get())) {
            return Ok(()); // unchanged: no lock, no write
        }
        let Ok(_permit) = state.meta_lock.acquire_permit(1).await else {
            return Err(StorageError::Closed);
        };
        let high_watermark = high_watermark.min(state.log_end.get());
        if state.high_watermark_checkpoint.get() != Some(high_watermark) {
            checkpoint::write_high_watermark(&state.dir, high_watermark).await?;
            state.high_watermark_checkpoint.set(Some(high_watermark));
        }
        Ok(())
    }

    /// The high watermark last checkpointed (read at open), capped by the log end: every
    /// offset below it was committed when it was written.
    pub fn checkpointed_high_watermark(&self) -> Option<Offset> {
        self.state
            .high_watermark_checkpoint
            .get()
            .map(|offset| Offset(offset.min(self.state.log_end.get())))
    }

    /// Re-reads every finished segment and checks each batch (length, magic, CRC-32C) at
    /// about `bytes_per_second`; corrupt batches are logged and counted in
    /// `corrupt_batches`. The active segment is not read (it is checked at open and every
    /// append is checked on arrival).
    pub async fn scrub(&self, bytes_per_second: u64) -> Result<ScrubStats, StorageError> {
        scrub::scrub(&self.state, bytes_per_second).await
    }

    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// Replaces the topic-level settings (retention, segment size, ...).
    pub fn update_config(&self, config: LogConfig) {
        *self.state.config.borrow_mut() = config;
        self.state.work.notify();
    }

    /// Validates every batch in `records` (one produce request's data for this partition),
    /// assigns offsets, stamps `leader_epoch`, and appends. Returns once the batches are
    /// *written* (in the log's buffers and visible to `read`), not when they are durable:
    /// call `wait_synced` for that. Waits only while `write_buffer_bytes_max` unwritten
    /// bytes are queued (back-pressure); concurrent appends are admitted in call order.
    /// Appends batches the broker wrote itself (coordinators: group and transaction
    /// records, transaction markers); they are checked for framing and CRC only.
    pub async fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult, StorageError> {
        append::append(
            &self.state,
            append::Records::Shared(records),
            leader_epoch,
            now_ms,
            AppendOrigin::Broker,
        )
        .await
    }

    /// Appends a produce request's records for this partition: validated as Kafka's
    /// LogValidator does for a client (`model::validation`) before anything is stored.
    /// `records` is the request's own region of the request buffer: the batch is stamped in
    /// place (no copy) and that memory is what gets written and cached.
    pub async fn append_from_client(
        &self,
        records: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult, StorageError> {
        append::append(
            &self.state,
            append::Records::Owned(records),
            leader_epoch,
            now_ms,
            AppendOrigin::Client,
        )
        .await
    }

    /// A follower's append: `records` (whole batches from the leader's log, as a replica
    /// Fetch returns them) are stored with the leader's offsets, epochs and producer state;
    /// see `append::append_replicated` for the checks.
    pub async fn append_replicated(
        &self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendResult, StorageError> {
        append::append_replicated(&self.state, records, now_ms).await
    }

    /// Returns once every batch up to and including `offset` is *synced* (fdatasync
    /// returned). Concurrent callers share one sync (group commit). Forces a sync whatever
    /// the sync policy.
    pub async fn wait_synced(&self, offset: Offset) -> Result<(), StorageError> {
        let state = &self.state;
        let target = offset.0.min(state.log_end.get() - 1);
        if state.synced.get() > target {
            return Ok(());
        }
        state.check_failure()?;
        if state.sync_wanted.get() <= target {
            state.sync_wanted.set(target + 1);
        }
        state.work.notify();
        state
            .progress
            .wait_until(|| {
                state.synced.get() > target || state.is_failed() || !state.flusher_running.get()
            })
            .await;
        if state.synced.get() > target {
            return Ok(());
        }
        state.check_failure()?;
        Err(StorageError::Closed)
    }

    /// Returns once every batch up to and including `offset` is *flushed* (its O_DIRECT
    /// write completed: it survives kill -9 of the broker, not power loss). Never forces a
    /// sync.
    pub async fn wait_flushed(&self, offset: Offset) -> Result<(), StorageError> {
        let state = &self.state;
        let target = offset.0.min(state.log_end.get() - 1);
        state
            .progress
            .wait_until(|| {
                state.flushed.get() > target || state.is_failed() || !state.flusher_running.get()
            })
            .await;
        if state.flushed.get() > target {
            return Ok(());
        }
        state.check_failure()?;
        Err(StorageError::Closed)
    }

    /// Reads whole batches starting with the one containing `start`, up to `max_bytes`.
    /// With `min_one_batch`, the first batch is returned even if it exceeds `max_bytes`
    /// (KIP-74). `start == log_end_offset` returns no batches; outside
    /// `[log_start_offset, log_end_offset]` is `OffsetOutOfRange`. This is
    /// read_uncommitted (up to the high watermark); the result carries the last stable
    /// offset and no aborted transactions (see `read_isolated`).
    pub async fn read(
        &self,
        start: Offset,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let limits = ReadLimits::bytes(max_bytes, min_one_batch);
        reader::read(&self.state, start, limits).await
    }

    /// Fetch with an isolation level. read_uncommitted (`read_committed == false`) is
    /// `read`. read_committed returns only whole batches whose last offset is below the
    /// last stable offset (from the batch containing `start`, up to `max_bytes`, KIP-74 as
    /// `read`), and in `aborted_transactions` every aborted transaction with
    /// `first_offset <= last returned offset` and `marker offset >= start`, so the client
    /// can drop their records. Control batches (markers) are returned like any batch.
    pub async fn read_isolated(
        &self,
        start: Offset,
        limits: ReadLimits,
        read_committed: bool,
    ) -> Result<ReadResult, StorageError> {
        if !read_committed {
            return reader::read(&self.state, start, limits).await;
        }
        txn_state::read_committed(&self.state, start, limits).await
    }

    /// A leader's read for a follower's replica fetch: whole batches from the one containing
    /// `start` up to the log end (not the high watermark), within `limits`.
    pub async fn read_for_replica(
        &self,
        start: Offset,
        limits: ReadLimits,
    ) -> Result<ReadResult, StorageError> {
        reader::read_to_log_end(&self.state, start, limits).await
    }

    /// Completes once the log end offset is past `offset` (an append, flushed or not), or
    /// the log closes or fails. Cancel-safe.
    pub async fn wait_for_log_end(&self, offset: Offset) {
        let state = &self.state;
        state
            .log_end_moved
            .wait_until(|| {
                state.log_end.get() > offset.0
                    || state.closing.get()
                    || state.closed.get()
                    || state.is_failed()
            })
            .await;
    }

    /// The last stable offset (LSO): the first offset of the oldest ongoing transaction,
    /// else the high watermark (never below the log start offset). read_committed
    /// consumers read below it; ListOffsets latest with read_committed answers it.
    pub fn last_stable_offset(&self) -> Offset {
        Offset(txn_state::last_stable_offset(&self.state))
    }

    /// Producers with state in this partition, by producer id (DescribeProducers).
    /// The transaction coordinator verified that `producer_id` at `epoch` may start a
    /// transaction on this partition (KIP-890 part 1; see `txn_tickets.rs`).
    pub fn allow_transaction(&self, producer_id: i64, epoch: i16) {
        self.state
            .txn_tickets
            .borrow_mut()
            .allow(producer_id, epoch);
    }

    /// A verification of `producer_id` at `epoch` by a transaction coordinator on another
    /// broker starts here: the token to pass to `finish_txn_verification` (see
    /// `txn_tickets.rs`).
    pub fn begin_txn_verification(&self, producer_id: i64, epoch: i16) -> u64 {
        self.state
            .txn_tickets
            .borrow_mut()
            .begin_verification(producer_id, epoch)
    }

    /// The coordinator verified it: places the ticket unless a marker for the producer (or
    /// a later verification) came since `begin_txn_verification`. False: not placed.
    pub fn finish_txn_verification(&self, producer_id: i64, epoch: i16, token: u64) -> bool {
        self.state
            .txn_tickets
            .borrow_mut()
            .finish_verification(producer_id, epoch, token)
    }

    pub fn producers(&self) -> Vec<ProducerInfo> {
        txn_state::producers(&self.state)
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.state.log_start.get())
    }

    pub fn log_end_offset(&self) -> Offset {
        Offset(self.state.log_end.get())
    }

    /// Offsets below the high watermark are readable by consumers. With one replica it is
    /// the flushed offset: consumers only see records that survive kill -9 (see
    /// docs/durability.md).
    pub fn high_watermark(&self) -> Offset {
        Offset(self.state.high_watermark.get())
    }

    /// Offsets below this survive kill -9 (their O_DIRECT writes completed).
    pub fn flushed_offset(&self) -> Offset {
        Offset(self.state.flushed.get())
    }

    /// Offsets below this survive power loss (fdatasync returned).
    pub fn synced_offset(&self) -> Offset {
        Offset(self.state.synced.get())
    }

    /// Total bytes of the log on disk.
    pub fn size_bytes(&self) -> u64 {
        self.state.size_bytes.get()
    }

    pub fn segment_count(&self) -> usize {
        self.state.segments.borrow().len()
    }

    pub fn stats(&self) -> LogStats {
        let mut stats = self.state.stats.get();
        stats.flushed_offset = self.state.flushed.get();
        stats.synced_offset = self.state.synced.get();
        stats.segments = self.segment_count();
        stats.pending_bytes = self.state.pending_bytes.get();
        let capacity = self.state.admission_capacity;
        stats.write_buffer_bytes_max = capacity;
        stats.write_buffer_bytes_used = capacity.saturating_sub(self.state.admission.available());
        stats
    }

    /// Makes this a replicated partition's log, or moves its replicated high watermark:
    /// consumers see only offsets below `high_watermark` (and, as before, only flushed
    /// records when `visible_when_flushed`). The first call may lower the visible high
    /// watermark (records a single broker had shown, not yet on every in-sync replica); later
    /// calls never move it back (the replicated high watermark only grows; truncation lowers
    /// everything itself).
    pub fn set_replicated_high_watermark(&self, high_watermark: Offset) {
        let state = &self.state;
        let replicated = match state.replicated_high_watermark.get() {
            Some(current) => current.max(high_watermark.0),
            None => {
                let capped = state.high_watermark.get().min(high_watermark.0.max(0));
                state
                    .high_watermark
                    .set(capped.max(state.log_start.get()).min(state.log_end.get()));
                high_watermark.0
            }
        };
        state.replicated_high_watermark.set(Some(replicated));
        let local_visible = if state.config().visible_when_flushed {
            state.flushed.get().min(state.log_end.get())
        } else {
            state.log_end.get()
        };
        state.publish_visible(local_visible);
    }

    /// The replicated high watermark given since the log was opened; `None` before the first
    /// (a single broker's partition, or a replica's first role after a restart, whose local
    /// high watermark is its flushed log end and may cover records never committed).
    pub fn replicated_high_watermark(&self) -> Option<Offset> {
        self.state.replicated_high_watermark.get().map(Offset)
    }

    /// Completes once the high watermark is past `offset` (immediately if it already is):
    /// new records were appended *and flushed*, so consumers may read them. Also completes
    /// when the log closes or fails. Cancel-safe: dropping the future unregisters its waker.
    pub async fn wait_for_append(&self, offset: Offset) {
        let state = &self.state;
        state
            .appended
            .wait_until(|| {
                state.high_watermark.get() > offset.0
                    || state.closing.get()
                    || state.closed.get()
                    || state.is_failed()
            })
            .await;
    }

    /// `wait_for_append` for read_committed long polls: completes once the last stable
    /// offset is past `offset` (a marker ended the transaction holding it back), or the log
    /// closes or fails. Cancel-safe.
    pub async fn wait_for_stable(&self, offset: Offset) {
        let state = &self.state;
        state
            .appended
            .wait_until(|| {
                txn_state::last_stable_offset(state) > offset.0
                    || state.closing.get()
                    || state.closed.get()
                    || state.is_failed()
            })
            .await;
    }

    /// Kafka ListOffsets by timestamp: the first record whose timestamp is >= `timestamp_ms`
    /// (also inside a compressed batch), with its timestamp; None if there is none.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(Offset, i64)>, StorageError> {
        reader::offset_for_timestamp(&self.state, timestamp_ms).await
    }

    /// ListOffsets -3 (KIP-734): the offset and timestamp of the record with the largest
    /// timestamp (the earliest such record on ties); None for a log without records.
    pub async fn max_timestamp(&self) -> Result<Option<(Offset, i64)>, StorageError> {
        reader::max_timestamp_record(&self.state).await
    }

    /// Deletes whole closed segments past `retention.ms`/`retention.bytes` (those two only
    /// with cleanup.policy `delete`) or wholly below the log start offset and advances the log start offset. Returns the number
    /// of segments deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        retention::apply_retention(&self.state, now_ms).await
    }

    /// One compaction pass for `cleanup.policy=compact` (a no-op otherwise): rewrites the
    /// closed segments whose records are older than `min.compaction.lag.ms`, keeping the
    /// latest record per key and tombstones younger than `delete.retention.ms`; offsets
    /// never change. Paced by `compaction_io_bytes_per_second`. See `compaction/mod.rs`.
    pub async fn compact(&self, now_ms: i64) -> Result<CompactionStats, StorageError> {
        compaction::compact(&self.state, now_ms).await
    }

    /// Whether a compaction pass is due (dirty ratio, max lag, expired tombstones).
    pub fn compaction_due(&self, now_ms: i64) -> bool {
        compaction::due(&self.state, now_ms)
    }

    /// Dirty bytes / cleanable bytes of a compacted log.
    pub fn dirty_ratio(&self, now_ms: i64) -> f64 {
        compaction::dirty_ratio(&self.state, now_ms)
    }

    /// Counters of the last compaction pass that had something to do.
    pub fn last_compaction(&self) -> CompactionStats {
        compaction::last_stats(&self.state)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (never past the high
    /// watermark) and persists it. Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        retention::delete_records_before(&self.state, offset.0)
            .await
            .map(Offset)
    }

    /// Removes every batch that holds `offset` or a later one (so the new log end offset is
    /// the base offset of the batch containing `offset`, at most `offset`), on disk and in
    /// memory, with indexes, leader epochs and producer state. For replica divergence.
    /// Returns the new log end offset.
    pub async fn truncate_to(&self, offset: Offset) -> Result<Offset, StorageError> {
        retention::truncate_to(&self.state, offset.0)
            .await
            .map(Offset)
    }

    /// Leader epochs and the offsets where they start (the leader-epoch checkpoint).
    pub fn leader_epochs(&self) -> Vec<(i32, Offset)> {
        let cache = self.state.leader_epochs.borrow();
        cache
            .entries()
            .iter()
            .map(|&(e, o)| (e, Offset(o)))
            .collect()
    }

    /// A copy of the leader-epoch cache (a follower's truncation decisions read it).
    pub fn leader_epoch_cache(&self) -> crate::model::leader_epochs::LeaderEpochCache {
        self.state.leader_epochs.borrow().clone()
    }

    /// Kafka OffsetsForLeaderEpoch: the largest epoch <= `epoch` and its end offset.
    pub fn end_offset_for_leader_epoch(&self, epoch: i32) -> Option<(i32, Offset)> {
        let cache = self.state.leader_epochs.borrow();
        cache
            .end_offset_for(epoch, self.state.log_end.get())
            .map(|(e, o)| (e, Offset(o)))
    }

    /// Syncs and closes the log cleanly (writes indexes and a clean-shutdown marker).
    pub async fn close(&self) -> Result<(), StorageError> {
        recovery::close(&self.state).await
    }

    /// Closes the log and deletes its directory (DeleteTopics): renamed to a tombstone
    /// first (`remove_partition_dir`), so a crash never leaves a half-deleted directory
    /// under the partition's name.
    pub async fn remove(&self, tag: &str) -> Result<(), StorageError> {
        if let Err(error) = recovery::close_for_removal(&self.state).await {
            tracing::warn!(dir = %self.state.dir.display(), %error, "close before remove failed");
        }
        let (dir, tag) = (self.state.dir.clone(), tag.to_string());
        super::run_off_shard(super::BlockingOp::RemovePartitionDir, move || {
            super::remove_partition_dir(&dir, &tag)
        })
        .await
    }
}

impl Drop for PartitionLog {
    /// Without `close`, the flusher still writes what is pending and exits; the next open
    /// then recovers without the clean-shutdown shortcut.
    fn drop(&mut self) {
        if !self.state.closed.get() {
            self.state.closing.set(true);
            self.state.work.notify();
            self.state.appended.notify();
            self.state.log_end_moved.notify();
        }
    }
}
