//! The scrub: a slow, paced re-read of a log's finished segments that checks every batch
//! (length, magic, CRC-32C), so bit rot in data nobody reads is found and reported before a
//! consumer (or, later, a replica) trips over it. Finished segments are trusted at open when
//! their indexes are sane, which keeps start-up fast; the scrub is what checks them.
//!
//! Owns: `scrub`. May import: storage modules. Runs on: the shard owning the partition, in a
//! low-priority task queue.
//! Invariants: reads only; a corrupt batch is recorded in `LogState::corrupt` and logged
//! once; the active segment is never read here (checked at open, and appends are checked
//! on arrival).

use super::StorageError;
use super::scan::{self, ScanItem, ScanOptions};
use super::segment::Segment;
use super::state::LogState;
use std::rc::Rc;
use std::time::Duration;

/// Bytes checked between pauses.
const SLICE_BYTES: u64 = 1 << 20;

/// What one scrub pass over a log did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubStats {
    pub segments: usize,
    pub bytes: u64,
    /// Corrupt batches found that were not known before.
    pub corrupt_found: usize,
}

pub(crate) async fn scrub(
    state: &LogState,
    bytes_per_second: u64,
) -> Result<ScrubStats, StorageError> {
    let mut stats = ScrubStats::default();
    for segment in state.segments_snapshot() {
        if state.closed.get() {
            return Err(StorageError::Closed);
        }
        if !segment.is_finished() {
            continue;
        }
        let file = match segment.cached_file() {
            Some(file) => file,
            None => match state.open_segment_path(&segment).await {
                Ok(Some(file)) => Rc::new(file),
                // Replaced by compaction meanwhile.
                Ok(None) => continue,
                // Deleted by retention meanwhile.
                Err(StorageError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Err(error) => return Err(error),
            },
        };
        scrub_segment(state, &segment, &file, bytes_per_second, &mut stats).await?;
        stats.segments += 1;
    }
    Ok(stats)
}

async fn scrub_segment(
    state: &LogState,
    segment: &Segment,
    file: &glommio::io::DmaFile,
    bytes_per_second: u64,
    stats: &mut ScrubStats,
) -> Result<(), StorageError> {
    let size = segment.disk_bytes();
    let options = ScanOptions {
        chunk_bytes: state.config().read_chunk_bytes as usize,
        skip_corrupt: true,
    };
    let (mut position, mut slice) = (0u64, SLICE_BYTES);
    while position < size {
        let end = (position + slice).min(size);
        let mut found = Vec::new();
        let path = &segment.log_path;
        let scanned = scan::scan_segment(file, path, position, end, &options, |item| {
            if let ScanItem::Corrupt { position, .. } = item {
                found.push(position);
            }
            true
        })
        .await?;
        for at in found {
            report(state, segment, at, stats);
        }
        pace(scanned.position.saturating_sub(position), bytes_per_second).await;
        stats.bytes += scanned.position.saturating_sub(position);
        match scanned.stop {
            None => position = scanned.position,
            // A batch crosses the slice end: go on from it with a slice that holds it.
            Some(_) if end < size => {
                if scanned.position > position {
                    position = scanned.position;
                    slice = SLICE_BYTES;
                } else {
                    slice = slice.saturating_mul(2);
                }
            }
            Some(_) => {
                report(state, segment, scanned.position, stats);
                break;
            }
        }
    }
    Ok(())
}

fn report(state: &LogState, segment: &Segment, position: u64, stats: &mut ScrubStats) {
    if state.note_corrupt(segment.base_offset, position) {
        stats.corrupt_found += 1;
        tracing::error!(
            path = %segment.log_path.display(), position,
            "corrupt batch found by the scrub; it will not be served"
        );
    }
}

/// Sleeps as long as `bytes` take at `bytes_per_second`.
async fn pace(bytes: u64, bytes_per_second: u64) {
    if bytes_per_second == 0 || bytes == 0 {
        return;
    }
    let micros = bytes.saturating_mul(1_000_000) / bytes_per_second;
    glommio::timer::sleep(Duration::from_micros(micros)).await;
}
