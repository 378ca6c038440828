//! Log compaction (`cleanup.policy=compact`): rewrites closed segments keeping, per key,
//! only the latest record, and drops tombstones older than `delete.retention.ms`.
//!
//! A pass: (1) the *cleanable* range is the prefix of closed, finished segments whose
//! successor is already on disk (so a rewritten segment never becomes the last file of the
//! log) and whose newest record is older than `min.compaction.lag.ms`; (2) the key map is
//! built from the *dirty* part of it (from the cleaner checkpoint on), within
//! `compaction_map_bytes_max`; (3) the segments up to the mapped end are rewritten in
//! groups (consecutive segments whose sizes sum to at most `segment.bytes` merge into one
//! segment named after the first; a segment holding transaction markers only starts a
//! group), each swapped in crash-safely (`files.rs`); (4) the
//! checkpoint (first dirty offset, next tombstone deadline) is saved. Reads and writes are
//! paced by an `IoBudget` (`compaction_io_bytes_per_second`).
//!
//! Kept as they are: the active segment, control batches (transaction markers),
//! transactional batches (their records neither supersede nor are superseded), records
//! without a key, batches that fail to decode. Offsets never change: a rebuilt batch keeps
//! its base offset and lastOffsetDelta, so gaps appear inside batches and where whole
//! batches went (readers skip gaps, see `reader.rs`).
//!
//! Owns: `CleanerState` (per log), the cleaner checkpoint file. May import: storage
//! modules, `crate::model`. Runs on: the shard owning the partition, from its background
//! compaction task (or a test); one pass per log at a time.
//! Invariants: never touches the active segment; the segment list changes only in the
//! synchronous section of a swap, after the group was checked to be unchanged (same
//! segments, same truncation generation, log open); retention skips while a swap runs.

mod budget;
mod files;
mod filter;

pub(crate) use files::recover_swaps;
pub use filter::CompactionStats;

use super::StorageError;
use super::index::{self, BatchSummary, SegmentIndex};
use super::io;
use super::log::LogConfig;
use super::segment::{self, Segment};
use super::state::LogState;
use crate::model::RecordBatchHeader;
use budget::IoBudget;
use files::{CleanedWriter, SegmentBatches};
use filter::{Added, Filtered, KeyMap, Rules};
use glommio::io::DmaFile;
use std::rc::Rc;
use std::time::Instant;

/// `0\n<first dirty offset>\n<next tombstone deadline ms, -1 none>\n`.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset.checkpoint";

/// Kafka `cleanup.policy`: `delete`, `compact` or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };

    /// Parses Kafka's comma-separated list; unknown words are ignored, an empty list is
    /// `delete` (the topic config layer validates values before they get here).
    pub fn parse(value: &str) -> CleanupPolicy {
        let words: Vec<&str> = value.split(',').map(str::trim).collect();
        let policy = CleanupPolicy {
            delete: words.contains(&"delete"),
            compact: words.contains(&"compact"),
        };
        if policy.delete || policy.compact {
            policy
        } else {
            CleanupPolicy::DELETE
        }
    }
}

/// Per-log compaction bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    loaded: bool,
    /// Offsets below this were mapped by an earlier pass.
    first_dirty: i64,
    /// When the earliest kept tombstone becomes removable; -1: none known.
    tombstone_deadline_ms: i64,
    /// The truncation generation `first_dirty` is valid for.
    generation: u64,
    running: bool,
    swapping: bool,
    last: CompactionStats,
}

/// Retention must not delete segments while a swap is between its marker and its end.
pub(crate) fn swap_in_progress(state: &LogState) -> bool {
    state.cleaner.borrow().swapping
}

pub(crate) fn last_stats(state: &LogState) -> CompactionStats {
    state.cleaner.borrow().last
}

/// Clears a `CleanerState` flag when dropped (on every exit path of a pass or swap).
struct Flag<'a> {
    state: &'a LogState,
    set: fn(&mut CleanerState, bool),
}

impl<'a> Flag<'a> {
    fn raise(state: &'a LogState, set: fn(&mut CleanerState, bool)) -> Flag<'a> {
        set(&mut state.cleaner.borrow_mut(), true);
        Flag { state, set }
    }
}

impl Drop for Flag<'_> {
    fn drop(&mut self) {
        (self.set)(&mut self.state.cleaner.borrow_mut(), false);
    }
}

