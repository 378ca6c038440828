//! The flusher: one task per partition log that writes appended batches to the active
//! segment with O_DIRECT (see `writer.rs` for the write stream) and makes them durable with
//! fdatasync (group commit).
//!
//! When batches are pending it runs a *burst*: writes stay in flight continuously while
//! appends keep arriving, and each batch is published *flushed* once the writes covering it
//! completed. Whenever flushed data is unsynced and the policy or a `wait_synced` caller asks,
//! it starts an fdatasync as its own task, so later writes overlap it; the sync publishes
//! *synced* when it returns and covers every batch flushed when it started. N acks=all
//! producers waiting at once therefore share one fdatasync.
//!
//! Owns: the flusher loop, `WriteCursor` (active segment file, completed bytes, carried tail
//! block), syncs, segment file creation and finishing (trim, sync, index files). May import:
//! storage modules, glommio. Runs on: a task spawned on the shard owning the partition.
//! Invariants: one burst at a time (it holds `disk_lock`; a truncation sets `quiesce` to get
//! it) and at most one sync in flight; a sync covers only writes that completed before it
//! started; flushed/synced only advance after the I/O they stand for returned.

use super::StorageError;
use super::checkpoint;
use super::index;
use super::io;
use super::log::SyncRule;
use super::segment::{self, Segment};
use super::state::LogState;
use super::txn_state;
use super::writer;
use glommio::io::DmaFile;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where the flusher writes next.
pub(crate) struct WriteCursor {
    pub segment: Rc<Segment>,
    pub file: Rc<DmaFile>,
    /// Valid bytes of the segment on disk.
    pub disk_bytes: u64,
    /// The bytes of the partial last block: `[align_down(disk_bytes), disk_bytes)`.
    pub carry: Vec<u8>,
}

impl WriteCursor {
    /// Builds a cursor over an existing file, reading its partial last block back.
    pub(crate) async fn reopen(
        segment: Rc<Segment>,
        file: Rc<DmaFile>,
        disk_bytes: u64,
    ) -> Result<WriteCursor, StorageError> {
        let block = io::align_down(disk_bytes);
        let carry = io::read_at(
            &file,
            &segment.log_path,
            block,
            (disk_bytes - block) as usize,
        )
        .await?;
        if carry.len() as u64 != disk_bytes - block {
            return Err(StorageError::io(
                "read",
                &segment.log_path,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tail block short"),
            ));
        }
        Ok(WriteCursor {
            segment,
            file,
            disk_bytes,
            carry,
        })
    }
}

/// The flusher task body. Exits when the log closes (after draining) or fails.
pub(crate) async fn run(state: Rc<LogState>) {
    state.flusher_running.set(true);
    loop {
        wait_for_work(&state).await;
        if state.is_failed() || (state.closing.get() && drained(&state)) {
            break;
        }
        if writable(&state) {
            let Ok(permit) = state.disk_lock.acquire_permit(1).await else {
                break;
            };
            let cursor = state.cursor.borrow_mut().take();
            let result = writer::burst(&state, cursor).await;
            drop(permit);
            match result {
                Ok(cursor) => *state.cursor.borrow_mut() = cursor,
                Err(error) => {
                    state.fail(&error);
                    break;
                }
            }
        }
        let target = state
            .cursor
            .borrow()
            .as_ref()
            .map(|c| (c.file.clone(), c.segment.log_path.clone()));
        if sync_needed(&state)
            && let Some((file, path)) = target
        {
            start_sync(&state, file, path);
        }
    }
    state
        .progress
        .wait_until(|| !state.sync_in_flight.get())
        .await;
    state.flusher_running.set(false);
    state.progress.notify();
    state.appended.notify();
    state.log_end_moved.notify();
}

/// Pending batches can be written now (no truncation is asking for quiet).
fn writable(state: &LogState) -> bool {
    !state.pending.borrow().is_empty() && state.quiesce.get() == 0
}

/// Nothing left to write or sync, and no sync running.
fn drained(state: &LogState) -> bool {
    state.pending.borrow().is_empty()
        && !state.sync_in_flight.get()
        && state.flushed.get() <= state.synced.get()
}

fn has_work(state: &LogState) -> bool {
    writable(state) || sync_needed(state)
}

/// A sync should start now: flushed data is unsynced, someone (or the policy) wants it,
/// and no sync is running (the running one wakes the flusher when it ends).
pub(crate) fn sync_needed(state: &LogState) -> bool {
    let synced = state.synced.get();
    !state.sync_in_flight.get()
        && state.flushed.get() > synced
        && (state.closing.get() || state.sync_wanted.get() > synced || sync_due(state))
}

fn sync_due(state: &LogState) -> bool {
    match SyncRule::of(&state.config.borrow()) {
        SyncRule::WhenFlushed => true,
        SyncRule::Interval(interval) => state.last_sync.get().elapsed() >= interval,
        SyncRule::Bytes(bytes) => state.unsynced_bytes.get() >= bytes,
    }
}

async fn wait_for_work(state: &LogState) {
    let ready = || state.is_failed() || has_work(state) || (state.closing.get() && drained(state));
    let timeout = match SyncRule::of(&state.config.borrow()) {
        SyncRule::Interval(interval)
            if state.flushed.get() > state.synced.get() && !state.sync_in_flight.get() =>
        {
            Some(interval.saturating_sub(state.last_sync.get().elapsed()))
        }
        _ => None,
    };
    match timeout {
        Some(timeout) => {
            futures_lite::future::or(state.work.wait_until(ready), async move {
                glommio::timer::sleep(timeout.max(Duration::from_millis(1))).await
            })
            .await
        }
        None => state.work.wait_until(ready).await,
    }
}

