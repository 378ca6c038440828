//! Compaction's files: reading the batches of a closed segment in chunks, writing a cleaned
//! segment with O_DIRECT, and the crash-safe swap of cleaned segments for old ones.
//!
//! Swap protocol (one group of old segments `[base, end)` replaced by one new segment):
//! 1. write `<base>.log.cleaned` (fdatasync) and `<base>.index.cleaned`,
//!    `<base>.timeindex.cleaned` (atomic, directory synced);
//! 2. take `disk_lock` (no write burst, truncation or close meanwhile) and the
//!    `segment_paths` write lock (no segment file is opened by path meanwhile), check the
//!    group is still in place, then write the marker `<base>.swap` (`0\n<base>\n<end>\n`,
//!    atomic): the commit point, which no truncation can now outlive;
//! 3. still holding both: on the blocking pool, delete the files of the other old segments of the group, rename the
//!    index files, then `<base>.log.cleaned` over `<base>.log`; then, without an `.await`,
//!    mark the old segments replaced and switch the in-memory segment list. Reads holding
//!    an open handle of an old segment finish on the old (unlinked) file; a read that must
//!    open one waits for the lock and then finds it replaced and looks its offset up again;
//! 4. sync the directory, delete the marker, sync again.
//!
//! Abandoning after 2 deletes `<base>.log.cleaned` first. Recovery (`recover_swaps`, run
//! before the directory is listed): a marker with `<base>.log.cleaned` present redoes step
//! 3's file part; a marker without it (swap done, or abandoned) is only removed; `.cleaned`
//! files without a marker are deleted (step 1 never committed).
//!
//! Owns: the `.cleaned` and `.swap` file names and the marker format. May import: storage
//! modules, glommio. Runs on: the shard owning the partition; unlinks and renames of a
//! serving log on its blocking pool (`blocking_fs`). Recovery (before the log serves) calls
//! the synchronous forms directly.

use crate::storage::StorageError;
use crate::storage::blocking_fs::{BlockingOp, run_off_shard};
use crate::storage::io::{self, BLOCK_BYTES};
use crate::storage::scan::{self, Stop};
use crate::storage::segment::{self, Segment};
use bytes::Bytes;
use glommio::io::DmaFile;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) const CLEANED_SUFFIX: &str = "cleaned";
pub(crate) const SWAP_SUFFIX: &str = "swap";
const SEGMENT_SUFFIXES: [&str; 5] = [
    segment::LOG_SUFFIX,
    segment::INDEX_SUFFIX,
    segment::TIME_INDEX_SUFFIX,
    segment::SNAPSHOT_SUFFIX,
    // Segments with transaction markers never merge into an earlier one, so a merged-away
    // segment has no aborted transactions; remove a stray index all the same.
    crate::storage::txn_state::TXN_INDEX_SUFFIX,
];
const INDEX_SUFFIXES: [&str; 2] = [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX];

/// `<dir>/<base>.<suffix>.cleaned`.
pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    let mut path = segment::file_path(dir, base, suffix).into_os_string();
    path.push(".");
    path.push(CLEANED_SUFFIX);
    PathBuf::from(path)
}

pub(crate) fn marker_path(dir: &Path, base: i64) -> PathBuf {
    segment::file_path(dir, base, SWAP_SUFFIX)
}

fn parse_marker(bytes: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    let base: i64 = lines.next()?.trim().parse().ok()?;
    let end: i64 = lines.next()?.trim().parse().ok()?;
    (0 <= base && base <= end).then_some((base, end))
}

pub(crate) async fn write_marker(dir: &Path, base: i64, end: i64) -> Result<(), StorageError> {
    let text = format!("0\n{base}\n{end}\n");
    io::write_file_atomically(&marker_path(dir, base), text.into_bytes()).await
}

/// Batches of one closed segment, read `chunk` bytes at a time.
pub(crate) struct SegmentBatches {
    file: Rc<DmaFile>,
    path: PathBuf,
    position: u64,
    end: u64,
    window: Bytes,
    window_start: u64,
    chunk: usize,
    /// Bytes read from disk so far.
    pub bytes_read: u64,
}

impl SegmentBatches {
    pub(crate) async fn open(
        segment: &Segment,
        start: u64,
        chunk: usize,
    ) -> Result<SegmentBatches, StorageError> {
        let file = match segment.cached_file() {
            Some(file) => file,
            None => Rc::new(io::open_segment_read(&segment.log_path).await?),
        };
        Ok(SegmentBatches {
            file,
            path: segment.log_path.clone(),
            position: start,
            end: segment.disk_bytes(),
            window: Bytes::new(),
            window_start: start,
            chunk: chunk.max(BLOCK_BYTES as usize),
            bytes_read: 0,
        })
    }

