//! Moving the ends of the log: retention (delete whole old segments), DeleteRecords (advance
//! the log start offset, persisted), and truncation to an offset (for replication).
//!
//! Owns: the log start checkpoint updates, segment file deletion, truncation of the tail.
//! May import: storage modules. Runs on: the shard owning the partition; unlinks and
//! truncation's directory listing on its blocking pool (`blocking_fs`).
//! Invariants: only finished segments (sealed, written, synced) are deleted by retention and
//! never the active one; the log start offset never decreases except when truncation goes
//! below it; truncation holds `disk_lock`, so no write burst runs while files change, and it
//! updates memory state without awaiting, so appends see either the old or the new log.

use super::StorageError;
use super::blocking_fs::{BlockingOp, run_off_shard};
use super::checkpoint;
use super::flusher::WriteCursor;
use super::io;
use super::scan::{self, ScanItem, ScanOptions};
use super::segment::{self, Segment};
use super::state::LogState;
use super::txn_state;
use crate::model::RecordBatchHeader;
use std::path::Path;
use std::rc::Rc;

const SEGMENT_SUFFIXES: [&str; 5] = [
    segment::LOG_SUFFIX,
    segment::INDEX_SUFFIX,
    segment::TIME_INDEX_SUFFIX,
    segment::SNAPSHOT_SUFFIX,
    txn_state::TXN_INDEX_SUFFIX,
];

pub(crate) async fn apply_retention(state: &LogState, now_ms: i64) -> Result<usize, StorageError> {
    if state.closed.get() {
        return Err(StorageError::Closed);
    }
    if super::compaction::swap_in_progress(state) {
        return Ok(0);
    }
    let count = expired_segments(state, now_ms);
    if count == 0 {
        return Ok(0);
    }
    let removed: Vec<Rc<Segment>> = state.segments.borrow_mut().drain(..count).collect();
    let first_base = state.segments.borrow().front().map(|s| s.base_offset);
    if let Some(first_base) = first_base {
        state
            .memory
            .borrow_mut()
            .retain(|&base, _| base >= first_base);
        if first_base > state.log_start.get() {
            state.log_start.set(first_base);
        }
    }
    state
        .txns
        .borrow_mut()
        .drop_aborted_below(state.log_start.get());
    let freed: u64 = removed.iter().map(|s| s.size_bytes()).sum();
    state
        .size_bytes
        .set(state.size_bytes.get().saturating_sub(freed));
    delete_segment_files(state, &removed).await?;
    io::sync_dir(&state.dir).await?;
    persist_log_start(state).await?;
    tracing::info!(
        dir = %state.dir.display(), segments = count, bytes = freed,
        log_start = state.log_start.get(), "retention deleted segments"
    );
    Ok(count)
}

/// How many segments from the front retention may delete now.
fn expired_segments(state: &LogState, now_ms: i64) -> usize {
    let config = state.config();
    let segments = state.segments.borrow();
    let log_start = state.log_start.get();
    let mut total = state.size_bytes.get() as i64;
    let mut count = 0;
    while count + 1 < segments.len() {
        let segment = &segments[count];
        if !segment.is_finished() {
            break;
        }
        let below_start = segments[count + 1].base_offset <= log_start;
        // Time and size limits apply only with cleanup.policy `delete`.
        let delete = config.cleanup_policy.delete;
        let expired = delete
            && config.retention_ms >= 0
            && segment
                .max_timestamp()
                .is_some_and(|(ts, _)| now_ms.saturating_sub(ts) > config.retention_ms);
        let size = segment.size_bytes() as i64;
        let oversized =
            delete && config.retention_bytes >= 0 && total - size >= config.retention_bytes;
        if !(below_start || expired || oversized) {
            break;
        }
        total -= size;
        count += 1;
    }
    count
}

/// Forgets the segments' open files, then unlinks their files on the blocking pool (an
/// unlink of a large segment frees its extents: milliseconds the shard would not serve).
async fn delete_segment_files(
    state: &LogState,
    removed: &[Rc<Segment>],
) -> Result<(), StorageError> {
    let mut paths = Vec::with_capacity(removed.len() * SEGMENT_SUFFIXES.len());
    for segment in removed {
        state.cache.forget_file(segment.uid);
        segment.file.borrow_mut().take();
        paths.extend(SEGMENT_SUFFIXES.iter().map(|suffix| segment.path(suffix)));
    }
    if paths.is_empty() {
        return Ok(());
    }
    run_off_shard(BlockingOp::RemoveSegmentFiles, move || {
        paths.iter().try_for_each(|path| io::remove_file(path))
    })
    .await
}