/// The prefix of segments a pass may rewrite (see the module doc).
fn cleanable_segments(state: &LogState, now_ms: i64, config: &LogConfig) -> Vec<Rc<Segment>> {
    let segments = state.segments.borrow();
    let lag_limit = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let mut out = Vec::new();
    for (segment, next) in segments.iter().zip(segments.iter().skip(1)) {
        let successor_on_disk = next.is_finished() || next.disk_bytes() > 0;
        let too_young = config.min_compaction_lag_ms > 0
            && segment
                .max_timestamp()
                .is_some_and(|(ts, _)| ts > lag_limit);
        if !segment.is_finished() || !successor_on_disk || too_young {
            break;
        }
        out.push(segment.clone());
    }
    out
}

/// Bytes of the cleanable range already clean and still dirty.
fn clean_and_dirty_bytes(cleanable: &[Rc<Segment>], first_dirty: i64) -> (u64, u64) {
    cleanable.iter().fold((0, 0), |(clean, dirty), s| {
        if s.next_offset() <= first_dirty {
            (clean + s.size_bytes(), dirty)
        } else {
            (clean, dirty + s.size_bytes())
        }
    })
}

/// Whether the background task should run a pass now: the dirty ratio reached
/// `min.cleanable.dirty.ratio`, dirty data is older than `max.compaction.lag.ms`, a kept
/// tombstone expired, or the checkpoint was not read yet.
pub(crate) fn due(state: &LogState, now_ms: i64) -> bool {
    let config = state.config();
    if !config.cleanup_policy.compact || state.closed.get() || state.is_failed() {
        return false;
    }
    let cleaner = state.cleaner.borrow();
    if cleaner.running {
        return false;
    }
    if !cleaner.loaded || cleaner.generation != state.generation.get() {
        return true;
    }
    if cleaner.tombstone_deadline_ms >= 0 && now_ms >= cleaner.tombstone_deadline_ms {
        return true;
    }
    let cleanable = cleanable_segments(state, now_ms, &config);
    let (clean, dirty) = clean_and_dirty_bytes(&cleanable, cleaner.first_dirty);
    if dirty == 0 {
        return false;
    }
    let ratio = dirty as f64 / (clean + dirty) as f64;
    let overdue = cleanable
        .iter()
        .find(|s| s.next_offset() > cleaner.first_dirty)
        .and_then(|s| s.max_timestamp())
        .is_some_and(|(ts, _)| now_ms.saturating_sub(ts) >= config.max_compaction_lag_ms);
    ratio >= config.min_cleanable_dirty_ratio || overdue
}

/// Dirty bytes / cleanable bytes (0 when nothing is cleanable).
pub(crate) fn dirty_ratio(state: &LogState, now_ms: i64) -> f64 {
    let config = state.config();
    let cleanable = cleanable_segments(state, now_ms, &config);
    let (clean, dirty) = clean_and_dirty_bytes(&cleanable, state.cleaner.borrow().first_dirty);
    if clean + dirty == 0 {
        0.0
    } else {
        dirty as f64 / (clean + dirty) as f64
    }
}

async fn load_checkpoint(state: &LogState) -> Result<(), StorageError> {
    if state.cleaner.borrow().loaded {
        return Ok(());
    }
    let path = state.dir.join(CLEANER_CHECKPOINT_FILE);
    let parsed = io::read_small_file(&path).await?.and_then(|bytes| {
        let text = String::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        (lines.next()? == "0").then_some(())?;
        let first_dirty: i64 = lines.next()?.trim().parse().ok()?;
        let deadline: i64 = lines.next()?.trim().parse().ok()?;
        Some((first_dirty, deadline))
    });
    let (first_dirty, deadline) = parsed.unwrap_or((0, -1));
    let mut cleaner = state.cleaner.borrow_mut();
    cleaner.loaded = true;
    cleaner.first_dirty = first_dirty;
    cleaner.tombstone_deadline_ms = deadline;
    cleaner.generation = state.generation.get();
    Ok(())
}

async fn save_checkpoint(
    state: &LogState,
    first_dirty: i64,
    deadline: i64,
) -> Result<(), StorageError> {
    {
        let mut cleaner = state.cleaner.borrow_mut();
        cleaner.first_dirty = first_dirty;
        cleaner.tombstone_deadline_ms = deadline;
    }
    let text = format!("0\n{first_dirty}\n{deadline}\n");
    io::write_file_atomically(&state.dir.join(CLEANER_CHECKPOINT_FILE), text.into_bytes()).await
}

