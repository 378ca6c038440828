//! Partition-directory operations outside an open log, with plain (blocking) file calls:
//! deletion through a tombstone, the repair that accepts the loss a `Damaged` log reports,
//! and the survey of producer ids stamped in the segments (used to rebuild `meta.json`).
//!
//! Owns: the tombstone naming (`<name>.<tag>.deleted`), `remove_partition_dir`,
//! `repair_damaged`, `max_producer_id`. May import: storage modules, `crate::model`.
//! Runs on: the main thread before the shards start, the `shardlog data-dir` tools, and
//! (deletion) the blocking pool of the shard that owned the partition (`blocking_fs`), never
//! that shard's thread.
//! Invariants: a partition directory is never half-deleted under its own name (it is
//! renamed first, and the rename is synced); the repair never deletes log bytes (the
//! damaged file is kept as `<base>.log.damaged`).

use super::StorageError;
use super::checkpoint;
use super::segment;
use crate::model::batch::{BATCH_HEADER_BYTES, MAGIC_V2};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Suffix of a partition directory renamed for deletion; start-up removes such dirs.
pub const TOMBSTONE_SUFFIX: &str = ".deleted";
/// Suffix of a segment file the repair replaced (kept for inspection, never read).
pub const DAMAGED_SUFFIX: &str = "damaged";
/// Longest file name on Linux filesystems.
const FILE_NAME_BYTES_MAX: usize = 255;

/// `<dir name>.<tag>.deleted`, the dir name shortened so the whole fits in a file name.
pub fn tombstone_name(dir_name: &str, tag: &str) -> String {
    let suffix = format!(".{tag}{TOMBSTONE_SUFFIX}");
    let mut keep = FILE_NAME_BYTES_MAX
        .saturating_sub(suffix.len())
        .min(dir_name.len());
    while !dir_name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &dir_name[..keep])
}

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::io(op, path, source)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync_dir", dir))
}

/// Deletes a partition directory: renames it to its tombstone (synced), then removes the
/// tombstone. A crash leaves either the intact directory or a tombstone, which start-up
/// removes. A missing directory is not an error.
pub fn remove_partition_dir(dir: &Path, tag: &str) -> Result<(), StorageError> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(StorageError::io(
            "remove_dir",
            dir,
            std::io::Error::other("not a partition directory"),
        ));
    };
    let tombstone = parent.join(tombstone_name(&name.to_string_lossy(), tag));
    if tombstone.exists() {
        std::fs::remove_dir_all(&tombstone).map_err(io_error("remove_dir", &tombstone))?;
    }
    match std::fs::rename(dir, &tombstone) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io("rename", dir, e)),
    }
    sync_dir(parent)?;
    std::fs::remove_dir_all(&tombstone).map_err(io_error("remove_dir", &tombstone))
}

/// What `repair_damaged` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The damaged segment, now `<base>.log.damaged` (None: there was no segment file).
    pub kept_as: Option<PathBuf>,
    /// Bytes of it that were readable and stay in the log.
    pub valid_bytes: u64,
    /// The new (empty) active segment: the log continues at `continues_at`.
    pub new_segment: PathBuf,
    pub continues_at: i64,
}

/// Accepts the loss a `StorageError::Damaged` reported for `dir`: the damaged segment is
/// kept aside as `<base>.log.damaged`, its readable first `valid_bytes` become the segment
/// again (a closed one now), and an empty segment starts at `expected`, the offset the log
/// had reached, so no offset is handed out twice. The offsets in between are a gap that
/// reads skip. Run only while no broker uses the data dir.
pub fn repair_damaged(
    dir: &Path,
    segment_path: Option<&Path>,
    valid_bytes: u64,
    expected: i64,
) -> Result<RepairReport, StorageError> {
    let kept_as = match segment_path {
        Some(path) => Some(keep_readable_prefix(path, valid_bytes)?),
        None => None,
    };
    let new_segment = segment::file_path(dir, expected, segment::LOG_SUFFIX);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&new_segment)
        .and_then(|f| f.sync_all())
        .map_err(io_error("create", &new_segment))?;
    let marker = checkpoint::path(dir, checkpoint::CLEAN_SHUTDOWN_FILE);
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StorageError::io("remove", &marker, e));
        }
        _ => {}
    }
    sync_dir(dir)?;
    Ok(RepairReport {
        kept_as,
        valid_bytes,
        new_segment,
        continues_at: expected,
    })
}

