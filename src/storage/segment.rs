//! `Segment`: one `<base offset>.log` file of a partition with its in-memory indexes and
//! sizes, plus file naming.
//!
//! Owns: the per-segment bookkeeping (sizes, next offset, indexes, read handle slot).
//! May import: `super::index`, glommio's `DmaFile`. Runs on: the shard owning the partition.
//! Invariants: `disk_bytes <= size_bytes` (bytes past `disk_bytes` are still in the log's
//! memory and are served from there); once `sealed`, no batch is added; positions in the
//! index are below `size_bytes`.

use super::index::{BatchSummary, SegmentIndex};
use glommio::io::DmaFile;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";

/// `<dir>/<offset as 20 digits>.<suffix>`, Kafka's naming.
pub(crate) fn file_path(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// Parses `<20 digits>.<suffix>` back into the offset.
pub(crate) fn parse_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A handle slot shared with the per-shard open-file registry, which may empty it to keep
/// the number of open files under `open_segments_max`.
pub(crate) type FileSlot = Rc<FileSlotInner>;
pub(crate) type FileSlotInner = RefCell<Option<Rc<DmaFile>>>;

pub(crate) struct Segment {
    pub base_offset: i64,
    /// Unique per shard: the key of this segment in the open-file registry.
    pub uid: u64,
    pub log_path: PathBuf,
    /// Offset after the last batch (== base_offset when empty).
    next_offset: Cell<i64>,
    /// Logical size, including appended bytes not yet written to disk.
    size_bytes: Cell<u64>,
    /// Bytes durably handed to the kernel (flushed); readable with a DMA read.
    disk_bytes: Cell<u64>,
    sealed: Cell<bool>,
    /// Time the segment-age roll is measured from: the first batch's max timestamp, or the
    /// broker time when the segment was created if that is unknown.
    roll_base_ms: Cell<i64>,
    /// Sealed, fully written, trimmed to its size, synced, indexes on disk.
    finished: Cell<bool>,
    /// Compaction swapped a cleaned segment in for this one: its path may now hold other
    /// bytes (or nothing); only a handle opened before still reads this segment.
    replaced: Cell<bool>,
    pub index: RefCell<SegmentIndex>,
    pub file: FileSlot,
    /// Producer-state snapshot as of `base_offset`, taken at roll, written by the flusher
    /// when it creates this segment's file.
    pub roll_snapshot: RefCell<Option<Vec<u8>>>,
}

impl Segment {
    pub(crate) fn new(dir: &Path, base_offset: i64, uid: u64, created_ms: i64) -> Segment {
        Segment {
            base_offset,
            uid,
            log_path: file_path(dir, base_offset, LOG_SUFFIX),
            next_offset: Cell::new(base_offset),
            size_bytes: Cell::new(0),
            disk_bytes: Cell::new(0),
            sealed: Cell::new(false),
            roll_base_ms: Cell::new(created_ms),
            finished: Cell::new(false),
            replaced: Cell::new(false),
            index: RefCell::new(SegmentIndex::default()),
            file: Rc::new(RefCell::new(None)),
            roll_snapshot: RefCell::new(None),
        }
    }

    /// A segment recovered from disk with `bytes` valid bytes ending at `next_offset`.
    pub(crate) fn recovered(
        dir: &Path,
        base_offset: i64,
        uid: u64,
        bytes: u64,
        next_offset: i64,
        index: SegmentIndex,
    ) -> Segment {
        let segment = Segment::new(dir, base_offset, uid, -1);
        segment.size_bytes.set(bytes);
        segment.disk_bytes.set(bytes);
        segment.next_offset.set(next_offset);
        *segment.index.borrow_mut() = index;
        segment
    }

    pub(crate) fn path(&self, suffix: &str) -> PathBuf {
        self.log_path.with_extension(suffix)
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.get()
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes.get()
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes.get()
    }

    pub(crate) fn set_disk_bytes(&self, bytes: u64) {
        assert!(
            bytes <= self.size_bytes.get(),
            "disk bytes past segment size"
        );
        self.disk_bytes.set(bytes);
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.get()
    }

    pub(crate) fn seal(&self) {
        self.sealed.set(true);
        self.index.borrow_mut().push_time_entry();
    }

    pub(crate) fn unseal(&self) {
        self.sealed.set(false);
        self.finished.set(false);
    }

    pub(crate) fn is_replaced(&self) -> bool {
        self.replaced.get()
    }

    pub(crate) fn mark_replaced(&self) {
        self.replaced.set(true);
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.get()
    }

    pub(crate) fn set_finished(&self) {
        assert!(self.sealed.get(), "finishing an unsealed segment");
        assert_eq!(
            self.disk_bytes.get(),
            self.size_bytes.get(),
            "finishing unwritten data"
        );
        self.finished.set(true);
    }

    pub(crate) fn roll_base_ms(&self) -> i64 {
        self.roll_base_ms.get()
    }

    pub(crate) fn set_roll_base_ms(&self, ms: i64) {
        self.roll_base_ms.set(ms);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size_bytes.get() == 0
    }

    /// Largest batch max timestamp in the segment and the absolute last offset of its batch.
    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.index
            .borrow()
            .max_timestamp()
            .map(|(ts, relative)| (ts, self.base_offset + relative))
    }

    /// Accounts for a batch appended at the end (position `summary.position`).
    pub(crate) fn on_append(&self, summary: &BatchSummary, interval_bytes: u64) {
        assert!(!self.sealed.get(), "append to a sealed segment");
        assert_eq!(
            summary.position,
            self.size_bytes.get(),
            "append not at the end"
        );
        self.index
            .borrow_mut()
            .on_batch(self.base_offset, summary, interval_bytes);
        self.size_bytes.set(summary.position + summary.bytes);
        self.next_offset.set(summary.last_offset + 1);
    }

    /// Forgets everything at or past `position` (whose first offset is `next_offset`).
    pub(crate) fn truncate(&self, position: u64, next_offset: i64) {
        self.index
            .borrow_mut()
            .truncate(position, next_offset - self.base_offset);
        self.size_bytes.set(position);
        self.disk_bytes.set(self.disk_bytes.get().min(position));
        self.next_offset.set(next_offset);
    }

    pub(crate) fn cached_file(&self) -> Option<Rc<DmaFile>> {
        self.file.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        let path = file_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(path, Path::new("/d/00000000000000000042.log"));
        assert_eq!(
            parse_file_name("00000000000000000042.log", LOG_SUFFIX),
            Some(42)
        );
        assert_eq!(parse_file_name("0000000000000000042.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_file_name("00000000000000000042.index", LOG_SUFFIX),
            None
        );
        assert_eq!(
            parse_file_name("0000000000000000004x.log", LOG_SUFFIX),
            None
        );
    }
}
