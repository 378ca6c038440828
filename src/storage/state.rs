//! `LogState`: everything one partition log shares between the calls of its API and its
//! flusher task. `PartitionLog` (log.rs) is a thin façade over an `Rc<LogState>`.
//!
//! Owns: segment list, in-memory batches, pending-write queue, offsets (log start, log end,
//! high watermark, flushed, synced), leader epochs, producer state, transaction state, the
//! sticky I/O failure.
//! May import: the other storage modules. Runs on: the shard owning the partition.
//! Invariants: `log_start <= high_watermark <= log_end`, and `high_watermark <=
//! replicated_high_watermark` when set; `synced <= flushed <= log_end`;
//! every batch at or past `flushed` is in `memory` (pending); the pending queue is in offset
//! order and each item's position is its segment's byte offset. No `RefCell` borrow is held
//! across an `.await`.

use super::StorageError;
use super::cache::{BatchCache, MemoryBatches};
use super::checkpoint::LeaderEpochCache;
use super::flusher::WriteCursor;
use super::log::LogConfig;
use super::producer::ProducerStateMap;
use super::segment::Segment;
use super::signal::Signal;
use super::stats::StorageStats;
use super::txn_state::TxnState;
use bytes::Bytes;
use glommio::io::DmaFile;
use glommio::sync::{Permit, RwLock, Semaphore};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// A batch appended but not yet written to disk.
pub(crate) struct PendingWrite {
    pub segment: Rc<Segment>,
    /// Byte position in `segment`.
    pub position: u64,
    pub bytes: Bytes,
    pub base_offset: i64,
    pub next_offset: i64,
    /// Admission units to give back once written.
    pub units: u64,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// fdatasync calls on segment files (group commit shares one among many waiters).
    pub syncs: u64,
    /// O_DIRECT writes issued (at most `write_chunk_bytes` each).
    pub writes: u64,
    /// Bytes handed to O_DIRECT writes, padding and rewritten tail blocks included.
    pub bytes_written: u64,
    /// Offsets below this are flushed (survive kill -9).
    pub flushed_offset: i64,
    /// Offsets below this are synced (survive power loss).
    pub synced_offset: i64,
    pub segments: usize,
    /// Bytes appended but not yet written.
    pub pending_bytes: u64,
    /// The write buffer's admission budget (`write_buffer_bytes_max`) and the part of it
    /// held by appended bytes not yet copied into a write buffer.
    pub write_buffer_bytes_max: u64,
    pub write_buffer_bytes_used: u64,
}

pub(crate) struct LogState {
    pub dir: PathBuf,
    pub id: u64,
    pub config: RefCell<LogConfig>,
    pub cache: Rc<BatchCache>,
    pub segments: RefCell<VecDeque<Rc<Segment>>>,
    pub memory: Rc<MemoryBatches>,
    pub pending: RefCell<VecDeque<PendingWrite>>,
    pub pending_bytes: Cell<u64>,
    /// Units are bytes appended and not yet copied into a write buffer by the flusher;
    /// FIFO, so appends are admitted in call order.
    pub admission: Semaphore,
    pub admission_capacity: u64,
    /// One write burst, truncation or close at a time.
    pub disk_lock: Semaphore,
    /// One metadata-file write (checkpoints) at a time.
    pub meta_lock: Semaphore,
    /// Held shared while a segment file is opened by its path, exclusively while compaction
    /// moves files under those paths (on the blocking pool) and switches the segment list:
    /// a path opened under it always holds what its `Segment` describes.
    pub segment_paths: RwLock<()>,
    pub cursor: RefCell<Option<WriteCursor>>,
    pub log_start: Cell<i64>,
    pub log_end: Cell<i64>,
    pub high_watermark: Cell<i64>,
    /// A replicated partition's high watermark (the offset every in-sync replica has, set by
    /// replication): consumers see nothing at or past it. `None`: not replicated, the local
    /// rule alone decides (`visible_when_flushed`).
    pub replicated_high_watermark: Cell<Option<i64>>,
    pub flushed: Cell<i64>,
    pub synced: Cell<i64>,
    pub sync_wanted: Cell<i64>,
    pub unsynced_bytes: Cell<u64>,
    pub last_sync: Cell<Instant>,
    pub size_bytes: Cell<u64>,
    pub leader_epochs: RefCell<LeaderEpochCache>,
    pub leader_epochs_dirty: Cell<bool>,
    pub producers: RefCell<ProducerStateMap>,
    /// Ongoing and aborted transactions (see `txn_state.rs`).
    pub txns: RefCell<TxnState>,
    /// Producers the transaction coordinator verified here (see `txn_tickets.rs`).
    pub txn_tickets: RefCell<super::txn_tickets::TxnTickets>,
    failure: RefCell<Option<Failure>>,
    pub closing: Cell<bool>,
    pub closed: Cell<bool>,
    pub flusher_running: Cell<bool>,
    /// An fdatasync task is running (later writes overlap it).
    pub sync_in_flight: Cell<bool>,
    /// Bumped by truncation: a sync started before it must not publish its target.
    pub generation: Cell<u64>,
    /// Truncations waiting for `disk_lock`: the flusher ends its burst for them.
    pub quiesce: Cell<u32>,
    /// Wakes the flusher.
    pub work: Signal,
    /// Flushed/synced advanced, a failure, or the flusher exited.
    pub progress: Signal,
    /// Log end offset advanced, or the log is closing.
    pub appended: Signal,
    /// The log end offset moved (any append, before it is visible), or the log is closing:
    /// what a leader's replica fetches and its high-watermark task wait on.
    pub log_end_moved: Signal,
    pub stats: Cell<LogStats>,
    /// The recovery point last checkpointed: every offset below it was synced.
    pub recovery_point: Cell<i64>,
    /// The replicated high watermark in the checkpoint file (read at open, then the last
    /// written): what a replica's first role after a restart starts from.
    pub high_watermark_checkpoint: Cell<Option<i64>>,
    /// Known CRC-corrupt (or unreadable) batches, as (segment base offset, byte position):
    /// found at open, by the scrub or by a read. Never served.
    pub corrupt: RefCell<BTreeSet<(i64, u64)>>,
    /// Counters shared by all logs of the shard.
    pub shard_stats: Rc<StorageStats>,
    /// Compaction bookkeeping (checkpoint, pass and swap flags).
    pub cleaner: RefCell<super::compaction::CleanerState>,
}