/// One compaction pass (see the module doc). Returns its counters; a pass with nothing
/// to do returns zeros.
pub(crate) async fn compact(
    state: &LogState,
    now_ms: i64,
) -> Result<CompactionStats, StorageError> {
    let config = state.config();
    if !config.cleanup_policy.compact
        || state.closing.get()
        || state.closed.get()
        || state.is_failed()
    {
        return Ok(CompactionStats::default());
    }
    if state.cleaner.borrow().running {
        return Ok(CompactionStats::default());
    }
    let _running = Flag::raise(state, |c, on| c.running = on);
    load_checkpoint(state).await?;
    let generation = state.generation.get();
    let (first_dirty, deadline) = {
        let mut cleaner = state.cleaner.borrow_mut();
        if cleaner.generation != generation {
            // A truncation may have replaced mapped offsets with new data: remap all.
            cleaner.first_dirty = 0;
            cleaner.generation = generation;
        }
        (cleaner.first_dirty, cleaner.tombstone_deadline_ms)
    };
    let cleanable = cleanable_segments(state, now_ms, &config);
    let dirty = cleanable
        .last()
        .is_some_and(|s| s.next_offset() > first_dirty);
    let tombstones_due = deadline >= 0 && now_ms >= deadline;
    if !dirty && !tombstones_due {
        return Ok(CompactionStats::default());
    }
    let mut stats = CompactionStats {
        next_tombstone_deadline_ms: -1,
        ..CompactionStats::default()
    };
    let mut budget = IoBudget::new(config.compaction_io_bytes_per_second, Instant::now());
    let map = build_map(state, &cleanable, first_dirty, &config, &mut budget).await?;
    let groups = groups(&cleanable, map.end, &config);
    if groups.is_empty() {
        // Only a tombstone deadline, and nothing cleanable now: keep the checkpoint.
        return Ok(CompactionStats::default());
    }
    stats.keys_mapped = map.len();
    let rules = Rules {
        now_ms,
        delete_retention_ms: config.delete_retention_ms,
        decompressed_max: decompressed_max(&config),
    };
    let mut pass = Pass {
        state,
        config: &config,
        map: &map,
        rules,
        budget: &mut budget,
        stats: &mut stats,
    };
    let mut work: std::collections::VecDeque<Vec<Rc<Segment>>> = groups.into();
    while let Some(group) = work.pop_front() {
        let rewritten = pass.rewrite(&group).await;
        let cleaned = match rewritten {
            Ok(Rewrite::Cleaned(cleaned)) => cleaned,
            Ok(Rewrite::Unchanged) => continue,
            Ok(Rewrite::Split) => {
                for segment in group.into_iter().rev() {
                    work.push_front(vec![segment]);
                }
                continue;
            }
            Err(error) => {
                // Best effort: the next pass or the next open removes leftovers anyway.
                if let Some(first) = group.first() {
                    let _ = files::discard_cleaned(&state.dir, first.base_offset, false).await;
                }
                return Err(error);
            }
        };
        if !swap(state, &group, cleaned, generation).await? {
            pass.stats.aborted = true;
            break;
        }
        pass.stats.segments_rewritten += group.len();
        pass.stats.segments_written += 1;
    }
    stats.bytes_read = budget.charged_bytes() - stats.bytes_written;
    stats.throttled_ms = u64::try_from(budget.waited().as_millis()).unwrap_or(u64::MAX);
    if !stats.aborted {
        let first_dirty = map.end.max(first_dirty);
        save_checkpoint(state, first_dirty, stats.next_tombstone_deadline_ms).await?;
    }
    state.cleaner.borrow_mut().last = stats;
    if stats.segments_written > 0 {
        tracing::info!(
            dir = %state.dir.display(), rewritten = stats.segments_rewritten,
            written = stats.segments_written, records_removed = stats.records_removed,
            tombstones_removed = stats.tombstones_removed, bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written, "compacted"
        );
    }
    Ok(stats)
}

/// A pass stops as soon as its log closes (shutdown, DeleteTopics).
fn check_open(state: &LogState) -> Result<(), StorageError> {
    if state.closing.get() || state.closed.get() {
        return Err(StorageError::Closed);
    }
    Ok(())
}

fn decompressed_max(config: &LogConfig) -> usize {
    usize::try_from(config.decompressed_batch_bytes_max).unwrap_or(usize::MAX)
}

async fn pace(budget: &mut IoBudget, bytes: u64) {
    let wait = budget.charge(bytes, Instant::now());
    if !wait.is_zero() {
        glommio::timer::sleep(wait).await;
    }
}

