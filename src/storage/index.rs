//! Sparse per-segment indexes, in memory and on disk: the offset index (relative offset of a
//! batch's base offset → file position of that batch) and the time index (largest max
//! timestamp so far → last offset of the batch where it was first reached).
//!
//! Owns: `SegmentIndex` and the `.index`/`.timeindex` file format. May import: std, crc32c.
//! Invariants: offset entries strictly increase in both relative offset and position; time
//! entries strictly increase in timestamp and never decrease in offset; every entry points at
//! a batch boundary below the covered log size. An index file is trusted only if its header
//! names the segment's base offset, the exact log size it covers, and its CRC-32C matches.
//! Runs on: the shard owning the partition.
//!
//! File format (big endian): a 32-byte header — magic `SLIX`, version u16, kind u16
//! (1 offset, 2 time), base offset i64, covered log bytes u64, entry count u32, CRC-32C u32
//! of the header's first 28 bytes followed by the entries — then the entries: offset index
//! `relative_offset u32 | position u32`, time index `timestamp i64 | relative_offset u32`
//! (the entry layouts of Kafka's own index files).

use thiserror::Error;

/// Offset-index entries per segment before the segment rolls (bounds index memory).
pub(crate) const INDEX_ENTRIES_MAX: usize = 1 << 20;

const MAGIC: &[u8; 4] = b"SLIX";
const VERSION: u16 = 1;
const KIND_OFFSET: u16 = 1;
const KIND_TIME: u16 = 2;
const HEADER_BYTES: usize = 32;
const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum IndexError {
    #[error("index file too short or bad magic/version/kind")]
    BadHeader,
    #[error("index is for base offset {found}, expected {expected}")]
    WrongBase { found: i64, expected: i64 },
    #[error("index covers {found} log bytes, the log has {expected}")]
    Stale { found: u64, expected: u64 },
    #[error("index CRC or length mismatch")]
    BadChecksum,
    #[error("index entries out of order or out of range")]
    BadEntries,
}

/// What the index needs to know about one appended batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSummary {
    pub position: u64,
    pub bytes: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// Both sparse indexes of one segment, plus what it needs to decide on the next entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    bytes_since_entry: u64,
    /// Largest batch max timestamp in the segment and the last offset of that batch.
    max_timestamp: Option<(i64, i64)>,
}

impl SegmentIndex {
    pub(crate) fn new(offsets: Vec<OffsetEntry>, times: Vec<TimeEntry>) -> SegmentIndex {
        let max_timestamp = times
            .last()
            .map(|entry| (entry.timestamp, i64::from(entry.relative_offset)));
        SegmentIndex {
            offsets,
            times,
            bytes_since_entry: 0,
            max_timestamp,
        }
    }

    /// Records a batch appended at `summary.position` of the segment based at `base`.
    /// The first batch of a segment and then one batch every `interval_bytes` are indexed.
    pub(crate) fn on_batch(&mut self, base: i64, summary: &BatchSummary, interval_bytes: u64) {
        let relative_base = relative(base, summary.base_offset);
        let relative_last = relative(base, summary.last_offset);
        let new_max = match self.max_timestamp {
            Some((ts, _)) => summary.max_timestamp > ts,
            None => true,
        };
        if new_max {
            self.max_timestamp = Some((summary.max_timestamp, i64::from(relative_last)));
        }
        let due = self.offsets.is_empty() || self.bytes_since_entry >= interval_bytes;
        if due && self.offsets.len() < INDEX_ENTRIES_MAX {
            let position = u32::try_from(summary.position).unwrap_or(u32::MAX);
            if self.offsets.last().is_none_or(|e| e.position < position) {
                self.offsets.push(OffsetEntry {
                    relative_offset: relative_base,
                    position,
                });
            }
            self.bytes_since_entry = 0;
            self.push_time_entry();
        }
        self.bytes_since_entry += summary.bytes;
    }

