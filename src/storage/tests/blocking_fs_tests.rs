//! Contract (docs/durability.md, "Blocking file-system calls"): a truncation's directory
//! work (listing the producer snapshots to rebuild the transaction state, unlinking the cut
//! segment's index files and the snapshots past the new end) runs on the shard's blocking
//! pool, so while it is held the shard keeps appending to and reading another log.
//!
//! Like `tests/python/test_blocking_fs.py`, the test holds the operation with the gate
//! (`blocking_fs::test_gate`, the per-executor form of `SHARDLOG_TEST_FS_GATE`) and asserts
//! ordering, not timings: the held operation reported `reached`, the truncation is still
//! unfinished, and the other log was served meanwhile. A call made on the shard thread would
//! never reach the gate, and the truncation would finish first.

use super::txn_tests::{marker, txn_data};
use super::*;
use crate::model::Offset;
use crate::storage::BlockingOp;
use crate::storage::blocking_fs::test_gate;
use glommio::PoolPlacement;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Named bounds on hangs, never performance assertions.
const GATE_REACHED_TIMEOUT: Duration = Duration::from_secs(60);
const GATE_POLL: Duration = Duration::from_millis(5);
/// As a broker shard with the default `shard.blocking_threads`: two threads, one of them
/// for this shard's `run_off_shard` calls (the in-flight bound defaults to 1).
const BLOCKING_THREADS: usize = 2;

fn run_like_a_shard<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    crate::storage::one_off_executor()
        .io_memory(1 << 20)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
        .spawn(move || async move { body().await })
        .expect("spawn executor")
        .join()
        .expect("executor thread");
}

/// Runs `work` as its own task with the gate at `gate` armed: waits until a gated operation
/// reports `reached`, checks that `work` is unfinished while this shard appends to and
/// reads from `other` and `while_held` holds, then releases the gate. Returns `work`'s
/// output and how many gated calls it made.
async fn serves_while_held<T: 'static>(
    gate: &Path,
    other: &PartitionLog,
    work: impl Future<Output = T> + 'static,
    while_held: impl FnOnce(),
) -> (T, usize) {
    for name in ["reached", "release"] {
        let _ = std::fs::remove_file(gate.join(name));
    }
    std::fs::write(gate.join("armed"), b"").unwrap();
    let done = Rc::new(Cell::new(false));
    let task = glommio::spawn_local({
        let done = done.clone();
        async move {
            let output = work.await;
            done.set(true);
            output
        }
    });
    let started = Instant::now();
    while !gate.join("reached").exists() {
        assert!(
            !done.get(),
            "finished without reaching the gate: not run off the shard"
        );
        assert!(started.elapsed() < GATE_REACHED_TIMEOUT, "gate not reached");
        glommio::timer::sleep(GATE_POLL).await;
    }
    let appended = other
        .append(batch_of(1, 100, 1_000, b'o'), 0, 0)
        .await
        .unwrap();
    let read = other
        .read(appended.base_offset, 1 << 20, true)
        .await
        .unwrap();
    assert_eq!(read.batches.len(), 1);
    assert_eq!(base_offset(&read.batches[0]), appended.base_offset.0);
    while_held();
    assert!(!done.get(), "finished while its file operation was held");
    std::fs::write(gate.join("release"), b"").unwrap();
    let output = task.await;
    std::fs::remove_file(gate.join("armed")).unwrap();
    let calls = std::fs::read_to_string(gate.join("reached")).unwrap();
    (output, calls.lines().count())
}

fn snapshots_past(dir: &Path, end: i64) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_suffix(".snapshot")
                .and_then(|base| base.parse::<i64>().ok())
                .is_some_and(|offset| offset > end)
        })
        .collect()
}

#[test]
fn truncation_file_work_runs_off_the_shard() {
    run_like_a_shard(|| async {
        let (dir, other_dir, gate) = (temp_dir(), temp_dir(), temp_dir());
        let config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        let other = open(other_dir.path(), &config, &cache()).await;
        let fill = |log: Rc<PartitionLog>| async move {
            for _ in 0..40 {
                log.append(batch_of(1, 2000, 1_000, b'p'), 0, 0)
                    .await
                    .unwrap();
            }
            log
        };
        let a = log.append(txn_data(1, 0, 0, 1, 10), 0, 0).await.unwrap();
        let log = fill(log).await;
        let commit = log.append(marker(1, 0, true, 0), 0, 0).await.unwrap();
        let log = fill(log).await;
        log.wait_synced(Offset(log.log_end_offset().0 - 1))
            .await
            .unwrap();
        assert!(
            log.segment_count() >= 3,
            "rolls took snapshots past the cut"
        );
        assert!(!snapshots_past(dir.path(), commit.base_offset.0).is_empty());
        test_gate::set(BlockingOp::TruncateLogFiles, gate.path());

        // The commit is cut: the transaction state is rebuilt from the newest snapshot at
        // or below the new end, which the first gated call lists before the log is cut.
        // Then the cut segment's index files and the snapshots past the new end go, and
        // its emptied `.txnindex`: three calls.
        let truncating = log.clone();
        let old_end = log.log_end_offset();
        let (end, calls) = serves_while_held(
            gate.path(),
            &other,
            async move { truncating.truncate_to(commit.base_offset).await.unwrap() },
            || assert_eq!(log.log_end_offset(), old_end, "held before the cut"),
        )
        .await;
        assert_eq!(end, commit.base_offset);
        assert_eq!(calls, 3);
        assert_eq!(
            log.last_stable_offset(),
            a.base_offset,
            "transaction open again"
        );
        assert!(snapshots_past(dir.path(), end.0).is_empty());

        // No marker cut, so nothing is listed before the cut: the first gated call unlinks
        // the cut segment's index files and the snapshots past the new end, the second its
        // emptied `.txnindex`.
        let cut = Offset(a.base_offset.0 + 20);
        let truncating = log.clone();
        let (end, calls) = serves_while_held(
            gate.path(),
            &other,
            async move { truncating.truncate_to(cut).await.unwrap() },
            || assert_eq!(log.log_end_offset(), cut, "held after the cut"),
        )
        .await;
        assert_eq!(end, cut);
        assert_eq!(calls, 2);
        assert!(snapshots_past(dir.path(), end.0).is_empty());
        assert_eq!(read_all(&log).await.len(), 20);
        other.close().await.unwrap();
        log.close().await.unwrap();
        let log = open(dir.path(), &config, &cache()).await;
        assert_eq!(log.log_end_offset(), cut);
        assert_eq!(log.last_stable_offset(), a.base_offset);
        log.close().await.unwrap();
    });
}
