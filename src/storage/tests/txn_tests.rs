//! Transactions on the partition (KIP-98): the last stable offset with interleaved
//! transactional producers, COMMIT/ABORT markers, read_committed reads (stop at the LSO,
//! list exactly the overlapping aborted transactions), the aborted-transaction index across
//! clean reopen, kill -9 style reopen (drop without close), a torn tail that cuts off a
//! marker, `truncate_to` and retention; fencing by markers; `producers()`.
//!
//! The randomised test checks the log against a model; it prints its seed, and
//! `SHARDLOG_SEED=<seed>` replays it.

use super::*;
use crate::model::Offset;
use crate::model::batch::{self, CRC_COVERED_FROM, RecordBatchHeader};
use crate::model::records::{control_record_commits, encode_control_batch, read_records};
use crate::storage::ReadLimits;
use crate::storage::{AbortedTransaction, ProducerInfo, StorageError};
use std::collections::BTreeMap;

const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
/// Wait for a dropped log's flusher to finish before reopening.
const DROP_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// A transactional data batch of `count` records of `value_bytes` bytes.
pub(super) fn txn_data(
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    count: usize,
    value_bytes: usize,
) -> Bytes {
    let plain = batch_of(count, value_bytes, 1_000, b't');
    let mut bytes = with_producer(&plain, producer_id, epoch, sequence).to_vec();
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | ATTRIBUTE_TRANSACTIONAL;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(batch::validate_batch(&bytes).is_ok());
    Bytes::from(bytes)
}