/// Maps the keys of the dirty batches (from `first_dirty`) until the map is full.
async fn build_map(
    state: &LogState,
    cleanable: &[Rc<Segment>],
    first_dirty: i64,
    config: &LogConfig,
    budget: &mut IoBudget,
) -> Result<KeyMap, StorageError> {
    let map_bytes = usize::try_from(config.compaction_map_bytes_max).unwrap_or(usize::MAX);
    let mut map = KeyMap::new(map_bytes, first_dirty);
    for segment in cleanable.iter().filter(|s| s.next_offset() > first_dirty) {
        let relative = first_dirty.saturating_sub(segment.base_offset).max(0);
        let start = segment.index.borrow().position_for(relative);
        let mut batches =
            SegmentBatches::open(segment, start, config.read_chunk_bytes as usize).await?;
        let mut read = 0;
        let mut expected = segment.base_offset;
        while let Some((position, batch)) = batches.next().await? {
            check_open(state)?;
            pace(budget, batches.bytes_read - read).await;
            read = batches.bytes_read;
            let header = placed(segment, position, &batch, expected)?;
            expected = header.next_offset();
            if header.next_offset() <= first_dirty {
                continue;
            }
            if map.add_batch(&batch, decompressed_max(config)) == Added::Full {
                return Ok(map);
            }
            glommio::yield_if_needed().await;
        }
        // A segment may end in a gap (an earlier pass removed its last batches).
        map.end = map.end.max(segment.next_offset());
    }
    Ok(map)
}

/// The header of a batch read from `segment`, checked to lie where it belongs (the base
/// offset is not CRC-covered).
fn placed<'b>(
    segment: &Segment,
    position: u64,
    batch: &'b [u8],
    expected: i64,
) -> Result<&'b RecordBatchHeader, StorageError> {
    let header = RecordBatchHeader::view(batch)?;
    if header.base_offset() < expected || header.next_offset() > segment.next_offset() {
        return Err(StorageError::MisplacedBatch {
            path: segment.log_path.clone(),
            position,
            base_offset: header.base_offset(),
            expected,
        });
    }
    Ok(header)
}

