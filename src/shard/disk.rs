//! The disk-space guard: each shard checks the data dir's filesystem on a timer and, while
//! free space is below `storage.disk_free_bytes_min`, refuses new writes with
//! KAFKA_STORAGE_ERROR instead of letting O_DIRECT writes hit ENOSPC. Reads are unaffected,
//! and writes resume by themselves once space is freed. Nothing already written is touched.
//!
//! A write that hits a real ENOSPC anyway (the disk filled between two checks) leaves its
//! log read-only, as does an open on a full disk; once free space is back above the
//! minimum plus one write chunk, the guard reopens such logs (recovery cuts the unwritten
//! tail, exactly as after kill -9), so writes resume without a restart.

use super::{OfflineReason, Shard};
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// After a reopen that came back read-only (the disk filled again), wait this long before
/// the next attempt: each one re-scans the log's last segment.
const REOPEN_RETRY: Duration = Duration::from_secs(5);

/// DescribeLogDirs' view of the data dir: its canonical path and the (total, usable) bytes of
/// its file system (-1 each when unknown). statvfs and realpath block: on the blocking pool.
pub async fn describe_data_dir(data_dir: &Path) -> (String, (i64, i64)) {
    let data_dir = data_dir.to_path_buf();
    crate::storage::run_off_shard(crate::storage::BlockingOp::StatDataDir, move || {
        let sizes = filesystem_bytes(&data_dir).map_or((-1, -1), |(t, a)| (t as i64, a as i64));
        let canonical = std::fs::canonicalize(&data_dir).unwrap_or(data_dir);
        (canonical.display().to_string(), sizes)
    })
    .await
}

/// (total, available) bytes of the filesystem holding `path`, or None.
pub fn filesystem_bytes(path: &Path) -> Option<(u64, u64)> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; c_path is a valid NUL-terminated string.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = stats.f_frsize;
    Some((stats.f_blocks * block, stats.f_bavail * block))
}

#[derive(Debug, Default)]
pub struct DiskGuard {
    full: Cell<bool>,
    available_bytes: Cell<u64>,
    /// No reopen before this (after one that came back read-only).
    reopen_after: Cell<Option<Instant>>,
}

impl DiskGuard {
    /// True while writes must be refused.
    pub fn is_full(&self) -> bool {
        self.full.get()
    }

    pub fn available_bytes(&self) -> u64 {
        self.available_bytes.get()
    }
}

impl Shard {
    /// Re-reads the free space now (also called when a write fails for lack of space).
    pub fn check_disk(&self) {
        let minimum = self.config.storage.disk_free_bytes_min;
        let Some((_, available)) = filesystem_bytes(&self.config.storage.data_dir) else {
            return;
        };
        let full = available < minimum;
        let guard = &self.disk;
        if full != guard.full.get() {
            if full {
                tracing::error!(shard = %self.id, available, minimum, "disk nearly full: refusing writes");
            } else {
                tracing::info!(shard = %self.id, available, "disk space available again: accepting writes");
            }
        }
        guard.full.set(full);
        guard.available_bytes.set(available);
    }

    pub(super) fn spawn_disk_guard(self: &Rc<Self>) {
        self.check_disk();
        let shard = self.clone();
        let interval = Duration::from_millis(self.config.storage.disk_check_interval_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(interval).await;
                shard.check_disk();
                shard.reopen_logs_failed_for_space().await;
            }
        })
        .detach();
    }

    /// Room for at least one write beyond the reserve.
    fn space_for_writes(&self) -> bool {
        let storage = &self.config.storage;
        let wanted = storage
            .disk_free_bytes_min
            .saturating_add(storage.write_chunk_bytes);
        !self.disk.is_full() && self.disk.available_bytes() >= wanted
    }

    /// Reopens the logs that failed (or opened read-only) because the disk was full.
    async fn reopen_logs_failed_for_space(self: &Rc<Self>) {
        let now = Instant::now();
        if !self.space_for_writes() || self.disk.reopen_after.get().is_some_and(|t| now < t) {
            return;
        }
        let failed: Vec<_> = self
            .owned_logs()
            .into_iter()
            .filter(|(_, log)| log.failed_for_lack_of_space())
            .collect();
        for (partition, log) in failed {
            let Some(topic) = self.catalog().topic(partition.topic.as_str()).cloned() else {
                continue;
            };
            tracing::info!(shard = %self.id, %partition, available = self.disk.available_bytes(), "disk space is back: reopening read-only partition log");
            self.remove_log(&partition);
            self.set_offline(partition.clone(), OfflineReason::Reopening);
            // Fails (the log failed) but stops the flusher and releases the files.
            let _ = log.close().await;
            drop(log);
            self.open_partition(&topic, partition.clone()).await;
            if self.log(&partition).is_some_and(|log| log.is_failed()) {
                self.disk
                    .reopen_after
                    .set(Some(Instant::now() + REOPEN_RETRY));
            }
        }
    }
}
