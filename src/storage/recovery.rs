//! Opening a partition directory after a crash or a clean shutdown, and closing it cleanly.
//!
//! Closed segments are trusted when both index files are sane for the segment's size (see
//! `index.rs`), else rebuilt by a full validating scan; CRC-corrupt batches found there are
//! reported and never served. The last segment is scanned batch by batch (length, magic,
//! CRC-32C, offset continuity): zero padding ends the log, a torn or invalid tail is cut off
//! (the file is truncated and synced), and the partial last block is read back so the next
//! append continues it. After `close()` the clean-shutdown marker lets the open trust the
//! last segment's index too and only check the bytes after its last entry.
//!
//! Owns: `recover`, `close`. May import: storage modules. Runs on: the shard owning the
//! partition, before the log is shared (`recover`) or after its flusher exited (`close`).
//! Invariants: after `recover`, every segment's `disk_bytes == size_bytes`, segments are
//! contiguous, the last one is unsealed; the clean-shutdown marker is gone before any write.

use super::StorageError;
use super::cache::BatchCache;
use super::checkpoint::{self, CLEAN_SHUTDOWN_FILE, LeaderEpochCache};
use super::flusher::{self, WriteCursor};
use super::index::{self, BatchSummary, SegmentIndex};
use super::io;
use super::log::LogConfig;
use super::producer::{ProducerBatch, ProducerStateMap};
use super::scan::{self, ScanItem, ScanOptions, Stop};
use super::segment::{self, Segment};
use super::state::{LogState, Recovered};
use super::txn_state::{self, TxnBatch, TxnState};
use crate::model::RecordBatchHeader;
use glommio::io::DmaFile;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

/// What recovery keeps of each scanned batch of the last segment.
#[derive(Debug, Clone, Copy)]
struct ScannedBatch {
    base_offset: i64,
    last_offset: i64,
    leader_epoch: i32,
    producer: Option<ProducerBatch>,
    txn: Option<TxnBatch>,
}

impl ScannedBatch {
    fn of(header: &RecordBatchHeader, bytes: &[u8]) -> ScannedBatch {
        ScannedBatch {
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            leader_epoch: header.partition_leader_epoch.get(),
            producer: ProducerBatch::from_header(header),
            txn: TxnBatch::of(bytes),
        }
    }
}

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
        if name.ends_with(".tmp") {
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

pub(crate) async fn recover(
    dir: &Path,
    config: &LogConfig,
    cache: &BatchCache,
) -> Result<Recovered, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create_dir", dir, e))?;
    io::prime_iopoll_probe(dir).await?;
    super::compaction::recover_swaps(dir).await?;
    let listing = list_dir(dir)?;
    let checkpoint_start = checkpoint::read_log_start(dir).await?;
    let mut segments = VecDeque::new();
    let bases = &listing.log_bases;
    for pair in bases.windows(2) {
        let segment = load_closed(dir, pair[0], pair[1], config, cache).await?;
        segments.push_back(Rc::new(segment));
    }
    let (cursor, scanned) = match bases.last() {
        Some(&base) => {
            let (cursor, scanned) = load_last(dir, base, listing.clean, config, cache).await?;
            segments.push_back(cursor.segment.clone());
            (Some(cursor), scanned)
        }
        None => {
            let base = checkpoint_start.unwrap_or(0);
            segments.push_back(Rc::new(Segment::new(dir, base, cache.next_id(), -1)));
            (None, Some(Vec::new()))
        }
    };
    let log_end = segments.back().map_or(0, |s| s.next_offset());
    let first_base = segments.front().map_or(0, |s| s.base_offset);
    let log_start = checkpoint_start
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end);
    let leader_epochs = recover_leader_epochs(dir, scanned.as_deref(), log_end).await?;
    let (producers, mut txns, replayed_from) = recover_producers(
        dir,
        &listing.snapshots,
        &segments,
        scanned.as_deref(),
        log_end,
        config,
    )
    .await?;
    txn_state::load_index_files(&mut txns, &segments, replayed_from, log_start).await?;
    if listing.clean {
        io::remove_file(&checkpoint::path(dir, CLEAN_SHUTDOWN_FILE))?;
        io::sync_dir(dir).await?;
    }
    tracing::info!(
        dir = %dir.display(), log_start, log_end, segments = segments.len(),
        clean = listing.clean, "partition log recovered"
    );
    Ok(Recovered {
        segments,
        cursor,
        log_start,
        leader_epochs,
        producers,
        txns,
    })
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
async fn load_closed(
    dir: &Path,
    base: i64,
    next_base: i64,
    config: &LogConfig,
    cache: &BatchCache,
) -> Result<Segment, StorageError> {
    let path = segment::file_path(dir, base, segment::LOG_SUFFIX);
    let file = io::open_segment_rw(&path, false).await?;
    let size = io::file_size(&file, &path).await?;
    let (index, size, rebuilt) = match load_indexes(&path, base, size).await {
        Ok(index) => (index, size, false),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "rebuilding segment index");
            let (index, valid) = rebuild_closed(&file, &path, base, size, config).await?;
            (index, valid, true)
        }
    };
    let segment = Segment::recovered(dir, base, cache.next_id(), size, next_base, index);
    segment.seal();
    if rebuilt {
        flusher::write_indexes(&segment, size).await?;
    }
    segment.set_finished();
    *segment.file.borrow_mut() = Some(Rc::new(file));
    cache.touch_file(segment.uid, &segment.file);
    Ok(segment)
}