/// Batches up to `next_offset` (`bytes` of them) are flushed: their writes completed.
pub(crate) fn publish_flushed(state: &LogState, next_offset: i64, bytes: u64) {
    state.flushed.set(state.flushed.get().max(next_offset));
    // Flushed records survive kill -9: only now do consumers see them.
    state.publish_visible(state.flushed.get().min(state.log_end.get()));
    state
        .pending_bytes
        .set(state.pending_bytes.get().saturating_sub(bytes));
    state.unsynced_bytes.set(state.unsynced_bytes.get() + bytes);
    state.progress.notify();
}

/// Starts an fdatasync of the active segment as its own task, so later writes
/// proceed meanwhile (they are not covered by it; the next sync covers them).
pub(crate) fn start_sync(state: &Rc<LogState>, file: Rc<DmaFile>, path: PathBuf) {
    let target = state.flushed.get();
    let generation = state.generation.get();
    state.sync_in_flight.set(true);
    let state = state.clone();
    glommio::spawn_local(async move {
        let result = sync(&state, &file, &path).await;
        state.sync_in_flight.set(false);
        match result {
            Ok(()) if generation == state.generation.get() => publish_synced(&state, target),
            Ok(()) => {}
            Err(error) => state.fail(&error),
        }
        state.work.notify();
        state.progress.notify();
    })
    .detach();
}

async fn sync(state: &LogState, file: &DmaFile, path: &Path) -> Result<(), StorageError> {
    if state.leader_epochs_dirty.replace(false) {
        let epochs = state.leader_epochs.borrow().clone();
        if let Err(error) = checkpoint::write_leader_epochs(&state.dir, &epochs).await {
            state.leader_epochs_dirty.set(true);
            return Err(error);
        }
    }
    let started = Instant::now();
    io::fdatasync(file, path).await?;
    state.shard_stats.record_sync(started.elapsed());
    state.update_stats(|s| s.syncs += 1);
    Ok(())
}

pub(crate) fn publish_synced(state: &LogState, target: i64) {
    let target = target.min(state.flushed.get());
    if target > state.synced.get() {
        state.synced.set(target);
    }
    if state.synced.get() >= state.flushed.get() {
        state.unsynced_bytes.set(0);
    }
    state.last_sync.set(Instant::now());
    state.progress.notify();
}

/// Creates the file of a new segment (and its roll-time producer snapshot).
pub(crate) async fn start_segment(
    state: &LogState,
    segment: Rc<Segment>,
) -> Result<WriteCursor, StorageError> {
    let snapshot = segment.roll_snapshot.borrow_mut().take();
    if let Some(bytes) = snapshot {
        let path = segment.path(segment::SNAPSHOT_SUFFIX);
        io::write_file_atomically(&path, bytes).await?;
    }
    let file = Rc::new(io::open_segment_rw(&segment.log_path, true).await?);
    io::sync_dir(&state.dir).await?;
    *segment.file.borrow_mut() = Some(file.clone());
    state.cache.touch_file(segment.uid, &segment.file);
    Ok(WriteCursor {
        segment,
        file,
        disk_bytes: 0,
        carry: Vec::new(),
    })
}

/// Completes a sealed segment: trims the padding, syncs, writes its index files. Everything
/// up to its end is then synced (earlier segments were finished before it).
pub(crate) async fn finish_segment(
    state: &LogState,
    cursor: WriteCursor,
) -> Result<(), StorageError> {
    let segment = &cursor.segment;
    assert_eq!(
        cursor.disk_bytes,
        segment.size_bytes(),
        "finishing with unwritten data"
    );
    io::truncate(&cursor.file, &segment.log_path, cursor.disk_bytes).await?;
    let started = Instant::now();
    io::fdatasync(&cursor.file, &segment.log_path).await?;
    state.shard_stats.record_sync(started.elapsed());
    state.update_stats(|s| s.syncs += 1);
    txn_state::write_segment_index(state, segment).await?;
    write_indexes(segment, cursor.disk_bytes).await?;
    if segment.is_sealed() {
        segment.set_finished();
    }
    publish_synced(state, segment.next_offset());
    advance_recovery_point(state, segment.next_offset()).await?;
    Ok(())
}

/// Checkpoints `offset` (at most the synced offset) as the recovery point if that moves it
/// forward. Serialised with the other metadata writes. Returns the recovery point.
pub(crate) async fn advance_recovery_point(
    state: &LogState,
    offset: i64,
) -> Result<i64, StorageError> {
    let Ok(_permit) = state.meta_lock.acquire_permit(1).await else {
        return Err(StorageError::Closed);
    };
    let offset = offset.min(state.synced.get());
    if offset > state.recovery_point.get() {
        checkpoint::write_recovery_point(&state.dir, offset).await?;
        state.recovery_point.set(offset);
    }
    Ok(state.recovery_point.get())
}

/// Writes both index files of `segment`, covering `log_bytes` bytes of it.
pub(crate) async fn write_indexes(segment: &Segment, log_bytes: u64) -> Result<(), StorageError> {
    let (offsets, times) = {
        let index = segment.index.borrow();
        (
            index::encode_offsets(segment.base_offset, log_bytes, &index.offsets),
            index::encode_times(segment.base_offset, log_bytes, &index.times),
        )
    };
    io::write_file_atomically(&segment.path(segment::INDEX_SUFFIX), offsets).await?;
    io::write_file_atomically(&segment.path(segment::TIME_INDEX_SUFFIX), times).await
}