    /// Adds a time entry for the segment's max timestamp if it is newer than the last one;
    /// called when an offset entry is added and when the segment is sealed.
    pub(crate) fn push_time_entry(&mut self) {
        let Some((timestamp, relative_last)) = self.max_timestamp else {
            return;
        };
        let relative_offset = u32::try_from(relative_last).unwrap_or(u32::MAX);
        if self.times.last().is_none_or(|e| timestamp > e.timestamp) {
            self.times.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    /// (max timestamp, relative last offset of the batch carrying it).
    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }

    /// File position of the last indexed batch starting at or before `relative_offset`.
    pub(crate) fn position_for(&self, relative_offset: i64) -> u64 {
        let point = self
            .offsets
            .partition_point(|e| i64::from(e.relative_offset) <= relative_offset);
        if point == 0 {
            0
        } else {
            u64::from(self.offsets[point - 1].position)
        }
    }

    /// Relative offset from which to scan for the first batch with max timestamp >=
    /// `timestamp`: the offset of the last time entry with timestamp <= `timestamp`.
    pub(crate) fn scan_start_for_timestamp(&self, timestamp: i64) -> i64 {
        let point = self.times.partition_point(|e| e.timestamp <= timestamp);
        if point == 0 {
            0
        } else {
            i64::from(self.times[point - 1].relative_offset)
        }
    }

    /// Drops entries at or past `position` / `relative_offset` (truncation).
    pub(crate) fn truncate(&mut self, position: u64, relative_offset: i64) {
        self.offsets.retain(|e| u64::from(e.position) < position);
        self.times
            .retain(|e| i64::from(e.relative_offset) < relative_offset);
        self.max_timestamp = self
            .times
            .last()
            .map(|e| (e.timestamp, i64::from(e.relative_offset)));
        self.bytes_since_entry = 0;
    }
}

fn relative(base: i64, offset: i64) -> u32 {
    u32::try_from(offset - base).unwrap_or(u32::MAX)
}

fn header(kind: u16, base: i64, log_bytes: u64, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&base.to_be_bytes());
    out.extend_from_slice(&log_bytes.to_be_bytes());
    out.extend_from_slice(&(count as u32).to_be_bytes());
    out
}

fn seal(mut out: Vec<u8>, body: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), body);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub(crate) fn encode_offsets(base: i64, log_bytes: u64, entries: &[OffsetEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * OFFSET_ENTRY_BYTES);
    for entry in entries {
        body.extend_from_slice(&entry.relative_offset.to_be_bytes());
        body.extend_from_slice(&entry.position.to_be_bytes());
    }
    seal(header(KIND_OFFSET, base, log_bytes, entries.len()), &body)
}

pub(crate) fn encode_times(base: i64, log_bytes: u64, entries: &[TimeEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * TIME_ENTRY_BYTES);
    for entry in entries {
        body.extend_from_slice(&entry.timestamp.to_be_bytes());
        body.extend_from_slice(&entry.relative_offset.to_be_bytes());
    }
    seal(header(KIND_TIME, base, log_bytes, entries.len()), &body)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(raw)
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Checks the header and CRC; returns the entry bytes.
fn open_file(
    bytes: &[u8],
    kind: u16,
    entry_bytes: usize,
    base: i64,
    log_bytes: u64,
) -> Result<&[u8], IndexError> {
    if bytes.len() < HEADER_BYTES
        || &bytes[0..4] != MAGIC
        || bytes[4..6] != VERSION.to_be_bytes()
        || bytes[6..8] != kind.to_be_bytes()
    {
        return Err(IndexError::BadHeader);
    }
    let found_base = be_i64(bytes, 8);
    if found_base != base {
        return Err(IndexError::WrongBase {
            found: found_base,
            expected: base,
        });
    }
    let count = be_u32(bytes, 24) as usize;
    let body = &bytes[HEADER_BYTES..];
    if body.len() != count.saturating_mul(entry_bytes) {
        return Err(IndexError::BadChecksum);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..28]), body);
    if crc != be_u32(bytes, 28) {
        return Err(IndexError::BadChecksum);
    }
    let found_log_bytes = be_i64(bytes, 16) as u64;
    if found_log_bytes != log_bytes {
        return Err(IndexError::Stale {
            found: found_log_bytes,
            expected: log_bytes,
        });
    }
    Ok(body)
}