pub(super) fn marker(producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Bytes {
    Bytes::from(encode_control_batch(
        producer_id,
        epoch,
        commit,
        coordinator_epoch,
        2_000,
    ))
}

fn plain(value_bytes: usize) -> Bytes {
    batch_of(1, value_bytes, 1_000, b'p')
}

fn aborted(producer_id: i64, first_offset: i64) -> AbortedTransaction {
    AbortedTransaction {
        producer_id,
        first_offset: Offset(first_offset),
    }
}

async fn reopen(
    log: Rc<PartitionLog>,
    clean: bool,
    dir: &Path,
    config: &LogConfig,
) -> Rc<PartitionLog> {
    log.wait_synced(Offset(log.log_end_offset().0 - 1))
        .await
        .expect("sync");
    if clean {
        log.close().await.expect("close");
    }
    drop(log);
    glommio::timer::sleep(DROP_SETTLE).await;
    open(dir, config, &cache()).await
}

/// What the log must say, computed independently of it.
#[derive(Default)]
pub(super) struct Model {
    /// producer id -> first offset of its ongoing transaction.
    ongoing: BTreeMap<i64, i64>,
    /// (producer id, first offset, marker offset), in marker order.
    aborted: Vec<(i64, i64, i64)>,
    /// (base, last) of every batch.
    batches: Vec<(i64, i64)>,
    next_sequence: BTreeMap<i64, i32>,
    log_end: i64,
}

impl Model {
    fn lso(&self) -> i64 {
        self.ongoing.values().min().copied().unwrap_or(self.log_end)
    }

    fn aborted_between(&self, start: i64, upper: i64) -> Vec<AbortedTransaction> {
        self.aborted
            .iter()
            .filter(|&&(_, first, last)| last >= start && first < upper)
            .map(|&(id, first, _)| aborted(id, first))
            .collect()
    }

    async fn append(&mut self, log: &PartitionLog, rng: &mut Rng) {
        let producer_id = rng.range(1, 5) as i64;
        let op = rng.range(0, 10);
        let bytes = match op {
            0..=4 => {
                let count = rng.range(1, 4) as usize;
                let sequence = self.next_sequence.entry(producer_id).or_insert(0);
                let value_bytes = rng.range(50, 1500) as usize;
                let bytes = txn_data(producer_id, 0, *sequence, count, value_bytes);
                *sequence += count as i32;
                bytes
            }
            5 | 6 => marker(producer_id, 0, true, 0),
            7 | 8 => marker(producer_id, 0, false, 0),
            _ => plain(rng.range(10, 2000) as usize),
        };
        let result = log.append(bytes, 0, 0).await.expect("append");
        let (base, last) = (result.base_offset.0, result.last_offset.0);
        self.batches.push((base, last));
        self.log_end = last + 1;
        match op {
            0..=4 => {
                self.ongoing.entry(producer_id).or_insert(base);
            }
            5..=8 => {
                if let Some(first) = self.ongoing.remove(&producer_id)
                    && op >= 7
                {
                    self.aborted.push((producer_id, first, last));
                }
            }
            _ => {}
        }
    }

    /// The model of a whole log (read from offset 0), replayed batch by batch.
    pub(super) fn from_log(batches: &[Bytes]) -> Model {
        let mut model = Model::default();
        for bytes in batches {
            let header = RecordBatchHeader::view(bytes).expect("header");
            let (base, last) = (header.base_offset(), header.last_offset());
            model.batches.push((base, last));
            model.log_end = last + 1;
            let producer_id = header.producer_id.get();
            if producer_id < 0 || !header.is_transactional() {
                continue;
            }
            if !header.is_control() {
                model.ongoing.entry(producer_id).or_insert(base);
                continue;
            }
            let records = read_records(bytes).expect("control record");
            let commit = records[0]
                .key
                .and_then(control_record_commits)
                .expect("marker");
            if let Some(first) = model.ongoing.remove(&producer_id)
                && !commit
            {
                model.aborted.push((producer_id, first, last));
            }
        }
        model
    }

    pub(super) fn ongoing(&self) -> Vec<i64> {
        self.ongoing.keys().copied().collect()
    }

    /// Reads from every batch start (at most `samples` random ones) and compares batches,
    /// LSO and aborted lists.
    pub(super) async fn verify(&self, log: &PartitionLog, rng: &mut Rng, samples: usize) {
        let lso = self.lso();
        assert_eq!(log.last_stable_offset(), Offset(lso));
        assert_eq!(log.log_end_offset(), Offset(self.log_end));
        let mut starts: Vec<i64> = self.batches.iter().map(|&(base, _)| base).collect();
        while starts.len() > samples {
            let victim = rng.range(0, starts.len() as u64) as usize;
            starts.swap_remove(victim);
        }
        for base in starts {
            let max_bytes = rng.range(1, 48 * 1024) as usize;
            let read = log
                .read_isolated(Offset(base), ReadLimits::bytes(max_bytes, true), true)
                .await
                .expect("read_committed");
            assert_eq!(read.last_stable_offset, Offset(lso));
            let mut next = base;
            for bytes in &read.batches {
                let header = RecordBatchHeader::view(bytes).expect("header");
                assert_eq!(header.base_offset(), next, "contiguous from {base}");
                assert!(
                    header.last_offset() < lso,
                    "batch at {next} not below LSO {lso}"
                );
                next = header.next_offset();
            }
            assert_eq!(read.batches.is_empty(), base >= lso, "read from {base}");
            let expected = if read.batches.is_empty() {
                Vec::new()
            } else {
                self.aborted_between(base, next)
            };
            assert_eq!(
                read.aborted_transactions, expected,
                "aborted from {base} to {next}"
            );
            let uncommitted = log
                .read_isolated(Offset(base), ReadLimits::bytes(max_bytes, true), false)
                .await
                .expect("read_uncommitted");
            assert!(uncommitted.aborted_transactions.is_empty());
            assert_eq!(uncommitted.last_stable_offset, Offset(lso));
            assert!(!uncommitted.batches.is_empty());
        }
    }
}

#[test]
fn lso_and_aborted_index_follow_a_model_across_reopens() {
    run(|| async {
        let mut rng = Rng::from_env();
        eprintln!("SHARDLOG_SEED={}", rng.seed);
        let dir = temp_dir();
        let config = small_config();
        let mut model = Model::default();
        let mut log = open(dir.path(), &config, &cache()).await;
        let first_clean = rng.range(0, 2) == 0;
        for (phase, clean) in [first_clean, !first_clean, true].into_iter().enumerate() {
            for _ in 0..250 {
                model.append(&log, &mut rng).await;
                assert_eq!(
                    log.last_stable_offset(),
                    Offset(model.lso()),
                    "phase {phase}"
                );
            }
            model.verify(&log, &mut rng, usize::MAX).await;
            log = reopen(log, clean, dir.path(), &config).await;
            model.verify(&log, &mut rng, usize::MAX).await;
        }
        assert!(log.segment_count() > 3, "the run crosses segments");
        log.close().await.unwrap();
    });
}

#[test]
fn read_committed_stops_at_the_lso_and_lists_overlapping_aborts() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        let a = log.append(txn_data(1, 0, 0, 2, 10), 0, 0).await.unwrap(); // 0-1
        let b = log.append(txn_data(2, 0, 0, 2, 10), 0, 0).await.unwrap(); // 2-3
        assert_eq!(log.last_stable_offset(), Offset(0));
        let abort = log.append(marker(1, 0, false, 0), 0, 0).await.unwrap(); // 4
        assert_eq!(abort.base_offset, Offset(4));
        log.append(plain(10), 0, 0).await.unwrap(); // 5
        assert_eq!(log.last_stable_offset(), b.base_offset);
        assert_eq!(log.high_watermark(), Offset(6));
        let read = log
            .read_isolated(a.base_offset, ReadLimits::bytes(1 << 20, true), true)
            .await
            .unwrap();
        assert_eq!(read.batches.len(), 1, "only the batch below the LSO");
        assert_eq!(read.last_stable_offset, Offset(2));
        assert_eq!(read.aborted_transactions, vec![aborted(1, 0)]);
        let plain_read = log.read(Offset(0), 1 << 20, true).await.unwrap();
        assert_eq!(plain_read.batches.len(), 4, "read_uncommitted up to the HW");
        assert_eq!(plain_read.last_stable_offset, Offset(2));
        assert!(plain_read.aborted_transactions.is_empty());
        let at_lso = log
            .read_isolated(Offset(2), ReadLimits::bytes(1 << 20, true), true)
            .await
            .unwrap();
        assert!(at_lso.batches.is_empty() && at_lso.aborted_transactions.is_empty());
        log.append(marker(2, 0, true, 0), 0, 0).await.unwrap(); // 6
        assert_eq!(log.last_stable_offset(), Offset(7));
        let read = log
            .read_isolated(Offset(0), ReadLimits::bytes(1 << 20, true), true)
            .await
            .unwrap();
        assert_eq!(read.batches.len(), 5, "markers are returned like any batch");
        assert_eq!(read.aborted_transactions, vec![aborted(1, 0)]);
        // Starting after the abort marker: the aborted transaction no longer overlaps.
        let read = log
            .read_isolated(Offset(5), ReadLimits::bytes(1 << 20, true), true)
            .await
            .unwrap();
        assert_eq!(read.batches.len(), 2);
        assert!(read.aborted_transactions.is_empty());
        // A read that ends before the transaction starts does not list it.
        log.append(plain(10), 0, 0).await.unwrap(); // 7
        log.append(txn_data(3, 0, 0, 1, 10), 0, 0).await.unwrap(); // 8
        log.append(marker(3, 0, false, 0), 0, 0).await.unwrap(); // 9
        let small = log
            .read_isolated(Offset(7), ReadLimits::bytes(1, true), true)
            .await
            .unwrap();
        assert_eq!(small.batches.len(), 1);
        assert!(small.aborted_transactions.is_empty());
        let read = log
            .read_isolated(Offset(7), ReadLimits::bytes(1 << 20, true), true)
            .await
            .unwrap();
        assert_eq!(read.aborted_transactions, vec![aborted(3, 8)]);
        log.close().await.unwrap();
    });
}