/// Writes the current log start offset (serialised, so the file only moves forward).
async fn persist_log_start(state: &LogState) -> Result<(), StorageError> {
    let Ok(_permit) = state.meta_lock.acquire_permit(1).await else {
        return Err(StorageError::Closed);
    };
    checkpoint::write_log_start(&state.dir, state.log_start.get()).await
}

pub(crate) async fn delete_records_before(
    state: &LogState,
    offset: i64,
) -> Result<i64, StorageError> {
    if state.closed.get() {
        return Err(StorageError::Closed);
    }
    let current = state.log_start.get();
    let target = offset.min(state.high_watermark.get());
    if target <= current {
        return Ok(current);
    }
    state.log_start.set(target);
    state.txns.borrow_mut().drop_aborted_below(target);
    persist_log_start(state).await?;
    Ok(state.log_start.get())
}

pub(crate) async fn truncate_to(state: &LogState, offset: i64) -> Result<i64, StorageError> {
    state.check_writable()?;
    let Some(_permit) = state.quiesce_disk().await else {
        return Err(StorageError::Closed);
    };
    if offset >= state.log_end.get() {
        return Ok(state.log_end.get());
    }
    let Some(segment) = state
        .segment_for(offset)
        .or_else(|| state.segments.borrow().front().cloned())
    else {
        return Ok(state.log_end.get());
    };
    let (position, new_end) =
        locate_batch(state, &segment, offset.max(segment.base_offset)).await?;
    // Before any file changes, so recovery never takes the cut for damage; held until the
    // synced offset is cut too, so a concurrent checkpoint cannot move it back up.
    let meta_permit = lower_recovery_point(state, new_end).await?;
    let txns = txn_state::rebuild_for_truncation(state, new_end).await;
    let (removed, cursor) = cut_memory_state(state, &segment, position, new_end);
    drop(meta_permit);
    let txn_checkpoint = txn_state::install_truncated(state, txns, &segment, new_end);
    delete_segment_files(state, &removed).await?;
    let cursor = cut_files(state, &segment, position, cursor).await?;
    *state.cursor.borrow_mut() = cursor;
    remove_stale_files(state, &segment, new_end).await?;
    txn_checkpoint.write().await?;
    let epochs = state.leader_epochs.borrow().clone();
    checkpoint::write_leader_epochs(&state.dir, &epochs).await?;
    persist_log_start(state).await?;
    io::sync_dir(&state.dir).await?;
    tracing::warn!(dir = %state.dir.display(), new_end, "log truncated");
    Ok(new_end)
}

/// Moves the recovery point checkpoint back to `new_end` if it is past it; returns the
/// metadata permit, held by the caller until the in-memory offsets are cut.
async fn lower_recovery_point(
    state: &LogState,
    new_end: i64,
) -> Result<glommio::sync::Permit<'_>, StorageError> {
    let Ok(permit) = state.meta_lock.acquire_permit(1).await else {
        return Err(StorageError::Closed);
    };
    if state.recovery_point.get() > new_end {
        checkpoint::write_recovery_point(&state.dir, new_end).await?;
        state.recovery_point.set(new_end);
    }
    Ok(permit)
}

/// Position and base offset of the batch of `segment` that contains `offset`.
async fn locate_batch(
    state: &LogState,
    segment: &Segment,
    offset: i64,
) -> Result<(u64, i64), StorageError> {
    let pending = state
        .pending
        .borrow()
        .iter()
        .find(|p| p.segment.uid == segment.uid && p.next_offset > offset)
        .map(|p| (p.position, p.base_offset));
    if let Some(found) = pending {
        return Ok(found);
    }
    // Under `disk_lock` (truncation), so no compaction swap replaces the segment meanwhile.
    let file = match segment.cached_file() {
        Some(file) => file,
        None => match state.open_segment_path(segment).await? {
            Some(file) => Rc::new(file),
            None => {
                return Err(StorageError::io(
                    "truncate",
                    &segment.log_path,
                    std::io::Error::other("segment replaced by compaction during truncation"),
                ));
            }
        },
    };
    let start = segment
        .index
        .borrow()
        .position_for(offset - segment.base_offset);
    let options = ScanOptions {
        chunk_bytes: state.config().read_chunk_bytes as usize,
        skip_corrupt: false,
    };
    let mut found = None;
    let path = &segment.log_path;
    let end = segment.disk_bytes();
    scan::scan_segment(&file, path, start, end, &options, |item| {
        if let ScanItem::Batch { position, bytes } = item
            && let Ok(header) = RecordBatchHeader::view(bytes)
            && header.next_offset() > offset
        {
            found = Some((position, header.base_offset()));
            return false;
        }
        true
    })
    .await?;
    found.ok_or_else(|| {
        StorageError::io(
            "truncate",
            path,
            std::io::Error::other(format!("no batch holds offset {offset}")),
        )
    })
}