/// Scans a closed segment, reporting corrupt batches (skipped when their length is intact);
/// cuts a zero-filled tail. Returns the index and the segment's size.
async fn rebuild_closed(
    file: &DmaFile,
    path: &Path,
    base: i64,
    size: u64,
    config: &LogConfig,
) -> Result<(SegmentIndex, u64), StorageError> {
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
            } => tracing::error!(
                path = %path.display(), position, len, %error,
                "corrupt batch in a closed segment; it will not be served"
            ),
        }
        true
    })
    .await?;
    match end.stop {
        None => Ok((index, size)),
        Some(Stop::Zeros) => {
            io::truncate(file, path, end.position).await?;
            io::fdatasync(file, path).await?;
            Ok((index, end.position))
        }
        Some(stop) => {
            tracing::error!(
                path = %path.display(), position = end.position, ?stop,
                "closed segment damaged; data after this position will not be served"
            );
            Ok((index, size))
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

/// The last segment: full validating scan (or, after a clean shutdown, a check of the bytes
/// after its last index entry). Returns its write cursor and the scanned batches (`None`
/// when the clean-shutdown shortcut was taken).
async fn load_last(
    dir: &Path,
    base: i64,
    clean: bool,
    config: &LogConfig,
    cache: &BatchCache,
) -> Result<(WriteCursor, Option<Vec<ScannedBatch>>), StorageError> {
    let path = segment::file_path(dir, base, segment::LOG_SUFFIX);
    let file = Rc::new(io::open_segment_rw(&path, false).await?);
    let size = io::file_size(&file, &path).await?;
    let uid = cache.next_id();
    if clean
        && let Ok(index) = load_indexes(&path, base, size).await
        && let Some(segment) = clean_tail(dir, &file, &path, base, size, index, uid, config).await?
    {
        let cursor = attach(Rc::new(segment), file, size, cache).await?;
        return Ok((cursor, None));
    }
    let scan = scan_last(&file, &path, base, size, config).await?;
    if scan.valid_end < size {
        if scan.stop == Some(Stop::Zeros) {
            tracing::info!(
                path = %path.display(), valid_bytes = scan.valid_end, file_bytes = size,
                "zero-filled tail (block padding) trimmed from the last segment"
            );
        } else {
            tracing::warn!(
                path = %path.display(), valid_bytes = scan.valid_end, file_bytes = size,
                reason = %scan.reason(), "truncating torn tail of the last segment"
            );
        }
        io::truncate(&file, &path, scan.valid_end).await?;
        io::fdatasync(&file, &path).await?;
    }
    let segment = Segment::recovered(dir, base, uid, scan.valid_end, scan.next_offset, scan.index);
    if let Some(first) = scan.first_max_timestamp {
        segment.set_roll_base_ms(first);
    }
    let cursor = attach(Rc::new(segment), file, scan.valid_end, cache).await?;
    Ok((cursor, Some(scan.batches)))
}

async fn attach(
    segment: Rc<Segment>,
    file: Rc<DmaFile>,
    size: u64,
    cache: &BatchCache,
) -> Result<WriteCursor, StorageError> {
    *segment.file.borrow_mut() = Some(file.clone());
    cache.touch_file(segment.uid, &segment.file);
    WriteCursor::reopen(segment, file, size).await
}

struct LastScan {
    index: SegmentIndex,
    batches: Vec<ScannedBatch>,
    valid_end: u64,
    next_offset: i64,
    first_max_timestamp: Option<i64>,
    stop: Option<Stop>,
    gap: Option<(i64, i64)>,
}

impl LastScan {
    fn reason(&self) -> String {
        match (&self.gap, &self.stop) {
            (Some((found, expected)), _) => {
                format!("batch base offset {found} does not continue the log at {expected}")
            }
            (None, Some(stop)) => format!("{stop:?}"),
            (None, None) => "unknown".to_string(),
        }
    }
}

async fn scan_last(
    file: &DmaFile,
    path: &Path,
    base: i64,
    size: u64,
    config: &LogConfig,
) -> Result<LastScan, StorageError> {
    let mut scan = LastScan {
        index: SegmentIndex::default(),
        batches: Vec::new(),
        valid_end: 0,
        next_offset: base,
        first_max_timestamp: None,
        stop: None,
        gap: None,
    };
    let options = ScanOptions {
        chunk_bytes: config.read_chunk_bytes as usize,
        skip_corrupt: false,
    };
    let end = scan::scan_segment(file, path, 0, size, &options, |item| {
        let ScanItem::Batch { position, bytes } = item else {
            return false;
        };
        let Ok(header) = RecordBatchHeader::view(bytes) else {
            return false;
        };
        if header.base_offset() != scan.next_offset {
            scan.gap = Some((header.base_offset(), scan.next_offset));
            return false;
        }
        scan.index.on_batch(
            base,
            &summary(position, bytes.len(), header),
            interval(config),
        );
        scan.batches.push(ScannedBatch::of(header, bytes));
        scan.first_max_timestamp
            .get_or_insert(header.max_timestamp.get());
        scan.valid_end = position + bytes.len() as u64;
        scan.next_offset = header.next_offset();
        true
    })
    .await?;
    scan.stop = end.stop;
    Ok(scan)
}

/// Clean-shutdown shortcut: trust the index, validate only the batches after its last
/// entry. `None` if anything is off (the caller then scans everything).
#[allow(clippy::too_many_arguments)]
async fn clean_tail(
    dir: &Path,
    file: &DmaFile,
    path: &Path,
    base: i64,
    size: u64,
    index: SegmentIndex,
    uid: u64,
    config: &LogConfig,
) -> Result<Option<Segment>, StorageError> {
    let (start, mut next) = index.offsets.last().map_or((0, base), |e| {
        (u64::from(e.position), base + i64::from(e.relative_offset))
    });
    let mut valid_end = start;
    let mut continuous = true;
    let options = ScanOptions {
        chunk_bytes: config.read_chunk_bytes as usize,
        skip_corrupt: false,
    };
    let end = scan::scan_segment(file, path, start, size, &options, |item| {
        let ScanItem::Batch { position, bytes } = item else {
            return false;
        };
        match RecordBatchHeader::view(bytes) {
            Ok(header) if header.base_offset() == next => {
                next = header.next_offset();
                valid_end = position + bytes.len() as u64;
                true
            }
            _ => {
                continuous = false;
                false
            }
        }
    })
    .await?;
    if end.stop.is_some() || !continuous || valid_end != size {
        tracing::warn!(path = %path.display(), "clean-shutdown index check failed; full scan");
        return Ok(None);
    }
    let first = io::read_at(file, path, 0, crate::model::batch::BATCH_HEADER_BYTES).await?;
    let segment = Segment::recovered(dir, base, uid, size, next, index);
    if let Ok(header) = RecordBatchHeader::view(&first) {
        segment.set_roll_base_ms(header.max_timestamp.get());
    }
    Ok(Some(segment))
}

async fn recover_leader_epochs(
    dir: &Path,
    scanned: Option<&[ScannedBatch]>,
    log_end: i64,
) -> Result<LeaderEpochCache, StorageError> {
    let stored = checkpoint::read_leader_epochs(dir).await?;
    let mut epochs = stored.clone();
    epochs.truncate_from(log_end);
    for batch in scanned.unwrap_or_default() {
        epochs.assign(batch.leader_epoch, batch.base_offset);
    }
    if epochs != stored {
        checkpoint::write_leader_epochs(dir, &epochs).await?;
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
    scanned: Option<&[ScannedBatch]>,
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
        let is_last = segment.base_offset == last_base;
        match scanned {
            Some(batches) if is_last => replay(&mut map, &mut txns, batches, from),
            _ => replay_segment(&mut map, &mut txns, segment, from, config).await?,
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
    if state.closed.get() {
        return Ok(());
    }
    state.closing.set(true);
    state.work.notify();
    state.appended.notify();
    state
        .progress
        .wait_until(|| !state.flusher_running.get())
        .await;
    let result = finalize(state).await;
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
    result
}

async fn finalize(state: &LogState) -> Result<(), StorageError> {
    state.check_failure()?;
    let Ok(_permit) = state.disk_lock.acquire_permit(1).await else {
        return Err(StorageError::Closed);
    };
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
    let marker = checkpoint::path(&state.dir, CLEAN_SHUTDOWN_FILE);
    io::write_file_atomically(&marker, format!("0\n{log_end}\n").into_bytes()).await
}