/// The error that failed the log, kept so every later caller gets an equivalent one.
struct Failure {
    op: &'static str,
    path: PathBuf,
    kind: std::io::ErrorKind,
    raw_os_error: Option<i32>,
    message: String,
}

impl Failure {
    fn from_error(error: &StorageError) -> Failure {
        match error {
            StorageError::Io { op, path, source } => Failure {
                op,
                path: path.clone(),
                kind: source.kind(),
                raw_os_error: source.raw_os_error(),
                message: source.to_string(),
            },
            other => Failure {
                op: "flush",
                path: PathBuf::new(),
                kind: std::io::ErrorKind::Other,
                raw_os_error: None,
                message: other.to_string(),
            },
        }
    }

    fn to_error(&self) -> StorageError {
        let source = match self.raw_os_error {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.kind, self.message.clone()),
        };
        StorageError::io(self.op, &self.path, source)
    }
}

pub(crate) struct Recovered {
    pub segments: VecDeque<Rc<Segment>>,
    pub cursor: Option<WriteCursor>,
    pub log_start: i64,
    /// The recovery point on disk (at most the log end).
    pub recovery_point: i64,
    /// The replicated high watermark checkpointed by a replica of a cluster partition
    /// (within the log's offsets), if any.
    pub high_watermark_checkpoint: Option<i64>,
    pub leader_epochs: LeaderEpochCache,
    pub producers: ProducerStateMap,
    pub txns: TxnState,
    /// Corrupt batches found while opening: (segment base offset, byte position).
    pub corrupt: Vec<(i64, u64)>,
    /// A write recovery skipped because the disk is full: the log opens read-only.
    pub read_only: Option<StorageError>,
}

impl LogState {
    /// Raises the visible high watermark to `local_visible` (what the local rule allows:
    /// the flushed offset, or the log end), never past the replicated high watermark, and
    /// wakes waiting readers if it moved.
    pub(crate) fn publish_visible(&self, local_visible: i64) {
        let visible = match self.replicated_high_watermark.get() {
            Some(replicated) => local_visible.min(replicated),
            None => local_visible,
        };
        if visible > self.high_watermark.get() {
            self.high_watermark.set(visible);
            self.appended.notify();
        }
    }