/// Position and length of the last batch in a segment file (padding after it ignored).
fn last_batch(path: &Path) -> (u64, u64) {
    let bytes = std::fs::read(path).unwrap();
    let (position, header) = batch::batch_positions(&bytes).last().expect("a batch");
    (position as u64, header.total_bytes().unwrap() as u64)
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

#[test]
fn torn_tail_cutting_a_marker_reopens_the_transaction() {
    for (clean, fill) in [(true, 0), (false, 0), (true, 60), (false, 60)] {
        run(move || async move {
            let dir = temp_dir();
            let config = small_config();
            let log = open(dir.path(), &config, &cache()).await;
            log.append(plain(100), 0, 0).await.unwrap();
            let first = log.append(txn_data(1, 0, 0, 2, 100), 0, 0).await.unwrap();
            for _ in 0..fill {
                log.append(plain(2000), 0, 0).await.unwrap(); // rolls segments
            }
            let other = log.append(txn_data(2, 0, 0, 1, 100), 0, 0).await.unwrap();
            log.append(marker(2, 0, false, 0), 0, 0).await.unwrap();
            let abort = log.append(marker(1, 0, false, 0), 0, 0).await.unwrap();
            let hw = log.high_watermark();
            assert_eq!(log.last_stable_offset(), hw);
            log.wait_synced(abort.last_offset).await.unwrap();
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            glommio::timer::sleep(DROP_SETTLE).await;
            let segment = last_segment(dir.path());
            let (position, len) = last_batch(&segment);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .unwrap();
            file.set_len(position + len - 3).unwrap();
            drop(file);
            forget_recovery_point(dir.path());
            let log = open(dir.path(), &config, &cache()).await;
            let context = format!("clean={clean} fill={fill}");
            assert_eq!(log.log_end_offset(), abort.base_offset, "{context}");
            assert_eq!(
                log.last_stable_offset(),
                first.base_offset,
                "{context}: ongoing again"
            );
            let row = log
                .producers()
                .into_iter()
                .find(|p| p.producer_id == 1)
                .unwrap();
            assert_eq!(
                row.current_txn_start_offset, first.base_offset.0,
                "{context}"
            );
            let read = log
                .read_isolated(Offset(0), ReadLimits::bytes(1 << 20, true), true)
                .await
                .unwrap();
            assert_eq!(
                read.batches.len(),
                1,
                "{context}: only before the transaction"
            );
            assert!(read.aborted_transactions.is_empty(), "{context}");
            // The coordinator rewrites the marker: now a commit.
            log.append(marker(1, 0, true, 0), 0, 0).await.unwrap();
            assert_eq!(log.last_stable_offset(), log.high_watermark(), "{context}");
            let read = log
                .read_isolated(Offset(0), ReadLimits::bytes(1 << 30, true), true)
                .await
                .unwrap();
            assert_eq!(
                read.aborted_transactions,
                vec![aborted(2, other.base_offset.0)],
                "{context}: only producer 2's abort remains"
            );
            let log = reopen(log, !clean, dir.path(), &config).await;
            let again = log
                .read_isolated(Offset(0), ReadLimits::bytes(1 << 30, true), true)
                .await
                .unwrap();
            assert_eq!(
                again.aborted_transactions, read.aborted_transactions,
                "{context}"
            );
            assert_eq!(log.last_stable_offset(), log.high_watermark(), "{context}");
            log.close().await.unwrap();
        });
    }
}

async fn read_aborted(log: &PartitionLog, start: Offset) -> Vec<AbortedTransaction> {
    log.read_isolated(start, ReadLimits::bytes(1 << 30, true), true)
        .await
        .unwrap()
        .aborted_transactions
}

#[test]
fn truncate_to_reopens_cut_transactions_and_cuts_the_index() {
    for clean in [true, false] {
        run(move || async move {
            let dir = temp_dir();
            let config = small_config();
            let mut log = open(dir.path(), &config, &cache()).await;
            let fill = |log: Rc<PartitionLog>| async move {
                for _ in 0..40 {
                    log.append(plain(2000), 0, 0).await.unwrap();
                }
                log
            };
            let a = log.append(txn_data(1, 0, 0, 1, 10), 0, 0).await.unwrap();
            log = fill(log).await;
            let m1 = log.append(marker(1, 0, false, 0), 0, 0).await.unwrap();
            let b = log.append(txn_data(2, 0, 0, 1, 10), 0, 0).await.unwrap();
            log = fill(log).await;
            let m2 = log.append(marker(2, 0, true, 0), 0, 0).await.unwrap();
            let c = log.append(txn_data(3, 0, 0, 1, 10), 0, 0).await.unwrap();
            let m3 = log.append(marker(3, 0, false, 0), 0, 0).await.unwrap();
            let d = log.append(txn_data(4, 0, 0, 1, 10), 0, 0).await.unwrap();
            log.append(plain(10), 0, 0).await.unwrap();
            log.wait_synced(Offset(log.log_end_offset().0 - 1))
                .await
                .unwrap();
            assert!(log.segment_count() >= 3);
            assert_eq!(log.last_stable_offset(), d.base_offset);
            assert_eq!(
                read_aborted(&log, Offset(0)).await,
                vec![aborted(1, a.base_offset.0), aborted(3, c.base_offset.0)]
            );
            // No marker is cut: producer 4's transaction just vanishes.
            log.truncate_to(d.base_offset).await.unwrap();
            assert_eq!(log.last_stable_offset(), d.base_offset, "now the HW");
            assert_eq!(log.high_watermark(), d.base_offset);
            // The abort of producer 3 is cut: its transaction is ongoing again.
            log.truncate_to(m3.base_offset).await.unwrap();
            assert_eq!(log.last_stable_offset(), c.base_offset);
            assert_eq!(
                read_aborted(&log, Offset(0)).await,
                vec![aborted(1, a.base_offset.0)]
            );
            log = reopen(log, clean, dir.path(), &config).await;
            assert_eq!(log.last_stable_offset(), c.base_offset, "clean={clean}");
            assert_eq!(
                read_aborted(&log, Offset(0)).await,
                vec![aborted(1, a.base_offset.0)]
            );
            // Deeper, across segments: producer 2's commit is cut (3 started after it).
            log.truncate_to(m2.base_offset).await.unwrap();
            assert_eq!(log.last_stable_offset(), b.base_offset);
            log.truncate_to(m1.base_offset).await.unwrap();
            assert_eq!(log.last_stable_offset(), a.base_offset);
            assert!(read_aborted(&log, Offset(0)).await.is_empty());
            let rows = log.producers();
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(rows[0].current_txn_start_offset, a.base_offset.0);
            log = reopen(log, clean, dir.path(), &config).await;
            assert_eq!(log.last_stable_offset(), a.base_offset, "clean={clean}");
            assert!(read_aborted(&log, Offset(0)).await.is_empty());
            let commit = log.append(marker(1, 0, true, 0), 0, 0).await.unwrap();
            assert_eq!(commit.base_offset, m1.base_offset);
            assert_eq!(log.last_stable_offset(), log.high_watermark());
            log = reopen(log, !clean, dir.path(), &config).await;
            assert_eq!(log.last_stable_offset(), log.high_watermark());
            assert!(read_aborted(&log, Offset(0)).await.is_empty());
            log.close().await.unwrap();
        });
    }
}

#[test]
fn retention_drops_aborted_transactions_with_their_segments() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        let mut aborts = Vec::new();
        for i in 0..200i64 {
            let producer_id = 1 + i % 3;
            let sequence = (i / 3) as i32;
            let data = log
                .append(txn_data(producer_id, 0, sequence, 1, 1500), 0, 0)
                .await
                .unwrap();
            let end = log
                .append(marker(producer_id, 0, false, 0), 0, 0)
                .await
                .unwrap();
            aborts.push((producer_id, data.base_offset.0, end.base_offset.0));
        }
        log.wait_synced(Offset(log.log_end_offset().0 - 1))
            .await
            .unwrap();
        let segments = log.segment_count();
        assert!(segments > 3);
        config.retention_bytes = 100 * 1024;
        log.update_config(config.clone());
        assert!(log.apply_retention(0).await.unwrap() > 0);
        let start = log.log_start_offset();
        let expected: Vec<AbortedTransaction> = aborts
            .iter()
            .filter(|&&(_, _, last)| last >= start.0)
            .map(|&(id, first, _)| aborted(id, first))
            .collect();
        assert!(expected.len() < aborts.len());
        assert_eq!(read_aborted(&log, start).await, expected);
        let orphans: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
            .filter(|p| !p.with_extension("log").exists())
            .collect();
        assert!(orphans.is_empty(), "{orphans:?}");
        let log = reopen(log, false, dir.path(), &config).await;
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(read_aborted(&log, start).await, expected);
        // DeleteRecords moves the start: earlier aborts no longer overlap any read.
        let (_, _, cut) = aborts[aborts.len() - 10];
        let start = log.delete_records_before(Offset(cut + 1)).await.unwrap();
        let expected: Vec<AbortedTransaction> = aborts
            .iter()
            .filter(|&&(_, _, last)| last >= start.0)
            .map(|&(id, first, _)| aborted(id, first))
            .collect();
        assert_eq!(expected.len(), 9);
        assert_eq!(read_aborted(&log, start).await, expected);
        let log = reopen(log, true, dir.path(), &config).await;
        assert_eq!(read_aborted(&log, start).await, expected);
        log.close().await.unwrap();
    });
}