    /// The next valid batch and its position; `None` at the end. A batch that fails
    /// validation, or bytes that end inside one, make the segment unfit for compaction.
    pub(crate) async fn next(&mut self) -> Result<Option<(u64, Bytes)>, StorageError> {
        loop {
            if self.position >= self.end {
                return Ok(None);
            }
            let at = (self.position - self.window_start) as usize;
            let rest = self.window.get(at..).unwrap_or_default();
            let missing = match scan::parse_one(rest) {
                Ok(len) => {
                    let batch = self.window.slice(at..at + len);
                    let position = self.position;
                    self.position += len as u64;
                    return Ok(Some((position, batch)));
                }
                Err(Stop::Incomplete { needed }) => needed.saturating_sub(rest.len()),
                Err(stop) => return Err(self.damaged(format!("{stop:?}"))),
            };
            let window_end = self.window_start + self.window.len() as u64;
            if window_end >= self.end {
                return Err(self.damaged("segment ends inside a batch".to_string()));
            }
            let len = (rest.len() + missing.max(self.chunk)) as u64;
            let len = len.min(self.end - self.position) as usize;
            let bytes = io::read_at(&self.file, &self.path, self.position, len).await?;
            self.bytes_read += bytes.len() as u64;
            if bytes.len() <= rest.len() {
                return Err(self.damaged("short read".to_string()));
            }
            self.window = Bytes::from(bytes);
            self.window_start = self.position;
        }
    }

    fn damaged(&self, reason: String) -> StorageError {
        StorageError::io(
            "compact",
            &self.path,
            std::io::Error::other(format!(
                "closed segment damaged at position {}: {reason}; not compacted",
                self.position
            )),
        )
    }
}

/// Writes a cleaned segment with O_DIRECT: whole blocks as they fill, the padded last block
/// at the end, then trims the file to its size and syncs it.
pub(crate) struct CleanedWriter {
    pub file: Rc<DmaFile>,
    pub path: PathBuf,
    staged: Vec<u8>,
    /// Bytes of the file written so far (always a multiple of the block size).
    written: u64,
    chunk: usize,
}

impl CleanedWriter {
    pub(crate) async fn create(path: PathBuf, chunk: u64) -> Result<CleanedWriter, StorageError> {
        let file = Rc::new(io::open_segment_rw(&path, true).await?);
        let chunk = io::align_up(chunk.max(BLOCK_BYTES)) as usize;
        Ok(CleanedWriter {
            file,
            path,
            staged: Vec::with_capacity(chunk),
            written: 0,
            chunk,
        })
    }

    /// Logical size (what `append` positions are relative to).
    pub(crate) fn size(&self) -> u64 {
        self.written + self.staged.len() as u64
    }

    /// Stages `bytes`; returns the bytes written to disk by this call.
    pub(crate) async fn append(&mut self, bytes: &[u8]) -> Result<u64, StorageError> {
        self.staged.extend_from_slice(bytes);
        if self.staged.len() < self.chunk {
            return Ok(0);
        }
        let whole = io::align_down(self.staged.len() as u64) as usize;
        self.write_blocks(whole).await?;
        Ok(whole as u64)
    }

