//! Opening a partition directory after a crash or a clean shutdown, and closing it cleanly.
//!
//! Closed segments are trusted when both index files are sane for the segment's size (see
//! `index.rs`), else rebuilt by a full validating scan; CRC-corrupt batches found there are
//! reported and never served (the background scrub checks the trusted ones). The last
//! segment is always scanned batch by batch (`tail.rs`): a torn tail past the recovery
//! point is cut off, synced data that cannot be read fails the open with `Damaged`.
//!
//! On a full disk the open still succeeds, read-only: a metadata write that recovery would
//! make (a rebuilt index, the leader-epoch checkpoint) and that fails for lack of space is
//! skipped, and the log starts failed with that error (reads work; the shard reopens it
//! when space returns).
//!
//! Owns: `recover`, `close`. May import: storage modules. Runs on: the shard owning the
//! partition, before the log is shared (`recover`) or after its flusher exited (`close`).
//! Invariants: after `recover`, every segment's `disk_bytes == size_bytes`, segments are
//! contiguous, the last one is unsealed, and the log end is at least the floor (recovery
//! point and log start checkpoints); the clean-shutdown marker is gone before any write.

use super::StorageError;
use super::blocking_fs::{BlockingOp, run_off_shard};
use super::cache::BatchCache;
use super::checkpoint::{self, CLEAN_SHUTDOWN_FILE, LeaderEpochCache};
use super::flusher;
use super::index::{self, BatchSummary, SegmentIndex};
use super::io;
use super::log::LogConfig;
use super::producer::ProducerStateMap;
use super::scan::{self, ScanItem, ScanOptions, Stop};
use super::segment::{self, Segment};
use super::state::{LogState, Recovered};
use super::tail::{self, Floor, ScannedBatch};
use super::txn_state::{self, TxnState};
use crate::model::RecordBatchHeader;
use glommio::io::DmaFile;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

struct Listing {
    log_bases: Vec<i64>,
    snapshots: Vec<i64>,
    clean: bool,
}

fn list_dir(dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing {
        log_bases: Vec::new(),
        snapshots: Vec::new(),
        clean: false,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("read_dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("read_dir", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") || name.starts_with(io::PROBE_FILE_PREFIX) {
            io::remove_file(&entry.path())?;
        } else if name == CLEAN_SHUTDOWN_FILE {
            listing.clean = true;
        } else if let Some(base) = segment::parse_file_name(&name, segment::LOG_SUFFIX) {
            listing.log_bases.push(base);
        } else if let Some(offset) = segment::parse_file_name(&name, segment::SNAPSHOT_SUFFIX) {
            listing.snapshots.push(offset);
        }
    }
    listing.log_bases.sort_unstable();
    listing.snapshots.sort_unstable();
    Ok(listing)
}

/// Writes recovery may skip on a full disk; the first such error makes the log read-only.
#[derive(Default)]
pub(crate) struct Skipped {
    pub disk_full: Option<StorageError>,
}

impl Skipped {
    /// `Ok` if `result` is fine or failed for lack of space (remembered), else the error.
    fn tolerate(&mut self, result: Result<(), StorageError>) -> Result<(), StorageError> {
        match result {
            Err(error) if error.is_disk_full() => {
                tracing::warn!(%error, "disk full while opening a partition log: it opens read-only");
                self.disk_full.get_or_insert(error);
                Ok(())
            }
            other => other,
        }
    }
}

/// The recovery point and log start checkpoints: the log must reach the higher one.
async fn read_floor(dir: &Path) -> Result<(Floor, Option<i64>), StorageError> {
    let log_start = checkpoint::read_log_start(dir).await?;
    let recovery_point = checkpoint::read_recovery_point(dir).await?.unwrap_or(0);
    let floor = match log_start {
        Some(start) if start > recovery_point => Floor {
            offset: start,
            source: checkpoint::LOG_START_FILE,
        },
        _ => Floor {
            offset: recovery_point,
            source: checkpoint::RECOVERY_POINT_FILE,
        },
    };
    Ok((floor, log_start))
}