#[test]
fn markers_fence_older_epochs_across_reopen() {
    for clean in [true, false] {
        run(move || async move {
            let dir = temp_dir();
            let config = small_config();
            let mut log = open(dir.path(), &config, &cache()).await;
            log.append(txn_data(7, 0, 0, 1, 10), 0, 0).await.unwrap();
            // The coordinator aborts with a bumped epoch (timeout or fencing).
            log.append(marker(7, 1, false, 0), 0, 0).await.unwrap();
            // An idempotent (non-transactional) producer fenced by an empty transaction's marker.
            log.append(with_producer(&plain(10), 8, 2, 0), 0, 0)
                .await
                .unwrap();
            log.append(marker(8, 3, true, 0), 0, 0).await.unwrap();
            for _ in 0..2 {
                assert!(matches!(
                    log.append(txn_data(7, 0, 1, 1, 10), 0, 0).await,
                    Err(StorageError::InvalidProducerEpoch {
                        producer_id: 7,
                        epoch: 0,
                        current_epoch: 1
                    })
                ));
                assert!(matches!(
                    log.append(marker(7, 0, true, 0), 0, 0).await,
                    Err(StorageError::InvalidProducerEpoch { .. })
                ));
                assert!(matches!(
                    log.append(with_producer(&plain(10), 8, 2, 1), 0, 0).await,
                    Err(StorageError::InvalidProducerEpoch {
                        current_epoch: 3,
                        ..
                    })
                ));
                log = reopen(log, clean, dir.path(), &config).await;
            }
            // The new incarnation starts at sequence 0 with the new epoch.
            let data = log.append(txn_data(7, 1, 0, 1, 10), 0, 0).await.unwrap();
            assert_eq!(log.last_stable_offset(), data.base_offset);
            log.append(marker(7, 1, true, 0), 0, 0).await.unwrap();
            assert_eq!(log.last_stable_offset(), log.high_watermark());
            log.append(with_producer(&plain(10), 8, 3, 0), 0, 0)
                .await
                .unwrap();
            log.close().await.unwrap();
        });
    }
}