pub(crate) fn decode_offsets(
    bytes: &[u8],
    base: i64,
    log_bytes: u64,
) -> Result<Vec<OffsetEntry>, IndexError> {
    let body = open_file(bytes, KIND_OFFSET, OFFSET_ENTRY_BYTES, base, log_bytes)?;
    let entries: Vec<OffsetEntry> = body
        .chunks_exact(OFFSET_ENTRY_BYTES)
        .map(|chunk| OffsetEntry {
            relative_offset: be_u32(chunk, 0),
            position: be_u32(chunk, 4),
        })
        .collect();
    let ordered = entries.windows(2).all(|pair| {
        pair[0].relative_offset < pair[1].relative_offset && pair[0].position < pair[1].position
    });
    let in_range = entries
        .iter()
        .all(|e| u64::from(e.position) < log_bytes.max(1));
    if !ordered || !in_range || entries.len() > INDEX_ENTRIES_MAX {
        return Err(IndexError::BadEntries);
    }
    Ok(entries)
}

pub(crate) fn decode_times(
    bytes: &[u8],
    base: i64,
    log_bytes: u64,
) -> Result<Vec<TimeEntry>, IndexError> {
    let body = open_file(bytes, KIND_TIME, TIME_ENTRY_BYTES, base, log_bytes)?;
    let entries: Vec<TimeEntry> = body
        .chunks_exact(TIME_ENTRY_BYTES)
        .map(|chunk| TimeEntry {
            timestamp: be_i64(chunk, 0),
            relative_offset: be_u32(chunk, 8),
        })
        .collect();
    let ordered = entries.windows(2).all(|pair| {
        pair[0].timestamp < pair[1].timestamp && pair[0].relative_offset <= pair[1].relative_offset
    });
    if !ordered || entries.len() > INDEX_ENTRIES_MAX + 1 {
        return Err(IndexError::BadEntries);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(position: u64, base_offset: i64, max_timestamp: i64) -> BatchSummary {
        BatchSummary {
            position,
            bytes: 100,
            base_offset,
            last_offset: base_offset + 1,
            max_timestamp,
        }
    }

    #[test]
    fn sparse_entries_and_lookups() {
        let mut index = SegmentIndex::default();
        for i in 0..10 {
            index.on_batch(
                1000,
                &summary(i * 100, 1000 + 2 * i as i64, 50 + i as i64),
                250,
            );
        }
        // First batch, then every third batch (300 bytes >= 250).
        let positions: Vec<u32> = index.offsets.iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![0, 300, 600, 900]);
        assert_eq!(index.position_for(0), 0);
        assert_eq!(index.position_for(7), 300);
        assert_eq!(index.position_for(100), 900);
        assert_eq!(index.max_timestamp(), Some((59, 19)));
        index.push_time_entry();
        assert_eq!(index.times.last().map(|e| e.timestamp), Some(59));
        assert_eq!(index.scan_start_for_timestamp(10), 0);
        assert_eq!(index.scan_start_for_timestamp(53), 7);
    }

    #[test]
    fn file_roundtrip_and_rejections() {
        let entries = vec![
            OffsetEntry {
                relative_offset: 0,
                position: 0,
            },
            OffsetEntry {
                relative_offset: 9,
                position: 4096,
            },
        ];
        let bytes = encode_offsets(77, 5000, &entries);
        assert_eq!(decode_offsets(&bytes, 77, 5000), Ok(entries.clone()));
        assert!(matches!(
            decode_offsets(&bytes, 77, 6000),
            Err(IndexError::Stale { .. })
        ));
        assert!(matches!(
            decode_offsets(&bytes, 78, 5000),
            Err(IndexError::WrongBase { .. })
        ));
        assert_eq!(
            decode_offsets(&bytes[..bytes.len() - 1], 77, 5000),
            Err(IndexError::BadChecksum)
        );
        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES + 3] ^= 1;
        assert_eq!(
            decode_offsets(&flipped, 77, 5000),
            Err(IndexError::BadChecksum)
        );
        let times = vec![TimeEntry {
            timestamp: 5,
            relative_offset: 3,
        }];
        let bytes = encode_times(77, 5000, &times);
        assert_eq!(decode_times(&bytes, 77, 5000), Ok(times));
        assert_eq!(
            decode_times(&bytes[..10], 77, 5000),
            Err(IndexError::BadHeader)
        );
    }
}
