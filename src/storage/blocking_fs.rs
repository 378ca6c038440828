//! File-system calls with no io_uring form in glommio 0.9 (mkdir, unlink, rename,
//! `remove_dir_all`, `std::fs` writes with `sync_all`) made while a shard serves: they run
//! on the executor's blocking thread pool (`glommio::executor().spawn_blocking`), and the
//! shard task awaits them, so the shard thread keeps answering its connections meanwhile.
//!
//! Owns: `run_off_shard`, the names of the operations (`BlockingOp`) and the test-only gate
//! hooks (`SHARDLOG_TEST_FS_GATE`; `test_gate` per executor thread in unit tests). May import: glommio, std. Runs on: any shard (the closure
//! on that shard's blocking thread).
//! Invariants: one call runs one closure to completion before its future resolves, so a
//! caller that awaits `write → fsync file → rename → fsync dir` inside one closure, or in
//! sequence, keeps that order (docs/durability.md). The pool has `shard.blocking_threads`
//! threads per shard (one FIFO queue, shared with glommio's own blocking calls); at most
//! `shard.blocking_threads - 1` of this shard's operations are in it at once
//! (`set_in_flight_max`), the others wait here, so one thread is always left for glommio. Start-up code on the main thread and the
//! `shardlog data-dir` tools call the same functions directly (no executor there).

use glommio::sync::Semaphore;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable of the test-only gate hook: `<op>:<dir>`. Once `<dir>/armed`
/// exists, every operation named `<op>` appends its name to `<dir>/reached`, then waits (on
/// the thread that runs it) until `<dir>/release` exists, at most `GATE_WAIT_MAX`. Tests use
/// it to hold a blocking file operation and show that the shard answers requests meanwhile.
pub const FS_GATE_ENV: &str = "SHARDLOG_TEST_FS_GATE";
/// Longest a gated operation waits for its release file.
const GATE_WAIT_MAX: Duration = Duration::from_secs(120);
const GATE_POLL: Duration = Duration::from_millis(5);

/// The blocking file-system operations a serving shard makes, by name (logs, gate hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingOp {
    /// `topics.json` written (temp file, `sync_all`, rename, directory sync).
    CatalogSave,
    /// `meta.json` written (producer-id block).
    BrokerMetaSave,
    /// `dynamic_broker_configs.json` written (AlterConfigs on the BROKER resource).
    DynamicConfigSave,
    /// A new partition's directory and `partition.metadata` created.
    ClaimPartitionDir,
    /// A deleted partition's directory renamed to its tombstone and removed.
    RemovePartitionDir,
    /// Whether a deleted topic's partition directories are gone (stat calls).
    CheckPartitionDirs,
    /// The files of segments retention, DeleteRecords or truncation dropped unlinked.
    RemoveSegmentFiles,
    /// Other unlinks of a serving log (compaction leftovers, transaction indexes, markers).
    RemoveFiles,
    /// Truncation's directory work: the producer snapshots listed (to rebuild the
    /// transaction state, and to unlink those past the new end), the cut segment's stale
    /// index files and an emptied transaction index unlinked.
    TruncateLogFiles,
    /// Compaction's swap: the merged-away segments' files unlinked and the cleaned files
    /// renamed into place (readers opening those paths wait for it).
    CompactionSwap,
    /// A log's directory prepared at open: created, interrupted swaps finished, listed,
    /// leftovers removed.
    OpenLogDir,
    /// DescribeLogDirs: the data dir's canonical path and file-system sizes.
    StatDataDir,
    /// The TLS certificate, key and client CA files stat'ed or read (`[tls]`, reloads).
    TlsFiles,
    /// `scram_credentials.json` written (AlterUserScramCredentials).
    ScramCredentialsSave,
}

impl BlockingOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockingOp::CatalogSave => "catalog_save",
            BlockingOp::BrokerMetaSave => "broker_meta_save",
            BlockingOp::DynamicConfigSave => "dynamic_config_save",
            BlockingOp::ClaimPartitionDir => "claim_partition_dir",
            BlockingOp::RemovePartitionDir => "remove_partition_dir",
            BlockingOp::CheckPartitionDirs => "check_partition_dirs",
            BlockingOp::RemoveSegmentFiles => "remove_segment_files",
            BlockingOp::RemoveFiles => "remove_files",
            BlockingOp::TruncateLogFiles => "truncate_log_files",
            BlockingOp::CompactionSwap => "compaction_swap",
            BlockingOp::OpenLogDir => "open_log_dir",
            BlockingOp::StatDataDir => "stat_data_dir",
            BlockingOp::TlsFiles => "tls_files",
            BlockingOp::ScramCredentialsSave => "scram_credentials_save",
        }
    }
}

