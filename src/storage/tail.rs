//! Opening the last (active) segment of a partition: a full validating scan at every open,
//! clean shutdown or not (length, magic, codec, CRC-32C, offset continuity), then the
//! decision between a torn tail (never synced: cut off) and damage (synced data unreadable:
//! refused).
//!
//! The line between the two is the *floor*: the higher of the recovery point checkpoint
//! (every offset below it was synced) and the log start checkpoint. Past the floor, the
//! first bad byte ends the log and the file is truncated there (zero padding and torn
//! writes of a crash). Below it, a batch whose CRC fails but whose length is intact is
//! skipped and reported: it is never served, and the batches after it stay. Anything else
//! that ends the log below the floor (a zero-length or truncated file, a damaged length
//! field, a gap) fails the open with `StorageError::Damaged` and leaves the file untouched,
//! so no offset is handed out twice and nothing is thrown away.
//!
//! Owns: `load_last`, `ScannedBatch`. May import: storage modules. Runs on: the shard
//! owning the partition, before the log is shared.
//! Invariants: nothing below the floor is ever truncated; a returned segment's next offset
//! is at least the floor.

use super::StorageError;
use super::cache::BatchCache;
use super::flusher::WriteCursor;
use super::index::{BatchSummary, SegmentIndex};
use super::io;
use super::log::LogConfig;
use super::producer::ProducerBatch;
use super::scan::{self, ScanItem, ScanOptions, Stop};
use super::segment::{self, Segment};
use super::txn_state::TxnBatch;
use crate::model::RecordBatchHeader;
use crate::model::batch::BatchError;
use glommio::io::DmaFile;
use std::path::Path;
use std::rc::Rc;

/// What recovery keeps of each scanned batch of the last segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScannedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub leader_epoch: i32,
    pub producer: Option<ProducerBatch>,
    pub txn: Option<TxnBatch>,
}

impl ScannedBatch {
    pub(crate) fn of(header: &RecordBatchHeader, bytes: &[u8]) -> ScannedBatch {
        ScannedBatch {
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            leader_epoch: header.partition_leader_epoch.get(),
            producer: ProducerBatch::from_header(header),
            txn: TxnBatch::of(bytes),
        }
    }
}

/// The offset below which the log is known to have been synced, and which file said so.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Floor {
    pub offset: i64,
    pub source: &'static str,
}

/// The recovered last segment.
pub(crate) struct LastSegment {
    pub cursor: WriteCursor,
    pub scanned: Vec<ScannedBatch>,
    /// Positions of CRC-corrupt batches skipped below the floor.
    pub corrupt: Vec<u64>,
}

pub(crate) async fn load_last(
    dir: &Path,
    base: i64,
    floor: Floor,
    config: &LogConfig,
    cache: &BatchCache,
) -> Result<LastSegment, StorageError> {
    let path = segment::file_path(dir, base, segment::LOG_SUFFIX);
    let file = Rc::new(io::open_segment_rw(&path, false).await?);
    let size = io::file_size(&file, &path).await?;
    let scan = scan_last(&file, &path, base, size, floor.offset, config).await?;
    if scan.next_offset < floor.offset {
        return Err(StorageError::Damaged {
            dir: dir.to_path_buf(),
            log_end: scan.next_offset,
            expected: floor.offset,
            detail: scan.damage(&path, size),
            checkpoint: floor.source,
            segment: Some(path),
            valid_bytes: scan.valid_end,
        });
    }
    for position in &scan.corrupt {
        tracing::error!(
            path = %path.display(), position,
            "corrupt batch (CRC mismatch) in synced data of the last segment; it will not be served"
        );
    }
    if scan.valid_end < size {
        cut_tail(&file, &path, &scan, size).await?;
    }
    let segment = Segment::recovered(
        dir,
        base,
        cache.next_id(),
        scan.valid_end,
        scan.next_offset,
        scan.index,
    );
    if let Some(first) = scan.first_max_timestamp {
        segment.set_roll_base_ms(first);
    }
    let segment = Rc::new(segment);
    *segment.file.borrow_mut() = Some(file.clone());
    cache.touch_file(segment.uid, &segment.file);
    let cursor = WriteCursor::reopen(segment, file, scan.valid_end).await?;
    Ok(LastSegment {
        cursor,
        scanned: scan.batches,
        corrupt: scan.corrupt,
    })
}