/// Consecutive cleanable segments below `map_end`, grouped so each group's bytes fit in
/// `segment.bytes` and its offsets in an index's relative offsets.
fn groups(cleanable: &[Rc<Segment>], map_end: i64, config: &LogConfig) -> Vec<Vec<Rc<Segment>>> {
    let mut out: Vec<Vec<Rc<Segment>>> = Vec::new();
    let mut current: Vec<Rc<Segment>> = Vec::new();
    let mut bytes = 0u64;
    for segment in cleanable.iter().filter(|s| s.base_offset < map_end) {
        let fits = current.first().is_none_or(|first| {
            bytes + segment.size_bytes() <= config.segment_bytes
                && segment.next_offset() - first.base_offset <= i64::from(i32::MAX)
        });
        if !fits {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += segment.size_bytes();
        current.push(segment.clone());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What rewriting a group produced.
enum Rewrite {
    /// A single segment came out unchanged: nothing to swap.
    Unchanged,
    Cleaned(Cleaned),
    /// A segment after the group's first holds transaction markers: rewrite the group's
    /// segments one by one instead. Markers then stay in a segment with the same base
    /// offset, so per-segment transaction indexes keyed by base offset stay valid.
    Split,
}

/// A rewritten group waiting to be swapped in.
struct Cleaned {
    segment: Rc<Segment>,
    file: Rc<DmaFile>,
}

/// The state one pass threads through its group rewrites.
struct Pass<'p> {
    state: &'p LogState,
    config: &'p LogConfig,
    map: &'p KeyMap,
    rules: Rules,
    budget: &'p mut IoBudget,
    stats: &'p mut CompactionStats,
}

impl Pass<'_> {
    /// Writes the cleaned segment of `group` (see `Rewrite`).
    async fn rewrite(&mut self, group: &[Rc<Segment>]) -> Result<Rewrite, StorageError> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(Rewrite::Unchanged);
        };
        let counted = *self.stats;
        let dir = &self.state.dir;
        let base = first.base_offset;
        let path = files::cleaned_path(dir, base, segment::LOG_SUFFIX);
        let mut writer = CleanedWriter::create(path, self.config.write_chunk_bytes).await?;
        let mut index = SegmentIndex::default();
        let mut changed = group.len() > 1;
        for (i, old) in group.iter().enumerate() {
            let markers_allowed = i == 0;
            let copied = self
                .copy_segment(old, base, &mut writer, &mut index, markers_allowed)
                .await?;
            match copied {
                Some(segment_changed) => changed |= segment_changed,
                None => {
                    drop(writer);
                    files::discard_cleaned(dir, base, false).await?;
                    // The I/O happened; the record counters are redone per segment.
                    let bytes_written = self.stats.bytes_written;
                    *self.stats = counted;
                    self.stats.bytes_written = bytes_written;
                    return Ok(Rewrite::Split);
                }
            }
        }
        if !changed {
            drop(writer);
            files::discard_cleaned(dir, base, false).await?;
            return Ok(Rewrite::Unchanged);
        }
        let (file, size, tail) = writer.finish().await?;
        self.stats.bytes_written += tail;
        pace(self.budget, tail).await;
        let uid = self.state.cache.next_id();
        let segment = Segment::recovered(dir, base, uid, size, last.next_offset(), index);
        segment.seal();
        segment.set_finished();
        let (offsets, times) = {
            let index = segment.index.borrow();
            (
                index::encode_offsets(base, size, &index.offsets),
                index::encode_times(base, size, &index.times),
            )
        };
        io::write_file_atomically(
            &files::cleaned_path(dir, base, segment::INDEX_SUFFIX),
            offsets,
        )
        .await?;
        let times_path = files::cleaned_path(dir, base, segment::TIME_INDEX_SUFFIX);
        io::write_file_atomically(&times_path, times).await?;
        Ok(Rewrite::Cleaned(Cleaned {
            segment: Rc::new(segment),
            file,
        }))
    }

    /// Filters the batches of `old` into `writer`; returns whether anything changed, or
    /// `None` at a control batch (transaction marker) if `markers_allowed` is false.
    async fn copy_segment(
        &mut self,
        old: &Segment,
        base: i64,
        writer: &mut CleanedWriter,
        index: &mut SegmentIndex,
        markers_allowed: bool,
    ) -> Result<Option<bool>, StorageError> {
        let chunk = self.config.read_chunk_bytes as usize;
        let mut batches = SegmentBatches::open(old, 0, chunk).await?;
        let mut read = 0;
        let mut expected = old.base_offset;
        let mut changed = false;
        while let Some((position, batch)) = batches.next().await? {
            check_open(self.state)?;
            pace(self.budget, batches.bytes_read - read).await;
            read = batches.bytes_read;
            let header = placed(old, position, &batch, expected)?;
            if header.is_control() && !markers_allowed {
                return Ok(None);
            }
            expected = header.next_offset();
            let filtered = if batch_base(&batch) < self.map.end {
                filter::filter_batch(&batch, self.map, &self.rules, self.stats)
            } else {
                Filtered::Unchanged
            };
            let out = match &filtered {
                Filtered::Unchanged => &batch[..],
                Filtered::Rewritten(bytes) => &bytes[..],
                Filtered::Dropped => &[][..],
            };
            changed |= !matches!(filtered, Filtered::Unchanged);
            if !out.is_empty() {
                self.write_batch(out, base, writer, index).await?;
            }
            glommio::yield_if_needed().await;
        }
        Ok(Some(changed))
    }

    async fn write_batch(
        &mut self,
        batch: &[u8],
        base: i64,
        writer: &mut CleanedWriter,
        index: &mut SegmentIndex,
    ) -> Result<(), StorageError> {
        let header = RecordBatchHeader::view(batch)?;
        let summary = BatchSummary {
            position: writer.size(),
            bytes: batch.len() as u64,
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp.get(),
        };
        index.on_batch(base, &summary, self.config.index_interval_bytes);
        let written = writer.append(batch).await?;
        self.stats.bytes_written += written;
        pace(self.budget, written).await;
        Ok(())
    }
}

fn batch_base(batch: &[u8]) -> i64 {
    RecordBatchHeader::view(batch).map_or(i64::MAX, RecordBatchHeader::base_offset)
}

/// The group is still what the pass read: same segments in the same place, all finished,
/// not the last, no truncation since, the log open and healthy.
fn still_in_place(state: &LogState, group: &[Rc<Segment>], generation: u64) -> bool {
    if state.generation.get() != generation
        || state.closing.get()
        || state.closed.get()
        || state.is_failed()
    {
        return false;
    }
    group_in_list(state, group)
}

