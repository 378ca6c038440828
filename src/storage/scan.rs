//! Sequential validation of segment bytes: the pure `parse_one` over a byte slice, and
//! `scan_segment`, which walks a segment file with DMA reads batch by batch (recovery,
//! index rebuild, producer-state replay, truncation).
//!
//! Owns: the classification of what follows the last good batch (clean end, zero padding,
//! torn/incomplete batch, invalid batch). May import: `crate::model::batch`, `super::io`.
//! Invariants: a batch handed to the callback passed `validate_batch` (length, magic, codec,
//! CRC-32C); nothing past the first unparseable byte is reported unless the caller asked to
//! skip CRC-corrupt batches whose length is intact. Runs on: the shard owning the partition.

use super::StorageError;
use super::io;
use crate::model::batch::{self, BATCH_HEADER_BYTES, BatchError, RecordBatchHeader};
use glommio::io::DmaFile;
use std::path::Path;

/// Bytes of a batch header that are all zero when we reach padding: baseOffset,
/// batchLength, partitionLeaderEpoch and magic.
const ZERO_PROBE_BYTES: usize = 17;

/// No stored batch is larger: above the ceiling of `storage.batch_bytes_max` (100 MiB), so
/// a corrupt length field never turns into a huge read.
pub(crate) const STORED_BATCH_BYTES_MAX: usize = 128 << 20;

/// Why parsing stopped at a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The bytes end inside a batch that declares `needed` bytes (0: header incomplete).
    Incomplete { needed: usize },
    /// Zero bytes where a batch header should start: padding or never-written space.
    Zeros,
    /// A batch that fails validation.
    Invalid(BatchError),
}

/// Validates the batch at the start of `bytes`; returns its total size.
pub(crate) fn parse_one(bytes: &[u8]) -> Result<usize, Stop> {
    if bytes.len() < ZERO_PROBE_BYTES {
        return Err(Stop::Incomplete { needed: 0 });
    }
    if bytes[..ZERO_PROBE_BYTES].iter().all(|&b| b == 0) {
        return Err(Stop::Zeros);
    }
    if bytes.len() < BATCH_HEADER_BYTES {
        // A partial header: decide on what is there (magic) if we can.
        if bytes[16] as i8 != batch::MAGIC_V2 {
            return Err(Stop::Invalid(BatchError::UnsupportedMagic {
                magic: bytes[16] as i8,
            }));
        }
        return Err(Stop::Incomplete { needed: 0 });
    }
    let header = RecordBatchHeader::view(bytes).map_err(Stop::Invalid)?;
    if header.magic != batch::MAGIC_V2 {
        return Err(Stop::Invalid(BatchError::UnsupportedMagic {
            magic: header.magic,
        }));
    }
    let total = header.total_bytes().map_err(Stop::Invalid)?;
    if total > STORED_BATCH_BYTES_MAX {
        return Err(Stop::Invalid(BatchError::BadLength {
            batch_length: header.batch_length.get(),
        }));
    }
    if total > bytes.len() {
        return Err(Stop::Incomplete { needed: total });
    }
    batch::validate_batch(bytes).map_err(Stop::Invalid)
}

/// One item reported by `scan_segment`.
pub(crate) enum ScanItem<'a> {
    /// A valid batch at `position`.
    Batch { position: u64, bytes: &'a [u8] },
    /// A batch with an intact length whose CRC failed (only with `skip_corrupt`). `bytes`
    /// are its (untrustworthy) bytes, at most `len`.
    Corrupt {
        position: u64,
        len: usize,
        error: BatchError,
        bytes: &'a [u8],
    },
}

/// Where and why a scan ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Position after the last item reported.
    pub position: u64,
    /// `None`: clean end of file, or the callback asked to stop.
    pub stop: Option<Stop>,
}

pub(crate) struct ScanOptions {
    pub chunk_bytes: usize,
    /// Continue past CRC-corrupt batches whose length field is usable.
    pub skip_corrupt: bool,
}