/// The synchronous part of truncation: memory, offsets, indexes, producer state, epochs.
/// Returns the segments to delete and the write cursor (taken out for `cut_files`).
fn cut_memory_state(
    state: &LogState,
    segment: &Rc<Segment>,
    position: u64,
    new_end: i64,
) -> (Vec<Rc<Segment>>, Option<WriteCursor>) {
    let removed: Vec<Rc<Segment>> = {
        let mut segments = state.segments.borrow_mut();
        let keep = segments.partition_point(|s| s.base_offset <= segment.base_offset);
        segments.drain(keep..).collect()
    };
    let (units, bytes) = {
        let mut pending = state.pending.borrow_mut();
        let dropped: Vec<_> = pending
            .iter()
            .filter(|p| p.base_offset >= new_end)
            .collect();
        let units: u64 = dropped.iter().map(|p| p.units).sum();
        let bytes: u64 = dropped.iter().map(|p| p.bytes.len() as u64).sum();
        pending.retain(|p| p.base_offset < new_end);
        (units, bytes)
    };
    state.admission.signal(units);
    state
        .pending_bytes
        .set(state.pending_bytes.get().saturating_sub(bytes));
    drop(state.memory.borrow_mut().split_off(&new_end));
    segment.truncate(position, new_end);
    segment.unseal();
    state.generation.set(state.generation.get() + 1);
    for offset_cell in [
        &state.log_end,
        &state.high_watermark,
        &state.flushed,
        &state.synced,
    ] {
        offset_cell.set(offset_cell.get().min(new_end));
    }
    state.sync_wanted.set(state.sync_wanted.get().min(new_end));
    if state.log_start.get() > new_end {
        state.log_start.set(new_end);
    }
    let size: u64 = state.segments.borrow().iter().map(|s| s.size_bytes()).sum();
    state.size_bytes.set(size);
    state.producers.borrow_mut().truncate_from(new_end);
    state.leader_epochs.borrow_mut().truncate_from(new_end);
    state.leader_epochs_dirty.set(false);
    (removed, state.cursor.borrow_mut().take())
}

/// Cuts the file of `segment` at `position` and returns the write cursor to continue from.
async fn cut_files(
    state: &LogState,
    segment: &Rc<Segment>,
    position: u64,
    cursor: Option<WriteCursor>,
) -> Result<Option<WriteCursor>, StorageError> {
    let file = match cursor {
        // `segment` was never written: nothing on disk to cut.
        Some(cursor) if cursor.segment.base_offset < segment.base_offset => {
            return Ok(Some(cursor));
        }
        Some(cursor) if cursor.segment.uid == segment.uid => cursor.file,
        _ => {
            if !segment.log_path.exists() {
                return Ok(None);
            }
            Rc::new(io::open_segment_rw(&segment.log_path, false).await?)
        }
    };
    let path = &segment.log_path;
    if io::file_size(&file, path).await? > position {
        io::truncate(&file, path, position).await?;
        io::fdatasync(&file, path).await?;
    }
    *segment.file.borrow_mut() = Some(file.clone());
    state.cache.touch_file(segment.uid, &segment.file);
    let disk = segment.disk_bytes();
    Ok(Some(
        WriteCursor::reopen(segment.clone(), file, disk).await?,
    ))
}

/// Unlinks, on the blocking pool, the cut segment's index files (stale past the cut;
/// rebuilt from the log) and the producer snapshots past `new_end` (the directory listed).
async fn remove_stale_files(
    state: &LogState,
    segment: &Segment,
    new_end: i64,
) -> Result<(), StorageError> {
    let dir = state.dir.clone();
    let indexes = [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX].map(|s| segment.path(s));
    run_off_shard(BlockingOp::TruncateLogFiles, move || {
        indexes.iter().try_for_each(|path| io::remove_file(path))?;
        remove_snapshots_after(&dir, new_end)
    })
    .await
}

fn remove_snapshots_after(dir: &Path, new_end: i64) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("read_dir", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(offset) = segment::parse_file_name(&name, segment::SNAPSHOT_SUFFIX)
            && offset > new_end
        {
            io::remove_file(&entry.path())?;
        }
    }
    Ok(())
}