    async fn write_blocks(&mut self, len: usize) -> Result<(), StorageError> {
        let mut buffer = self.file.alloc_dma_buffer(len);
        let bytes = buffer.as_bytes_mut();
        let data = len.min(self.staged.len());
        bytes[..data].copy_from_slice(&self.staged[..data]);
        bytes[data..].fill(0);
        let written = self
            .file
            .write_at(buffer, self.written)
            .await
            .map_err(|e| io::glommio_err("write", &self.path, e))?;
        if written != len {
            return Err(StorageError::io(
                "write",
                &self.path,
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        self.staged.drain(..data);
        self.written += len as u64;
        Ok(())
    }

    /// Writes what is staged, trims and syncs. Returns (file size, bytes written now).
    pub(crate) async fn finish(mut self) -> Result<(Rc<DmaFile>, u64, u64), StorageError> {
        let size = self.size();
        let tail = io::align_up(self.staged.len() as u64) as usize;
        if tail > 0 {
            self.write_blocks(tail).await?;
        }
        io::truncate(&self.file, &self.path, size).await?;
        io::fdatasync(&self.file, &self.path).await?;
        Ok((self.file, size, tail as u64))
    }
}

/// Removes the cleaned files of `base` (log first: see the module doc), and the swap
/// marker if `with_marker`, on the blocking pool.
pub(crate) async fn discard_cleaned(
    dir: &Path,
    base: i64,
    with_marker: bool,
) -> Result<(), StorageError> {
    let dir = dir.to_path_buf();
    run_off_shard(BlockingOp::RemoveFiles, move || {
        remove_cleaned(&dir, base)?;
        if with_marker {
            io::remove_file(&marker_path(&dir, base))?;
        }
        Ok(())
    })
    .await
}

/// Removes the swap marker of `base` on the blocking pool (the swap is complete).
pub(crate) async fn remove_marker(dir: &Path, base: i64) -> Result<(), StorageError> {
    let marker = marker_path(dir, base);
    run_off_shard(BlockingOp::RemoveFiles, move || io::remove_file(&marker)).await
}

fn remove_cleaned(dir: &Path, base: i64) -> Result<(), StorageError> {
    io::remove_file(&cleaned_path(dir, base, segment::LOG_SUFFIX))?;
    for suffix in INDEX_SUFFIXES {
        io::remove_file(&cleaned_path(dir, base, suffix))?;
    }
    Ok(())
}

/// Step 3's file part on the blocking pool (see the module doc for what the caller holds).
pub(crate) async fn install_off_shard(
    dir: &Path,
    base: i64,
    old_bases: Vec<i64>,
) -> Result<(), StorageError> {
    let dir = dir.to_path_buf();
    run_off_shard(BlockingOp::CompactionSwap, move || {
        install(&dir, base, &old_bases)
    })
    .await
}

/// Step 3's file part: delete the other old segments of `[base, end)`, then move the
/// cleaned files into place.
fn install(dir: &Path, base: i64, old_bases: &[i64]) -> Result<(), StorageError> {
    for &old in old_bases.iter().filter(|&&old| old != base) {
        for suffix in SEGMENT_SUFFIXES {
            io::remove_file(&segment::file_path(dir, old, suffix))?;
        }
    }
    for suffix in INDEX_SUFFIXES.into_iter().chain([segment::LOG_SUFFIX]) {
        let from = cleaned_path(dir, base, suffix);
        if from.exists() {
            let to = segment::file_path(dir, base, suffix);
            std::fs::rename(&from, &to).map_err(|e| StorageError::io("rename", &from, e))?;
        }
    }
    Ok(())
}

/// Finishes or rolls back swaps interrupted by a crash (see the module doc). Runs before
/// recovery lists the segments, in the same blocking-pool call (plain `std::fs`).
pub(crate) fn recover_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut markers = Vec::new();
    let mut cleaned = Vec::new();
    let mut log_bases = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("read_dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("read_dir", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = segment::parse_file_name(&name, SWAP_SUFFIX) {
            markers.push(base);
        } else if name.ends_with(CLEANED_SUFFIX) {
            cleaned.push(entry.path());
        } else if let Some(base) = segment::parse_file_name(&name, segment::LOG_SUFFIX) {
            log_bases.push(base);
        }
    }
    if markers.is_empty() && cleaned.is_empty() {
        return Ok(());
    }
    for base in markers {
        let marker = marker_path(dir, base);
        let range = match std::fs::read(&marker) {
            Ok(bytes) => parse_marker(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::io("read", &marker, e)),
        };
        match range {
            Some((base, end)) if cleaned_path(dir, base, segment::LOG_SUFFIX).exists() => {
                let old: Vec<i64> = log_bases
                    .iter()
                    .copied()
                    .filter(|&b| base <= b && b < end)
                    .collect();
                tracing::warn!(dir = %dir.display(), base, end, "finishing an interrupted compaction swap");
                install(dir, base, &old)?;
            }
            Some(_) => {}
            None => {
                tracing::error!(path = %marker.display(), "malformed compaction swap marker ignored")
            }
        }
        io::remove_file(&marker)?;
    }
    for path in cleaned {
        if path.exists() {
            tracing::info!(path = %path.display(), "removing an unfinished compaction file");
            io::remove_file(&path)?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync_dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_marker_format() {
        let dir = Path::new("/d");
        assert_eq!(
            cleaned_path(dir, 5, segment::LOG_SUFFIX),
            Path::new("/d/00000000000000000005.log.cleaned")
        );
        assert_eq!(
            marker_path(dir, 5),
            Path::new("/d/00000000000000000005.swap")
        );
        assert_eq!(parse_marker(b"0\n5\n90\n"), Some((5, 90)));
        assert_eq!(parse_marker(b"0\n5\n"), None);
        assert_eq!(parse_marker(b"1\n5\n90\n"), None);
        assert_eq!(parse_marker(b"0\n9\n5\n"), None);
        // None of these is mistaken for a segment, index or snapshot.
        for suffix in SEGMENT_SUFFIXES {
            assert_eq!(
                segment::parse_file_name("00000000000000000005.log.cleaned", suffix),
                None
            );
            assert_eq!(
                segment::parse_file_name("00000000000000000005.swap", suffix),
                None
            );
        }
    }
}