    /// Takes `disk_lock` ahead of the flusher's next burst (the flusher ends its burst when
    /// `quiesce` is set). `None` once the log is closed.
    pub(crate) async fn quiesce_disk(&self) -> Option<Permit<'_>> {
        self.quiesce.set(self.quiesce.get() + 1);
        let permit = self.disk_lock.acquire_permit(1).await;
        self.quiesce.set(self.quiesce.get() - 1);
        self.work.notify();
        permit.ok()
    }

    /// Opens `segment`'s file for reads by its path, unless compaction has replaced the
    /// segment (`None`: look the offset up again). Waits while a swap moves files.
    pub(crate) async fn open_segment_path(
        &self,
        segment: &Segment,
    ) -> Result<Option<DmaFile>, StorageError> {
        let Ok(_paths) = self.segment_paths.read().await else {
            return Err(StorageError::Closed);
        };
        if segment.is_replaced() {
            return Ok(None);
        }
        super::io::open_segment_read(&segment.log_path)
            .await
            .map(Some)
    }

    pub(crate) fn new(
        dir: PathBuf,
        config: LogConfig,
        cache: Rc<BatchCache>,
        shard_stats: Rc<StorageStats>,
        recovered: Recovered,
    ) -> LogState {
        let log_end = recovered.segments.back().map_or(0, |s| s.next_offset());
        let size = recovered.segments.iter().map(|s| s.size_bytes()).sum();
        let capacity = config.write_buffer_bytes_max.max(1);
        let tickets_max = config.producer_ids_max;
        let id = cache.next_id();
        let memory: Rc<MemoryBatches> = Rc::default();
        cache.register_log(id, &memory);
        LogState {
            dir,
            id,
            config: RefCell::new(config),
            cache,
            segments: RefCell::new(recovered.segments),
            memory,
            pending: RefCell::new(VecDeque::new()),
            pending_bytes: Cell::new(0),
            admission: Semaphore::new(capacity),
            admission_capacity: capacity,
            disk_lock: Semaphore::new(1),
            meta_lock: Semaphore::new(1),
            segment_paths: RwLock::new(()),
            cursor: RefCell::new(recovered.cursor),
            log_start: Cell::new(recovered.log_start),
            log_end: Cell::new(log_end),
            high_watermark: Cell::new(log_end),
            replicated_high_watermark: Cell::new(None),
            flushed: Cell::new(log_end),
            synced: Cell::new(log_end),
            sync_wanted: Cell::new(0),
            unsynced_bytes: Cell::new(0),
            last_sync: Cell::new(Instant::now()),
            size_bytes: Cell::new(size),
            leader_epochs: RefCell::new(recovered.leader_epochs),
            leader_epochs_dirty: Cell::new(false),
            producers: RefCell::new(recovered.producers),
            txns: RefCell::new(recovered.txns),
            txn_tickets: RefCell::new(super::txn_tickets::TxnTickets::new(tickets_max)),
            failure: RefCell::new(None),
            closing: Cell::new(false),
            closed: Cell::new(false),
            flusher_running: Cell::new(false),
            sync_in_flight: Cell::new(false),
            generation: Cell::new(0),
            quiesce: Cell::new(0),
            work: Signal::default(),
            progress: Signal::default(),
            appended: Signal::default(),
            log_end_moved: Signal::default(),
            stats: Cell::new(LogStats::default()),
            recovery_point: Cell::new(recovered.recovery_point),
            high_watermark_checkpoint: Cell::new(recovered.high_watermark_checkpoint),
            corrupt: RefCell::new(recovered.corrupt.into_iter().collect()),
            shard_stats,
            cleaner: RefCell::default(),
        }
    }

    pub(crate) fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    /// Err if the log is closed or failed.
    pub(crate) fn check_writable(&self) -> Result<(), StorageError> {
        if self.closed.get() || self.closing.get() {
            return Err(StorageError::Closed);
        }
        self.check_failure()
    }

    /// Err (a copy of the error that failed the log) if the flusher failed.
    pub(crate) fn check_failure(&self) -> Result<(), StorageError> {
        match &*self.failure.borrow() {
            Some(failure) => Err(failure.to_error()),
            None => Ok(()),
        }
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// True if the log failed because the disk was full (ENOSPC, EDQUOT).
    pub(crate) fn failed_for_lack_of_space(&self) -> bool {
        self.failure
            .borrow()
            .as_ref()
            .is_some_and(|f| super::error::is_disk_full_error(f.kind, f.raw_os_error))
    }

    /// Remembers a corrupt batch at `position` of the segment based at `base`; true if it
    /// was not known yet.
    pub(crate) fn note_corrupt(&self, base: i64, position: u64) -> bool {
        self.corrupt.borrow_mut().insert((base, position))
    }

    /// Makes the log read-only after a write or sync error: appends and sync waiters fail
    /// from now on; reads keep working. Reopening the log recovers it.
    pub(crate) fn fail(&self, error: &StorageError) {
        tracing::error!(dir = %self.dir.display(), %error, "partition log failed; now read-only");
        *self.failure.borrow_mut() = Some(Failure::from_error(error));
        self.admission.close();
        self.progress.notify();
        self.appended.notify();
        self.log_end_moved.notify();
    }

    pub(crate) fn update_stats(&self, update: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    pub(crate) fn segments_snapshot(&self) -> Vec<Rc<Segment>> {
        self.segments.borrow().iter().cloned().collect()
    }

    /// The segment that holds `offset` (the last one based at or before it).
    pub(crate) fn segment_for(&self, offset: i64) -> Option<Rc<Segment>> {
        let segments = self.segments.borrow();
        let point = segments.partition_point(|s| s.base_offset <= offset);
        point.checked_sub(1).map(|i| segments[i].clone())
    }

    pub(crate) fn active_segment(&self) -> Option<Rc<Segment>> {
        self.segments.borrow().back().cloned()
    }
}
