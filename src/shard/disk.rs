//! The disk-space guard: each shard checks the data dir's filesystem on a timer and, while
//! free space is below `storage.disk_free_bytes_min`, refuses new writes with
//! KAFKA_STORAGE_ERROR instead of letting O_DIRECT writes hit ENOSPC. Reads are unaffected,
//! and writes resume by themselves once space is freed. Nothing already written is touched.

use super::Shard;
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

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
            }
        })
        .detach();
    }
}
