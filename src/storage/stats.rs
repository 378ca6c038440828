//! `StorageStats`: counters one shard's partition logs share, so they keep growing when a
//! log is removed (per-log numbers are in `LogStats`). The shard reads them for `/metrics`.
//!
//! Owns: fdatasync and O_DIRECT write latency and append back-pressure counts, and the open observer (told
//! which partition directory `PartitionLog::open` starts on: the shard's start-up watchdog
//! names the partition a stuck start-up is opening). May import: `crate::model`.
//! Runs on: the shard that opened the logs (`!Send`, plain `Cell`s).

use crate::model::histogram::{LatencyHistogram, STAGE_BUCKETS_SECONDS, SYNC_BUCKETS_SECONDS};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::Duration;

/// Told the directory of each partition log as its open starts.
pub type OpenObserver = Box<dyn Fn(&Path)>;

pub struct StorageStats {
    sync_latency: RefCell<LatencyHistogram>,
    write_latency: RefCell<LatencyHistogram>,
    append_waits: Cell<u64>,
    open_observer: RefCell<Option<OpenObserver>>,
}

impl std::fmt::Debug for StorageStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageStats")
            .field("sync_latency", &self.sync_latency)
            .field("write_latency", &self.write_latency)
            .field("append_waits", &self.append_waits)
            .field("open_observer", &self.open_observer.borrow().is_some())
            .finish()
    }
}

impl Default for StorageStats {
    fn default() -> Self {
        StorageStats {
            sync_latency: RefCell::new(LatencyHistogram::new(SYNC_BUCKETS_SECONDS)),
            write_latency: RefCell::new(LatencyHistogram::new(STAGE_BUCKETS_SECONDS)),
            append_waits: Cell::new(0),
            open_observer: RefCell::new(None),
        }
    }
}

impl StorageStats {
    /// Replaces the open observer (None: nobody is told).
    pub fn observe_opens(&self, observer: Option<OpenObserver>) {
        *self.open_observer.borrow_mut() = observer;
    }

    /// `PartitionLog::open` starts on `dir`.
    pub(crate) fn opening(&self, dir: &Path) {
        if let Some(observer) = self.open_observer.borrow().as_ref() {
            observer(dir);
        }
    }

    /// One fdatasync of a segment file returned after `elapsed`.
    pub(crate) fn record_sync(&self, elapsed: Duration) {
        self.sync_latency.borrow_mut().record(elapsed.as_secs_f64());
    }

    /// One O_DIRECT write of a segment chunk completed `elapsed` after it was issued.
    pub(crate) fn record_write(&self, elapsed: Duration) {
        self.write_latency
            .borrow_mut()
            .record(elapsed.as_secs_f64());
    }

    /// An append found its partition's write buffer full and waited.
    pub(crate) fn append_waited(&self) {
        self.append_waits
            .set(self.append_waits.get().saturating_add(1));
    }

    /// fdatasync durations of segment files (`SYNC_BUCKETS_SECONDS` buckets).
    pub fn sync_latency(&self) -> LatencyHistogram {
        self.sync_latency.borrow().clone()
    }

    /// O_DIRECT segment write durations, issue to completion (`STAGE_BUCKETS_SECONDS`).
    pub fn write_latency(&self) -> LatencyHistogram {
        self.write_latency.borrow().clone()
    }

    /// Appends that waited for write-buffer room (`storage.write_buffer_bytes_max`).
    pub fn append_waits(&self) -> u64 {
        self.append_waits.get()
    }
}