/// Bytes of the file from `start`, read on demand.
struct Window<'f> {
    file: &'f DmaFile,
    path: &'f Path,
    bytes: Vec<u8>,
    start: u64,
    end: u64,
    chunk: usize,
}

impl Window<'_> {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Drops bytes before `position`, then reads at least `missing` more (a chunk at least).
    /// Returns false at end of file.
    async fn refill(&mut self, position: u64, missing: usize) -> Result<bool, StorageError> {
        let window_end = self.end();
        if window_end >= self.end {
            return Ok(false);
        }
        let len = (missing.max(self.chunk) as u64).min(self.end - window_end) as usize;
        self.bytes.drain(..(position - self.start) as usize);
        self.start = position;
        self.bytes.reserve(len);
        let read = io::read_append(self.file, self.path, window_end, len, &mut self.bytes).await?;
        Ok(read > 0)
    }
}

/// Walks the batches of `file` from `start` to `end` (the file size), calling `on_item`
/// for each until it returns false. Reads `chunk_bytes` at a time, more for a larger batch.
pub(crate) async fn scan_segment(
    file: &DmaFile,
    path: &Path,
    start: u64,
    end: u64,
    options: &ScanOptions,
    mut on_item: impl FnMut(ScanItem<'_>) -> bool,
) -> Result<ScanEnd, StorageError> {
    let chunk = options.chunk_bytes.max(io::BLOCK_BYTES as usize);
    let mut window = Window {
        file,
        path,
        bytes: Vec::new(),
        start,
        end,
        chunk,
    };
    let mut position = start;
    loop {
        let rest = &window.bytes[(position - window.start) as usize..];
        let at = position;
        let (item, len) = match parse_one(rest) {
            Ok(len) => (
                ScanItem::Batch {
                    position,
                    bytes: &rest[..len],
                },
                len,
            ),
            Err(Stop::Invalid(error @ BatchError::CrcMismatch { .. })) if options.skip_corrupt => {
                // Length and magic were fine (else parse_one fails earlier): skip it.
                let len = RecordBatchHeader::view(rest)
                    .and_then(|h| h.total_bytes())
                    .unwrap_or(rest.len());
                (
                    ScanItem::Corrupt {
                        position,
                        len,
                        error,
                        bytes: &rest[..len.min(rest.len())],
                    },
                    len,
                )
            }
            Err(Stop::Incomplete { needed }) => {
                let missing = needed.saturating_sub(rest.len());
                let all_zero = rest.iter().all(|&b| b == 0);
                if window.refill(position, missing).await? {
                    continue;
                }
                let stop = match (rest_is_empty(&window, position), all_zero) {
                    (true, _) => None,
                    (false, true) => Some(Stop::Zeros),
                    (false, false) => Some(Stop::Incomplete { needed }),
                };
                return Ok(ScanEnd { position, stop });
            }
            Err(stop) => {
                return Ok(ScanEnd {
                    position,
                    stop: Some(stop),
                });
            }
        };
        position = at + len as u64;
        if !on_item(item) {
            return Ok(ScanEnd {
                position,
                stop: None,
            });
        }
    }
}

fn rest_is_empty(window: &Window<'_>, position: u64) -> bool {
    window.end() <= position
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::test_support::build_batch;

    #[test]
    fn classifies_tails() {
        let batch = build_batch(&[b"hello", b"world"], 10);
        assert_eq!(parse_one(&batch), Ok(batch.len()));
        for cut in 1..batch.len() {
            let result = parse_one(&batch[..cut]);
            assert!(
                matches!(result, Err(Stop::Incomplete { .. })),
                "cut {cut}: {result:?}"
            );
        }
        assert_eq!(parse_one(&[0u8; 100]), Err(Stop::Zeros));
        assert_eq!(parse_one(&[0u8; 5]), Err(Stop::Incomplete { needed: 0 }));
        let mut flipped = batch.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x10;
        assert!(matches!(
            parse_one(&flipped),
            Err(Stop::Invalid(BatchError::CrcMismatch { .. }))
        ));
    }
}