#[test]
fn producers_describe_epochs_sequences_and_open_transactions() {
    for clean in [true, false] {
        run(move || async move {
            let dir = temp_dir();
            let config = small_config();
            let mut log = open(dir.path(), &config, &cache()).await;
            log.append(plain(10), 0, 0).await.unwrap();
            let idempotent = batch_of(3, 10, 5_000, b'i');
            log.append(with_producer(&idempotent, 1, 0, 0), 0, 0)
                .await
                .unwrap();
            log.append(with_producer(&batch_of(2, 10, 6_000, b'i'), 1, 0, 3), 0, 0)
                .await
                .unwrap();
            let open_txn = log.append(txn_data(2, 1, 0, 2, 10), 0, 0).await.unwrap();
            log.append(txn_data(3, 2, 0, 4, 10), 0, 0).await.unwrap();
            log.append(marker(3, 2, true, 5), 0, 0).await.unwrap();
            let expected = vec![
                ProducerInfo {
                    producer_id: 1,
                    producer_epoch: 0,
                    last_sequence: 4,
                    last_timestamp: 6_000,
                    coordinator_epoch: -1,
                    current_txn_start_offset: -1,
                },
                ProducerInfo {
                    producer_id: 2,
                    producer_epoch: 1,
                    last_sequence: 1,
                    last_timestamp: 1_000,
                    coordinator_epoch: -1,
                    current_txn_start_offset: open_txn.base_offset.0,
                },
                ProducerInfo {
                    producer_id: 3,
                    producer_epoch: 2,
                    last_sequence: 3,
                    last_timestamp: 2_000,
                    coordinator_epoch: 5,
                    current_txn_start_offset: -1,
                },
            ];
            assert_eq!(log.producers(), expected);
            log = reopen(log, clean, dir.path(), &config).await;
            assert_eq!(log.producers(), expected, "clean={clean}");
            log.close().await.unwrap();
        });
    }
}

#[test]
fn wait_for_stable_wakes_when_a_marker_ends_the_transaction() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        let data = log.append(txn_data(1, 0, 0, 1, 10), 0, 0).await.unwrap();
        let woken = Rc::new(std::cell::Cell::new(false));
        let waiter = glommio::spawn_local({
            let (log, woken) = (log.clone(), woken.clone());
            async move {
                log.wait_for_stable(data.base_offset).await;
                woken.set(true);
            }
        });
        log.append(plain(10), 0, 0).await.unwrap();
        glommio::timer::sleep(DROP_SETTLE).await;
        assert!(!woken.get(), "data alone does not move the LSO");
        log.append(marker(1, 0, true, 0), 0, 0).await.unwrap();
        waiter.await;
        assert!(woken.get());
        assert_eq!(log.last_stable_offset(), Offset(3));
        log.close().await.unwrap();
    });
}