pub(crate) async fn recover(
    dir: &Path,
    config: &LogConfig,
    cache: &BatchCache,
) -> Result<Recovered, StorageError> {
    // The directory work (create, finish interrupted swaps, list and drop leftovers) on the
    // blocking pool: a partition opened while the shard serves (CreateTopics) must not stop
    // its connections on `std::fs` calls.
    let listing = {
        let dir = dir.to_path_buf();
        run_off_shard(BlockingOp::OpenLogDir, move || {
            std::fs::create_dir_all(&dir).map_err(|e| StorageError::io("create_dir", &dir, e))?;
            super::compaction::recover_swaps(&dir)?;
            list_dir(&dir)
        })
        .await?
    };
    io::prime_iopoll_probe(dir).await?;
    let (floor, checkpoint_start) = read_floor(dir).await?;
    let mut skipped = Skipped::default();
    let mut corrupt = Vec::new();
    let mut segments = VecDeque::new();
    let bases = &listing.log_bases;
    for pair in bases.windows(2) {
        let (segment, bad) =
            load_closed(dir, pair[0], pair[1], config, cache, &mut skipped).await?;
        corrupt.extend(bad.into_iter().map(|position| (pair[0], position)));
        segments.push_back(Rc::new(segment));
    }
    let (cursor, scanned) = match bases.last() {
        Some(&base) => {
            let last = tail::load_last(dir, base, floor, config, cache).await?;
            corrupt.extend(last.corrupt.iter().map(|&position| (base, position)));
            segments.push_back(last.cursor.segment.clone());
            (Some(last.cursor), last.scanned)
        }
        None if floor.offset > 0 => return Err(no_segments(dir, floor)),
        None => {
            let base = checkpoint_start.unwrap_or(0);
            segments.push_back(Rc::new(Segment::new(dir, base, cache.next_id(), -1)));
            (None, Vec::new())
        }
    };
    let log_end = segments.back().map_or(0, |s| s.next_offset());
    assert!(
        log_end >= floor.offset,
        "recovered log ends below its floor"
    );
    let first_base = segments.front().map_or(0, |s| s.base_offset);
    let log_start = checkpoint_start
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end);
    let leader_epochs = recover_leader_epochs(dir, &scanned, log_end, &mut skipped).await?;
    let (producers, mut txns, replayed_from) = recover_producers(
        dir,
        &listing.snapshots,
        &segments,
        &scanned,
        log_end,
        config,
    )
    .await?;
    txn_state::load_index_files(&mut txns, &segments, replayed_from, log_start).await?;
    if listing.clean {
        io::remove_file(&checkpoint::path(dir, CLEAN_SHUTDOWN_FILE))?;
        io::sync_dir(dir).await?;
    }
    if listing.log_bases.is_empty() {
        // A new partition (or one whose files were all gone, which `floor` would have
        // refused had anything been synced): nothing to recover, so no "clean" to report.
        tracing::debug!(dir = %dir.display(), log_start, log_end, "partition log created");
    } else {
        tracing::info!(
            dir = %dir.display(), log_start, log_end, segments = segments.len(),
            clean = listing.clean, floor = floor.offset, corrupt_batches = corrupt.len(),
            "partition log recovered"
        );
    }
    let high_watermark_checkpoint = checkpoint::read_high_watermark(dir)
        .await?
        .map(|offset| offset.clamp(log_start, log_end));
    Ok(Recovered {
        segments,
        cursor,
        log_start,
        recovery_point: floor.offset.min(log_end),
        high_watermark_checkpoint,
        leader_epochs,
        producers,
        txns,
        corrupt,
        read_only: skipped.disk_full,
    })
}

fn no_segments(dir: &Path, floor: Floor) -> StorageError {
    StorageError::Damaged {
        dir: dir.to_path_buf(),
        log_end: 0,
        expected: floor.offset,
        detail: "it has no segment file".to_string(),
        checkpoint: floor.source,
        segment: None,
        valid_bytes: 0,
    }
}