/// The group's segments are still in the segment list, in order, finished, not the last.
fn group_in_list(state: &LogState, group: &[Rc<Segment>]) -> bool {
    let segments = state.segments.borrow();
    let Some(start) = group
        .first()
        .and_then(|first| segments.iter().position(|s| s.uid == first.uid))
    else {
        return false;
    };
    start + group.len() < segments.len()
        && group.iter().enumerate().all(|(i, old)| {
            let current = &segments[start + i];
            current.uid == old.uid && current.is_finished()
        })
}

/// Swaps `cleaned` in for `group` (protocol in `files.rs`). Returns false if the group
/// changed meanwhile and the swap was abandoned.
async fn swap(
    state: &LogState,
    group: &[Rc<Segment>],
    cleaned: Cleaned,
    generation: u64,
) -> Result<bool, StorageError> {
    let dir = &state.dir;
    let base = cleaned.segment.base_offset;
    let end = cleaned.segment.next_offset();
    let _swapping = Flag::raise(state, |c, on| c.swapping = on);
    // No write burst, truncation or close until the segment list is switched, and no segment
    // file opened by path while its files move. Taken before the marker is written: a
    // committed marker must never outlive a truncation of the range it names (recovery would
    // finish the swap over the truncated log). Retention skips while `swapping` is raised.
    // (`.cleaned` files left by an early return have no marker: the next open deletes them.)
    let Some(disk) = state.quiesce_disk().await else {
        return Err(StorageError::Closed);
    };
    let Ok(paths) = state.segment_paths.write().await else {
        return Err(StorageError::Closed);
    };
    if !still_in_place(state, group, generation) {
        drop((paths, disk));
        files::discard_cleaned(dir, base, false).await?;
        return Ok(false);
    }
    if let Err(error) = files::write_marker(dir, base, end).await {
        // The marker may exist: read-only until the next open resolves it.
        state.fail(&error);
        return Err(error);
    }
    let old_bases: Vec<i64> = group.iter().map(|s| s.base_offset).collect();
    if let Err(error) = files::install_off_shard(dir, base, old_bases).await {
        // The marker makes the next open finish the swap; until then, read-only.
        state.fail(&error);
        return Err(error);
    }
    if state.generation.get() != generation || !group_in_list(state, group) {
        // Cannot happen: truncation and close wait for `disk_lock`, retention skips while
        // `swapping` is raised. Were it to, the files are already swapped: read-only until
        // the restart finishes from the marker.
        let error = StorageError::io(
            "compact",
            dir,
            std::io::Error::other("log changed during a compaction swap"),
        );
        state.fail(&error);
        return Err(error);
    }
    // From here to the end of `switch_segments`, no `.await`.
    switch_segments(state, group, cleaned);
    drop((paths, disk));
    io::sync_dir(dir).await?;
    files::remove_marker(dir, base).await?;
    io::sync_dir(dir).await?;
    Ok(true)
}

/// Replaces `group` by the cleaned segment in the segment list, sizes, memory and the
/// open-file registry. Old segments keep their read handles, so reads already holding
/// them finish on the old files.
fn switch_segments(state: &LogState, group: &[Rc<Segment>], cleaned: Cleaned) {
    let new = cleaned.segment;
    *new.file.borrow_mut() = Some(cleaned.file);
    let (low, high) = (new.base_offset, new.next_offset());
    {
        let mut segments = state.segments.borrow_mut();
        let start = segments
            .iter()
            .position(|s| s.uid == group[0].uid)
            .unwrap_or(segments.len());
        assert!(
            start + group.len() <= segments.len(),
            "swapped group vanished"
        );
        segments.drain(start..start + group.len());
        segments.insert(start, new.clone());
    }
    let old_bytes: u64 = group.iter().map(|s| s.size_bytes()).sum();
    let size = state.size_bytes.get().saturating_sub(old_bytes) + new.size_bytes();
    state.size_bytes.set(size);
    state
        .memory
        .borrow_mut()
        .retain(|&base, batch| batch.ticket == 0 || base < low || base >= high);
    for old in group {
        old.mark_replaced();
        state.cache.forget_file(old.uid);
    }
    state.cache.touch_file(new.uid, &new.file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_parses_kafka_lists() {
        assert_eq!(CleanupPolicy::parse("delete"), CleanupPolicy::DELETE);
        let both = CleanupPolicy::parse("compact, delete");
        assert!(both.compact && both.delete);
        let compact = CleanupPolicy::parse("compact");
        assert!(compact.compact && !compact.delete);
        assert_eq!(CleanupPolicy::parse(""), CleanupPolicy::DELETE);
    }
}