/// Kafka's `truncateFullyAndStartAt` for a follower whose whole log lies below its leader's
/// log start offset (the leader deleted those records): `dir`, which holds no segment (the
/// caller removed the old log), gets one empty segment at `offset`, so the log opens empty
/// there, with its log start offset at `offset`. Refuses a directory that still holds a
/// segment. Run only on a directory no open log uses.
pub fn start_empty_log_at(dir: &Path, offset: i64) -> Result<PathBuf, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(io_error("read_dir", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error("read_dir", dir))?;
        let name = entry.file_name();
        if segment::parse_file_name(&name.to_string_lossy(), segment::LOG_SUFFIX).is_some() {
            return Err(StorageError::io(
                "start_empty_log_at",
                entry.path(),
                std::io::Error::other("the directory still holds a segment"),
            ));
        }
    }
    let path = segment::file_path(dir, offset, segment::LOG_SUFFIX);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|f| f.sync_all())
        .map_err(io_error("create", &path))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Renames `path` to `<path>.damaged` and writes its first `valid_bytes` back to `path`;
/// the segment's index files (derived, now stale) are removed. Returns the kept file.
fn keep_readable_prefix(path: &Path, valid_bytes: u64) -> Result<PathBuf, StorageError> {
    let mut kept = path.with_extension(format!("{}.{DAMAGED_SUFFIX}", segment::LOG_SUFFIX));
    let mut attempt = 1;
    while kept.exists() {
        kept = path.with_extension(format!(
            "{}.{DAMAGED_SUFFIX}.{attempt}",
            segment::LOG_SUFFIX
        ));
        attempt += 1;
    }
    std::fs::rename(path, &kept).map_err(io_error("rename", path))?;
    let mut source = std::fs::File::open(&kept).map_err(io_error("open", &kept))?;
    let mut target = std::fs::File::create(path).map_err(io_error("create", path))?;
    let copied = std::io::copy(&mut (&mut source).take(valid_bytes), &mut target)
        .map_err(io_error("copy", path))?;
    if copied != valid_bytes {
        return Err(StorageError::io(
            "copy",
            path,
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "damaged file too short"),
        ));
    }
    target.flush().map_err(io_error("write", path))?;
    target.sync_all().map_err(io_error("fsync", path))?;
    for suffix in [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX] {
        let index = path.with_extension(suffix);
        match std::fs::remove_file(&index) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::io("remove", &index, e));
            }
            _ => {}
        }
    }
    Ok(kept)
}

/// The highest producer id stamped on a batch in any segment of `dir` (headers only; a
/// segment's walk stops at its first unreadable header). `None` if there is none.
pub fn max_producer_id(dir: &Path) -> Result<Option<i64>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(io_error("read_dir", dir))?;
    let mut max: Option<i64> = None;
    for entry in entries {
        let entry = entry.map_err(io_error("read_dir", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if segment::parse_file_name(&name, segment::LOG_SUFFIX).is_none() {
            continue;
        }
        if let Some(found) = segment_max_producer_id(&entry.path())? {
            max = Some(max.map_or(found, |m| m.max(found)));
        }
    }
    Ok(max)
}

fn segment_max_producer_id(path: &Path) -> Result<Option<i64>, StorageError> {
    let file = std::fs::File::open(path).map_err(io_error("open", path))?;
    let size = file.metadata().map_err(io_error("stat", path))?.len();
    let mut reader = std::io::BufReader::new(file);
    let mut header = [0u8; BATCH_HEADER_BYTES];
    let (mut position, mut max) = (0u64, None);
    while position + BATCH_HEADER_BYTES as u64 <= size {
        reader
            .read_exact(&mut header)
            .map_err(io_error("read", path))?;
        let length = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let total = 12 + i64::from(length);
        if header[16] as i8 != MAGIC_V2 || total < BATCH_HEADER_BYTES as i64 {
            break;
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&header[43..51]);
        let producer_id = i64::from_be_bytes(id);
        if producer_id >= 0 {
            max = Some(max.map_or(producer_id, |m: i64| m.max(producer_id)));
        }
        position += total as u64;
        reader
            .seek_relative(total - BATCH_HEADER_BYTES as i64)
            .map_err(io_error("seek", path))?;
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_names_fit_and_end_in_the_suffix() {
        let tag = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            tombstone_name("orders-3", tag),
            format!("orders-3.{tag}.deleted")
        );
        let long = format!("{}-99999", "t".repeat(249));
        let name = tombstone_name(&long, tag);
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.ends_with(".deleted"));
    }

    #[test]
    fn remove_partition_dir_leaves_nothing_under_either_name() {
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let dir = root.path().join("t-0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"x").unwrap();
        remove_partition_dir(&dir, "ab").unwrap();
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        remove_partition_dir(&dir, "ab").unwrap();
    }
}