async fn load_indexes(segment_path: &Path, base: i64, size: u64) -> Result<SegmentIndex, String> {
    let read = |suffix| async move {
        io::read_small_file(&segment_path.with_extension(suffix))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{suffix} file missing"))
    };
    let offsets = index::decode_offsets(&read(segment::INDEX_SUFFIX).await?, base, size)
        .map_err(|e| e.to_string())?;
    let times = index::decode_times(&read(segment::TIME_INDEX_SUFFIX).await?, base, size)
        .map_err(|e| e.to_string())?;
    Ok(SegmentIndex::new(offsets, times))
}

/// A segment that is not the last: index files trusted if sane, else rebuilt by a scan.
/// Returns it with the positions of corrupt batches the scan found.
async fn load_closed(
    dir: &Path,
    base: i64,
    next_base: i64,
    config: &LogConfig,
    cache: &BatchCache,
    skipped: &mut Skipped,
) -> Result<(Segment, Vec<u64>), StorageError> {
    let path = segment::file_path(dir, base, segment::LOG_SUFFIX);
    let file = io::open_segment_rw(&path, false).await?;
    let size = io::file_size(&file, &path).await?;
    let (index, size, corrupt) = match load_indexes(&path, base, size).await {
        Ok(index) => (index, size, None),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "rebuilding segment index");
            let (index, valid, corrupt) = rebuild_closed(&file, &path, base, size, config).await?;
            (index, valid, Some(corrupt))
        }
    };
    let segment = Segment::recovered(dir, base, cache.next_id(), size, next_base, index);
    segment.seal();
    if corrupt.is_some() {
        skipped.tolerate(flusher::write_indexes(&segment, size).await)?;
    }
    segment.set_finished();
    *segment.file.borrow_mut() = Some(Rc::new(file));
    cache.touch_file(segment.uid, &segment.file);
    Ok((segment, corrupt.unwrap_or_default()))
}

/// Scans a closed segment, reporting corrupt batches (skipped when their length is intact);
/// cuts a zero-filled tail. Returns the index, the segment's size and the positions of
/// the corrupt batches.
async fn rebuild_closed(
    file: &DmaFile,
    path: &Path,
    base: i64,
    size: u64,
    config: &LogConfig,
) -> Result<(SegmentIndex, u64, Vec<u64>), StorageError> {
    let mut corrupt = Vec::new();
    let mut index = SegmentIndex::default();
    let options = ScanOptions {
        chunk_bytes: config.read_chunk_bytes as usize,
        skip_corrupt: true,
    };
    let end = scan::scan_segment(file, path, 0, size, &options, |item| {
        match item {
            ScanItem::Batch { position, bytes } => {
                if let Ok(header) = RecordBatchHeader::view(bytes) {
                    index.on_batch(
                        base,
                        &summary(position, bytes.len(), header),
                        interval(config),
                    );
                }
            }
            ScanItem::Corrupt {
                position,
                len,
                error,
                ..
            } => {
                tracing::error!(
                    path = %path.display(), position, len, %error,
                    "corrupt batch in a closed segment; it will not be served"
                );
                corrupt.push(position);
            }
        }
        true
    })
    .await?;
    match end.stop {
        None => Ok((index, size, corrupt)),
        Some(Stop::Zeros) => {
            io::truncate(file, path, end.position).await?;
            io::fdatasync(file, path).await?;
            Ok((index, end.position, corrupt))
        }
        Some(stop) => {
            tracing::error!(
                path = %path.display(), position = end.position, ?stop,
                "closed segment damaged; data after this position will not be served"
            );
            corrupt.push(end.position);
            Ok((index, size, corrupt))
        }
    }
}

fn interval(config: &LogConfig) -> u64 {
    config.index_interval_bytes
}

fn summary(position: u64, len: usize, header: &RecordBatchHeader) -> BatchSummary {
    BatchSummary {
        position,
        bytes: len as u64,
        base_offset: header.base_offset(),
        last_offset: header.last_offset(),
        max_timestamp: header.max_timestamp.get(),
    }
}

