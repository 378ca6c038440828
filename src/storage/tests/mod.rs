//! Tests of the storage module: API behaviour (`log_tests`), recovery over segment images
//! with seeded faults (`recovery_tests`), damage to synced data: offsets never reused,
//! corruption reported, the repair, the scrub (`damage_tests`), kill -9 of a child process
//! (`crash_tests`), and
//! transactions: last stable offset, aborted-transaction index, fencing (`txn_tests`).
//! compaction and broker-side compression (`compaction_tests`).
//!
//! Test data lives under `target/storage-tests` (ext4: O_DIRECT works there, unlike
//! /dev/shm) or under `$SHARDLOG_TEST_DIR`. Randomised tests print their seed on failure;
//! `SHARDLOG_SEED=<seed>` replays it.

mod blocking_fs_tests;
mod compaction_tests;
mod crash_tests;
mod damage_tests;
mod log_tests;
mod recovery_tests;
mod txn_crash_tests;
mod txn_tests;

use super::{BatchCache, LogConfig, PartitionLog};
use crate::config::{StorageConfig, SyncPolicy};
use crate::model::batch::test_support::build_batch;
use crate::model::batch::{self, CRC_COVERED_FROM};
use bytes::Bytes;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Runs `body` on a fresh glommio executor with explicit (small) io memory.
pub(crate) fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    static TRACING: std::sync::Once = std::sync::Once::new();
    TRACING.call_once(|| {
        // `RUST_LOG=warn cargo test ...` shows what recovery repaired.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
    crate::storage::one_off_executor()
        .io_memory(1 << 20)
        .spawn(move || async move { body().await })
        .expect("spawn executor")
        .join()
        .expect("executor thread");
}

pub(crate) fn test_root() -> PathBuf {
    let root = std::env::var_os("SHARDLOG_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/storage-tests"));
    std::fs::create_dir_all(&root).expect("create test root");
    root
}

pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("log-")
        .tempdir_in(test_root())
        .expect("temp dir")
}

/// A small config: tiny segments and indexes so tests cross every boundary.
pub(crate) fn small_config() -> LogConfig {
    let mut config = LogConfig::from_storage(&StorageConfig::default());
    config.segment_bytes = 64 * 1024;
    config.index_interval_bytes = 1024;
    config.write_buffer_bytes_max = 1 << 20;
    config.write_chunk_bytes = 16 * 1024;
    config.read_chunk_bytes = 8 * 1024;
    config.sync_policy = SyncPolicy::EveryBatch;
    // Most tests read right after appending; `records_become_visible_once_flushed` covers
    // the broker's setting.
    config.visible_when_flushed = false;
    config
}

pub(crate) fn cache() -> Rc<BatchCache> {
    Rc::new(BatchCache::new(64 << 20))
}

pub(crate) async fn open(
    dir: &Path,
    config: &LogConfig,
    cache: &Rc<BatchCache>,
) -> Rc<PartitionLog> {
    PartitionLog::open(dir, config.clone(), cache.clone(), Rc::default())
        .await
        .expect("open log")
}

/// Removes the recovery point checkpoint of a closed log's copy: the state of a crash before
/// the tail was checkpointed, so damaging the tail models a torn write, not lost synced
/// data (which recovery refuses with `Damaged`).
pub(crate) fn forget_recovery_point(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("recovery-point-offset.checkpoint"));
}

/// A seeded xorshift64* generator; prints its seed if the test panics.
pub(crate) struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    /// Seed from `SHARDLOG_SEED`, else from the clock.
    pub(crate) fn from_env() -> Rng {
        let seed = std::env::var("SHARDLOG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        Rng::new(seed)
    }

    pub(crate) fn new(seed: u64) -> Rng {
        Rng {
            state: seed.max(1),
            seed,
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[low, high)`.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low).max(1)
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed with SHARDLOG_SEED={}", self.seed);
        }
    }
}

/// A batch of `count` records of `value_bytes` bytes each (content from `fill`).
pub(crate) fn batch_of(count: usize, value_bytes: usize, timestamp: i64, fill: u8) -> Bytes {
    let value = vec![fill; value_bytes];
    let values: Vec<&[u8]> = (0..count).map(|_| &value[..]).collect();
    Bytes::from(build_batch(&values, timestamp))
}

/// Sets the idempotence fields of a built batch and fixes its CRC.
pub(crate) fn with_producer(batch: &[u8], producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut bytes = batch.to_vec();
    bytes[43..51].copy_from_slice(&producer_id.to_be_bytes());
    bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
    bytes[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(batch::validate_batch(&bytes).is_ok());
    Bytes::from(bytes)
}

/// Reads the whole log from its start, one `read` call at a time.
pub(crate) async fn read_all(log: &PartitionLog) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let result = log.read(offset, 256 * 1024, true).await.expect("read");
        let Some(last) = result.batches.last() else {
            return out;
        };
        let header = batch::RecordBatchHeader::view(last).expect("header");
        offset = crate::model::Offset(header.next_offset());
        out.extend(result.batches);
    }
}

pub(crate) fn base_offset(batch: &[u8]) -> i64 {
    batch::RecordBatchHeader::view(batch)
        .expect("header")
        .base_offset()
}

/// `batch` with the broker-owned fields stamped as the log stamps them.
pub(crate) fn stamped(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    batch::stamp_batch(&mut bytes, base_offset, leader_epoch);
    bytes
}