thread_local! {
    /// Operations of this shard in the blocking pool at once (`set_in_flight_max`).
    static IN_FLIGHT: Rc<Semaphore> = Rc::new(Semaphore::new(1));
}

/// Bounds this shard's operations in its blocking pool to `in_flight_max` at once, so that
/// with `shard.blocking_threads` = `in_flight_max + 1` a thread is always free for glommio's
/// own blocking calls (the renames of checkpoint writes, truncates): a slow unlink or
/// `remove_dir_all` then delays only the operations queued behind it here. Called once by
/// each shard before it serves.
pub fn set_in_flight_max(in_flight_max: usize) {
    assert!(in_flight_max >= 1, "no blocking file operation could run");
    IN_FLIGHT.with(|semaphore| {
        let current = semaphore.available() as usize;
        if in_flight_max > current {
            semaphore.signal((in_flight_max - current) as u64);
        }
    });
}

/// Runs `operation` on this shard's blocking thread pool and returns its result.
pub async fn run_off_shard<T, F>(op: BlockingOp, operation: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let semaphore = IN_FLIGHT.with(Rc::clone);
    // The semaphore is never closed, so the permit is always granted.
    let _permit = semaphore.acquire_permit(1).await;
    let unit_test_gate = test_gate::dir_for(op);
    glommio::executor()
        .spawn_blocking(move || {
            gate(op);
            if let Some(dir) = unit_test_gate {
                hold(op, &dir);
            }
            operation()
        })
        .await
}

/// The gate hook (see `FS_GATE_ENV`); does nothing unless the variable names `op`.
fn gate(op: BlockingOp) {
    static GATE: OnceLock<Option<(String, PathBuf)>> = OnceLock::new();
    let gate = GATE.get_or_init(|| {
        let spec = std::env::var(FS_GATE_ENV).ok()?;
        let (name, dir) = spec.split_once(':')?;
        Some((name.to_string(), PathBuf::from(dir)))
    });
    let Some((name, dir)) = gate else {
        return;
    };
    if name == op.as_str() {
        hold(op, dir);
    }
}

/// Once `<dir>/armed` exists: appends `op`'s name to `<dir>/reached` (one line per call),
/// then waits until `<dir>/release` exists (at most `GATE_WAIT_MAX`), on the thread that
/// runs the operation.
fn hold(op: BlockingOp, dir: &std::path::Path) {
    if !dir.join("armed").exists() {
        return;
    }
    static ANNOUNCED: std::sync::Once = std::sync::Once::new();
    ANNOUNCED.call_once(|| {
        tracing::warn!(op = op.as_str(), dir = %dir.display(), "test gate ({FS_GATE_ENV}): holding blocking file operations");
    });
    let line = format!("{}\n", op.as_str());
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("reached"))
        .and_then(|mut reached| std::io::Write::write_all(&mut reached, line.as_bytes()));
    let started = std::time::Instant::now();
    while !dir.join("release").exists() && started.elapsed() < GATE_WAIT_MAX {
        std::thread::sleep(GATE_POLL);
    }
}

/// The unit tests' form of the gate: set on a shard (executor) thread, it holds the
/// operations that shard runs, like `FS_GATE_ENV` does, without touching other tests'
/// executors in the same process (the environment variable is read once per process).
#[cfg(test)]
pub(crate) mod test_gate {
    use super::BlockingOp;
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static GATE: RefCell<Option<(BlockingOp, PathBuf)>> = const { RefCell::new(None) };
    }

    /// Holds this thread's operations named `op` once `<dir>/armed` exists (see `hold`).
    pub(crate) fn set(op: BlockingOp, dir: &Path) {
        GATE.with(|gate| *gate.borrow_mut() = Some((op, dir.to_path_buf())));
    }

    pub(super) fn dir_for(op: BlockingOp) -> Option<PathBuf> {
        GATE.with(|gate| match &*gate.borrow() {
            Some((gated, dir)) if *gated == op => Some(dir.clone()),
            _ => None,
        })
    }
}

#[cfg(not(test))]
mod test_gate {
    pub(super) fn dir_for(_: super::BlockingOp) -> Option<std::path::PathBuf> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_another_thread_and_returns_the_result() {
        let (result, shard_thread, blocking_thread) = crate::storage::one_off_executor()
            .spawn(|| async {
                let shard_thread = std::thread::current().id();
                let (result, blocking_thread) = run_off_shard(BlockingOp::RemoveFiles, || {
                    (40 + 2, std::thread::current().id())
                })
                .await;
                (result, shard_thread, blocking_thread)
            })
            .and_then(|handle| handle.join())
            .unwrap();
        assert_eq!(result, 42);
        assert_ne!(blocking_thread, shard_thread);
    }
}