async fn recover_leader_epochs(
    dir: &Path,
    scanned: &[ScannedBatch],
    log_end: i64,
    skipped: &mut Skipped,
) -> Result<LeaderEpochCache, StorageError> {
    let stored = checkpoint::read_leader_epochs(dir).await?;
    let mut epochs = stored.clone();
    epochs.truncate_from(log_end);
    for batch in scanned {
        epochs.assign(batch.leader_epoch, batch.base_offset);
    }
    if epochs != stored {
        skipped.tolerate(checkpoint::write_leader_epochs(dir, &epochs).await)?;
    }
    Ok(epochs)
}

/// Latest snapshot at or below the log end, then the batches after it replayed. Without a
/// usable snapshot only the last segment is replayed (older producers count as unknown).
/// Returns the idempotence and transaction states and the offset the replay started at.
async fn recover_producers(
    dir: &Path,
    snapshots: &[i64],
    segments: &VecDeque<Rc<Segment>>,
    scanned: &[ScannedBatch],
    log_end: i64,
    config: &LogConfig,
) -> Result<(ProducerStateMap, TxnState, i64), StorageError> {
    let max = config.producer_ids_max;
    let mut found: Option<(i64, ProducerStateMap, TxnState)> = None;
    for &offset in snapshots.iter().rev() {
        let path = segment::file_path(dir, offset, segment::SNAPSHOT_SUFFIX);
        if found.is_some() || offset > log_end {
            if offset > log_end || snapshots.len() > 2 {
                io::remove_file(&path)?;
            }
            continue;
        }
        let bytes = io::read_small_file(&path).await?.unwrap_or_default();
        match ProducerStateMap::decode_snapshot_with(&bytes, offset, max) {
            Some((map, section)) => {
                let txns = txn_state::state_from_section(section, max, &path);
                found = Some((offset, map, txns));
            }
            None => {
                tracing::warn!(path = %path.display(), "corrupt producer snapshot ignored");
                io::remove_file(&path)?;
            }
        }
    }
    let last_base = segments.back().map_or(0, |s| s.base_offset);
    let (from, mut map, mut txns) =
        found.unwrap_or_else(|| (last_base, ProducerStateMap::new(max), TxnState::new(max)));
    if from >= log_end {
        return Ok((map, txns, from));
    }
    let first_base = segments.front().map_or(0, |s| s.base_offset);
    let from = from.max(first_base);
    for segment in segments.iter().filter(|s| s.next_offset() > from) {
        if segment.base_offset == last_base {
            replay(&mut map, &mut txns, scanned, from);
        } else {
            replay_segment(&mut map, &mut txns, segment, from, config).await?;
        }
    }
    Ok((map, txns, from))
}

fn replay(map: &mut ProducerStateMap, txns: &mut TxnState, batches: &[ScannedBatch], from: i64) {
    for batch in batches.iter().filter(|b| b.base_offset >= from) {
        if let Some(producer) = &batch.producer {
            map.record(producer, batch.base_offset, batch.last_offset);
        }
        if let Some(txn) = &batch.txn {
            txns.apply(txn, batch.base_offset, batch.last_offset);
        }
    }
}

async fn replay_segment(
    map: &mut ProducerStateMap,
    txns: &mut TxnState,
    segment: &Segment,
    from: i64,
    config: &LogConfig,
) -> Result<(), StorageError> {
    let file = match segment.cached_file() {
        Some(file) => file,
        None => Rc::new(io::open_segment_read(&segment.log_path).await?),
    };
    let mut batches = Vec::new();
    let options = ScanOptions {
        chunk_bytes: config.read_chunk_bytes as usize,
        skip_corrupt: true,
    };
    let start = segment
        .index
        .borrow()
        .position_for(from - segment.base_offset);
    let end = segment.disk_bytes();
    scan::scan_segment(&file, &segment.log_path, start, end, &options, |item| {
        if let ScanItem::Batch { bytes, .. } = item
            && let Ok(header) = RecordBatchHeader::view(bytes)
        {
            batches.push(ScannedBatch::of(header, bytes));
        }
        true
    })
    .await?;
    replay(map, txns, &batches, from);
    Ok(())
}

