//! File I/O helpers over glommio: DMA (O_DIRECT) segment files, small metadata files written
//! atomically (temp file, fdatasync, rename, directory sync), and error mapping.
//!
//! Owns: every glommio file call of the storage module except the flusher's write loop.
//! May import: glommio, `super::StorageError`. Runs on: the shard owning the partition.
//! Invariants: DMA positions and lengths handed to glommio are multiples of `BLOCK_BYTES`
//! where O_DIRECT requires it; a metadata file is either the old or the new version after a
//! crash, never a mix.

use super::StorageError;
use glommio::io::{BufferedFile, Directory, DmaFile, OpenOptions};
use std::path::Path;

/// Alignment of every O_DIRECT write: the largest logical block size we support.
pub(crate) const BLOCK_BYTES: u64 = 4096;

pub(crate) fn align_down(value: u64) -> u64 {
    value & !(BLOCK_BYTES - 1)
}

pub(crate) fn align_up(value: u64) -> u64 {
    value.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

pub(crate) fn glommio_err(
    op: &'static str,
    path: &Path,
    error: glommio::GlommioError<()>,
) -> StorageError {
    StorageError::io(op, path, std::io::Error::from(error))
}

/// Name prefix of the files `prime_iopoll_probe` creates; recovery and start-up remove
/// leftovers (a crash between create and remove).
pub const PROBE_FILE_PREFIX: &str = ".iopoll-probe";

/// Makes glommio's per-device io_uring polling (IOPOLL) probe run on a non-empty file.
///
/// glommio 0.9 probes IOPOLL support with a read on the first DMA file it opens on a device
/// and caches the answer per device and thread. On an empty file that read succeeds without touching
/// the device, so IOPOLL is wrongly enabled and every later DMA read fails with EOPNOTSUPP
/// on devices without polling (this VM's virtio disk). Opening a file with data first makes
/// the probe read the device and get the right answer. Done once per device per executor
/// thread, with a non-empty regular file already in `dir` when there is one (so nothing is
/// written: this works on a full disk), else with a 4 KiB probe file that is removed again
/// whatever happens.
pub async fn prime_iopoll_probe(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::MetadataExt;
    thread_local! {
        // glommio keeps its probe results per thread (one executor per thread), so do we.
        static PROBED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let device = std::fs::metadata(dir)
        .map_err(|e| StorageError::io("stat", dir, e))?
        .dev();
    let known = PROBED.with(|p| p.borrow().contains(&device));
    if known {
        return Ok(());
    }
    match existing_nonempty_file(dir) {
        Some(path) => probe_with(&path).await?,
        None => probe_with_new_file(dir).await?,
    }
    PROBED.with(|p| p.borrow_mut().push(device));
    Ok(())
}

/// How many directory entries `existing_nonempty_file` looks at.
const PROBE_CANDIDATES_MAX: usize = 64;

/// A non-empty regular file directly in `dir` that is not being replaced (no temp files).
fn existing_nonempty_file(dir: &Path) -> Option<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .take(PROBE_CANDIDATES_MAX)
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            !name.ends_with(".tmp") && !name.starts_with(PROBE_FILE_PREFIX)
        })
        .find(|entry| entry.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
        .map(|entry| entry.path())
}

async fn probe_with(path: &Path) -> Result<(), StorageError> {
    let file = DmaFile::open(path)
        .await
        .map_err(|e| glommio_err("open", path, e))?;
    let _ = file.close().await;
    Ok(())
}

async fn probe_with_new_file(dir: &Path) -> Result<(), StorageError> {
    // One file per call: shards probe concurrently, and glommio's open panics (statfs
    // unwrap) if the file vanishes under it.
    static PROBE_NUMBER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = PROBE_NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(
        "{PROBE_FILE_PREFIX}-{}-{number}",
        std::process::id()
    ));
    let probed = match std::fs::write(&path, [1u8; BLOCK_BYTES as usize]) {
        Ok(()) => probe_with(&path).await,
        Err(e) => Err(StorageError::io("write", &path, e)),
    };
    // Removed on every path: a failed write (ENOSPC) leaves a partial file otherwise.
    let removed = remove_file(&path);
    probed.and(removed)
}

/// Opens a segment file for DMA reads and writes (creating it empty if `create`).
pub(crate) async fn open_segment_rw(path: &Path, create: bool) -> Result<DmaFile, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .dma_open(path)
        .await
        .map_err(|e| glommio_err("open", path, e))?;
    check_alignment(&file, path)?;
    Ok(file)
}

pub(crate) async fn open_segment_read(path: &Path) -> Result<DmaFile, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .dma_open(path)
        .await
        .map_err(|e| glommio_err("open", path, e))?;
    check_alignment(&file, path)?;
    Ok(file)
}