/// Cuts what follows the valid prefix (past the floor: padding or a torn write) and syncs,
/// so a later crash cannot resurrect the old tail.
async fn cut_tail(
    file: &DmaFile,
    path: &Path,
    scan: &LastScan,
    size: u64,
) -> Result<(), StorageError> {
    if scan.stop == Some(Stop::Zeros) && scan.cut.is_none() {
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
    io::truncate(file, path, scan.valid_end).await?;
    io::fdatasync(file, path).await
}

struct LastScan {
    index: SegmentIndex,
    batches: Vec<ScannedBatch>,
    valid_end: u64,
    next_offset: i64,
    first_max_timestamp: Option<i64>,
    /// Where the scan stopped (`None`: end of file, or `gap`/`cut` below).
    stop: Option<Stop>,
    stop_position: u64,
    /// A batch whose base offset does not continue the log: (found, expected).
    gap: Option<(i64, i64)>,
    /// A CRC-corrupt batch past the floor, which ends the log like a torn write.
    cut: Option<BatchError>,
    corrupt: Vec<u64>,
    /// The previous item was a skipped corrupt batch.
    after_corrupt: bool,
}

impl LastScan {
    fn reason(&self) -> String {
        match (&self.gap, &self.cut, &self.stop) {
            (Some((found, expected)), _, _) => {
                format!("batch base offset {found} does not continue the log at {expected}")
            }
            (None, Some(error), _) => error.to_string(),
            (None, None, Some(stop)) => format!("{stop:?}"),
            (None, None, None) => "unknown".to_string(),
        }
    }

    /// What ended the log below the floor, for the `Damaged` error.
    fn damage(&self, path: &Path, size: u64) -> String {
        let path = path.display();
        if self.valid_end >= size {
            return format!("{path} ends at byte {size}");
        }
        format!(
            "{path} cannot be read past byte {} of {size}: {}",
            self.stop_position.max(self.valid_end),
            self.reason()
        )
    }
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

/// Per-scan settings of `LastScan::on_item`.
struct ScanRules {
    base: i64,
    floor: i64,
    interval: u64,
}

impl LastScan {
    fn on_item(&mut self, item: ScanItem<'_>, rules: &ScanRules) -> bool {
        match item {
            ScanItem::Batch { position, bytes } => self.on_batch(position, bytes, rules),
            ScanItem::Corrupt {
                position,
                len,
                error,
                bytes,
            } => self.on_corrupt(position, len, error, bytes, rules.floor),
        }
    }

    fn on_batch(&mut self, position: u64, bytes: &[u8], rules: &ScanRules) -> bool {
        let Ok(header) = RecordBatchHeader::view(bytes) else {
            return false;
        };
        let found = header.base_offset();
        // After a skipped corrupt batch its offsets are unknown; the next batch says.
        let continues = found == self.next_offset
            || (self.after_corrupt && found > self.next_offset && found <= rules.floor);
        if !continues {
            self.gap = Some((found, self.next_offset));
            self.stop_position = position;
            return false;
        }
        self.after_corrupt = false;
        let summary = summary(position, bytes.len(), header);
        self.index.on_batch(rules.base, &summary, rules.interval);
        self.batches.push(ScannedBatch::of(header, bytes));
        self.first_max_timestamp
            .get_or_insert(header.max_timestamp.get());
        self.valid_end = position + bytes.len() as u64;
        self.next_offset = header.next_offset();
        true
    }

    /// Past the floor a CRC-corrupt batch ends the log (a torn write); below it, it is
    /// skipped and reported, and what follows stays.
    fn on_corrupt(
        &mut self,
        position: u64,
        len: usize,
        error: BatchError,
        bytes: &[u8],
        floor: i64,
    ) -> bool {
        if self.next_offset >= floor {
            self.cut = Some(error);
            self.stop_position = position;
            return false;
        }
        self.corrupt.push(position);
        // Its header may still be right about where it ends (the CRC covers it, but a
        // flip elsewhere is likelier); only believe it within the synced range.
        if let Ok(header) = RecordBatchHeader::view(bytes)
            && header.next_offset() > self.next_offset
            && header.next_offset() <= floor
        {
            self.next_offset = header.next_offset();
        }
        self.valid_end = position + len as u64;
        self.after_corrupt = true;
        true
    }
}

async fn scan_last(
    file: &DmaFile,
    path: &Path,
    base: i64,
    size: u64,
    floor: i64,
    config: &LogConfig,
) -> Result<LastScan, StorageError> {
    let mut scan = LastScan {
        index: SegmentIndex::default(),
        batches: Vec::new(),
        valid_end: 0,
        next_offset: base,
        first_max_timestamp: None,
        stop: None,
        stop_position: 0,
        gap: None,
        cut: None,
        corrupt: Vec::new(),
        after_corrupt: false,
    };
    let options = ScanOptions {
        chunk_bytes: config.read_chunk_bytes as usize,
        skip_corrupt: true,
    };
    let rules = ScanRules {
        base,
        floor,
        interval: config.index_interval_bytes,
    };
    let end = scan::scan_segment(file, path, 0, size, &options, |item| {
        scan.on_item(item, &rules)
    })
    .await?;
    if end.stop.is_some() {
        scan.stop_position = end.position;
    }
    scan.stop = end.stop;
    Ok(scan)
}