/// Drains the flusher, then writes the active segment's final state (trimmed and synced
/// file, transaction and offset index files), the producer snapshot (with the transaction
/// state), the leader epochs and the clean marker.
pub(crate) async fn close(state: &LogState) -> Result<(), StorageError> {
    shut(state, true).await
}

/// Closes a log whose directory is about to be removed (DeleteTopics): drains the flusher
/// like `close` but writes none of the final state (`finalize`'s syncs and checkpoint files,
/// about seven fsyncs per partition), since nothing will read it again. A crash before the
/// removal finishes is completed at the next start from the deletion record.
pub(crate) async fn close_for_removal(state: &LogState) -> Result<(), StorageError> {
    shut(state, false).await
}

async fn shut(state: &LogState, write_final_state: bool) -> Result<(), StorageError> {
    if state.closed.get() {
        return Ok(());
    }
    state.closing.set(true);
    state.work.notify();
    state.appended.notify();
    state.log_end_moved.notify();
    state
        .progress
        .wait_until(|| !state.flusher_running.get())
        .await;
    let result = if write_final_state {
        finalize(state).await
    } else {
        discard_cursor(state).await
    };
    state.closed.set(true);
    state.admission.close();
    state.cache.unregister_log(state.id);
    for segment in state.segments.borrow().iter() {
        state.cache.forget_file(segment.uid);
        segment.file.borrow_mut().take();
    }
    state.memory.borrow_mut().clear();
    state.pending.borrow_mut().clear();
    state.progress.notify();
    state.appended.notify();
    state.log_end_moved.notify();
    result
}

/// Drops the write cursor (its file handle) under the disk lock, as `finalize` does,
/// without trimming or syncing the segment.
async fn discard_cursor(state: &LogState) -> Result<(), StorageError> {
    let Ok(_permit) = state.disk_lock.acquire_permit(1).await else {
        return Err(StorageError::Closed);
    };
    drop(state.cursor.borrow_mut().take());
    Ok(())
}

async fn finalize(state: &LogState) -> Result<(), StorageError> {
    // The lock first, also for a failed log: a compaction swap may still be moving files on
    // the blocking pool, and a reopen must not recover the directory under it.
    let Ok(_permit) = state.disk_lock.acquire_permit(1).await else {
        return Err(StorageError::Closed);
    };
    state.check_failure()?;
    let cursor = state.cursor.borrow_mut().take();
    if let Some(cursor) = cursor {
        io::truncate(&cursor.file, &cursor.segment.log_path, cursor.disk_bytes).await?;
        io::fdatasync(&cursor.file, &cursor.segment.log_path).await?;
        txn_state::write_segment_index(state, &cursor.segment).await?;
        flusher::write_indexes(&cursor.segment, cursor.disk_bytes).await?;
    }
    let log_end = state.log_end.get();
    let snapshot = txn_state::encode_snapshot(state, log_end);
    let path = segment::file_path(&state.dir, log_end, segment::SNAPSHOT_SUFFIX);
    io::write_file_atomically(&path, snapshot).await?;
    let epochs = state.leader_epochs.borrow().clone();
    checkpoint::write_leader_epochs(&state.dir, &epochs).await?;
    checkpoint::write_recovery_point(&state.dir, log_end).await?;
    state.recovery_point.set(log_end);
    if let Some(high_watermark) = state.replicated_high_watermark.get() {
        let high_watermark = high_watermark.min(log_end);
        checkpoint::write_high_watermark(&state.dir, high_watermark).await?;
        state.high_watermark_checkpoint.set(Some(high_watermark));
    }
    let marker = checkpoint::path(&state.dir, CLEAN_SHUTDOWN_FILE);
    io::write_file_atomically(&marker, format!("0\n{log_end}\n").into_bytes()).await
}