fn check_alignment(file: &DmaFile, path: &Path) -> Result<(), StorageError> {
    if !BLOCK_BYTES.is_multiple_of(file.alignment()) {
        return Err(StorageError::io(
            "open",
            path,
            std::io::Error::other(format!(
                "device block size {} does not divide {BLOCK_BYTES}",
                file.alignment()
            )),
        ));
    }
    Ok(())
}

/// Reads `[position, position + len)` (fewer bytes at end of file) into a fresh `Vec`.
/// DMA buffers are `!Send`, so cold-read bytes are copied once here.
pub(crate) async fn read_at(
    file: &DmaFile,
    path: &Path,
    position: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let result = file
        .read_at(position, len)
        .await
        .map_err(|e| glommio_err("read", path, e))?;
    Ok(result.to_vec())
}

/// Reads `[position, position + len)` (fewer bytes at end of file) and appends them to
/// `out`, copying once from the DMA buffer. Returns how many bytes were appended.
pub(crate) async fn read_append(
    file: &DmaFile,
    path: &Path,
    position: u64,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<usize, StorageError> {
    if len == 0 {
        return Ok(0);
    }
    let result = file
        .read_at(position, len)
        .await
        .map_err(|e| glommio_err("read", path, e))?;
    out.extend_from_slice(&result);
    Ok(result.len())
}

pub(crate) async fn file_size(file: &DmaFile, path: &Path) -> Result<u64, StorageError> {
    file.file_size()
        .await
        .map_err(|e| glommio_err("stat", path, e))
}

pub(crate) async fn truncate(file: &DmaFile, path: &Path, size: u64) -> Result<(), StorageError> {
    file.truncate(size)
        .await
        .map_err(|e| glommio_err("truncate", path, e))
}

pub(crate) async fn fdatasync(file: &DmaFile, path: &Path) -> Result<(), StorageError> {
    file.fdatasync()
        .await
        .map_err(|e| glommio_err("fdatasync", path, e))
}

pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let directory = Directory::open(dir)
        .await
        .map_err(|e| glommio_err("open_dir", dir, e))?;
    directory
        .sync()
        .await
        .map_err(|e| glommio_err("sync_dir", dir, e))?;
    directory
        .close()
        .await
        .map_err(|e| glommio_err("close_dir", dir, e))
}

/// Reads a whole small file; `Ok(None)` if it does not exist.
pub(crate) async fn read_small_file(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match BufferedFile::open(path).await {
        Ok(file) => file,
        Err(error) => {
            let error = std::io::Error::from(error);
            if error.kind() == std::io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(StorageError::io("open", path, error));
        }
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| glommio_err("stat", path, e))?;
    let bytes = if size == 0 {
        Vec::new()
    } else {
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        file.read_at(0, len)
            .await
            .map_err(|e| glommio_err("read", path, e))?
            .to_vec()
    };
    file.close()
        .await
        .map_err(|e| glommio_err("close", path, e))?;
    Ok(Some(bytes))
}

/// Replaces `path` with `bytes` atomically and durably (the directory is synced too).
pub(crate) async fn write_file_atomically(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    let mut file = BufferedFile::create(&temp)
        .await
        .map_err(|e| glommio_err("create", &temp, e))?;
    let len = bytes.len();
    if len > 0 {
        let written = file
            .write_at(bytes, 0)
            .await
            .map_err(|e| glommio_err("write", &temp, e))?;
        if written != len {
            return Err(StorageError::io(
                "write",
                &temp,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "short write"),
            ));
        }
    }
    file.fdatasync()
        .await
        .map_err(|e| glommio_err("fdatasync", &temp, e))?;
    file.rename(path)
        .await
        .map_err(|e| glommio_err("rename", path, e))?;
    file.close()
        .await
        .map_err(|e| glommio_err("close", path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir).await
}

/// Removes a file; a missing file is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::io("remove", path, error)),
    }
}

/// Preemption interval of one-off executors (`one_off_executor`): long enough never to fire.
const ONE_OFF_PREEMPT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The builder for a one-off executor (offline data-dir tools, tests): one task queue, so
/// preemption buys nothing, and a preemption timer that never fires. glommio 0.9 can strand
/// an executor asleep in `io_uring_enter` with runnable tasks when its preemption timer
/// fires between being armed and being checked (docs/operations.md "Start-up",
/// `shard::executor_nudge`); the broker's shards are nudged out of that, one-off executors
/// are kept out of it: a unit test once hung in `make test` that way.
pub fn one_off_executor() -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::default().preempt_timer(ONE_OFF_PREEMPT_INTERVAL)
}
