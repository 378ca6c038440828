//! Behaviour of `PartitionLog` through its public API: offsets and reads (start inside a
//! batch, KIP-74 `min_one_batch`), durability counters (group commit), segment rolls,
//! retention, DeleteRecords, timestamps, cache eviction and cold reads, reopen, truncation,
//! idempotent producers, limits.

use super::*;
use crate::config::SyncPolicy;
use crate::model::{Offset, TimestampType};
use crate::storage::StorageError;

#[test]
fn append_assigns_dense_offsets_and_reads_from_inside_a_batch() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        let first = log.append(batch_of(3, 10, 1000, b'a'), 5, 0).await.unwrap();
        assert_eq!(
            (first.base_offset, first.last_offset),
            (Offset(0), Offset(2))
        );
        let second = log.append(batch_of(2, 10, 1001, b'b'), 5, 0).await.unwrap();
        assert_eq!(
            (second.base_offset, second.last_offset),
            (Offset(3), Offset(4))
        );
        assert!(!second.duplicate);
        assert_eq!(log.log_end_offset(), Offset(5));
        assert_eq!(log.high_watermark(), Offset(5));
        let read = log.read(Offset(1), 1 << 20, false).await.unwrap();
        assert_eq!(read.batches.len(), 2);
        assert_eq!(
            base_offset(&read.batches[0]),
            0,
            "starts with the batch holding 1"
        );
        let read = log.read(Offset(4), 1 << 20, false).await.unwrap();
        assert_eq!(base_offset(&read.batches[0]), 3);
        let expected = stamped(&batch_of(2, 10, 1001, b'b'), 3, 5);
        assert_eq!(
            &read.batches[0][..],
            &expected[..],
            "stored exactly, only stamped"
        );
        assert!(
            log.read(Offset(5), 100, true)
                .await
                .unwrap()
                .batches
                .is_empty()
        );
        assert!(matches!(
            log.read(Offset(6), 100, true).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn min_one_batch_and_max_bytes() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        for i in 0..4 {
            log.append(batch_of(1, 500, i, b'x'), 0, 0).await.unwrap();
        }
        let size = batch_of(1, 500, 0, b'x').len();
        let none = log.read(Offset(0), size - 1, false).await.unwrap();
        assert!(
            none.batches.is_empty(),
            "first batch too big without min_one_batch"
        );
        let one = log.read(Offset(0), 10, true).await.unwrap();
        assert_eq!(
            one.batches.len(),
            1,
            "KIP-74: one batch even if over max_bytes"
        );
        let two = log.read(Offset(0), 2 * size + 1, true).await.unwrap();
        assert_eq!(two.batches.len(), 2);
        assert_eq!(two.bytes(), 2 * size);
        log.close().await.unwrap();
    });
}

#[test]
fn invalid_and_oversized_batches_are_rejected() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        config.batch_bytes_max = 2000;
        let log = open(dir.path(), &config, &cache()).await;
        let mut bad = batch_of(1, 10, 0, b'x').to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            log.append(Bytes::from(bad), 0, 0).await,
            Err(StorageError::InvalidBatch(_))
        ));
        assert!(matches!(
            log.append(batch_of(1, 3000, 0, b'x'), 0, 0).await,
            Err(StorageError::BatchTooLarge { .. })
        ));
        assert!(log.append(Bytes::new(), 0, 0).await.is_err());
        assert_eq!(log.log_end_offset(), Offset(0));
        log.close().await.unwrap();
    });
}

/// The client path (`append_from_client`) applies Kafka's LogValidator rules before
/// anything is stored: a batch whose lastOffsetDelta is 2^31-1 (one record) neither moves
/// the log end nor rolls a segment; the next valid batch still gets offset 0.
#[test]
fn client_batches_are_validated_before_anything_is_stored() {
    run(|| async {
        use crate::model::validation::{InvalidBatch, ValidationError};
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        let mut huge_delta = batch_of(1, 10, 0, b'x').to_vec();
        huge_delta[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        batch::recompute_crc(&mut huge_delta);
        for _ in 0..3 {
            let refused = log
                .append_from_client(bytes::BytesMut::from(&huge_delta[..]), 0, 0)
                .await;
            assert!(matches!(
                refused,
                Err(StorageError::Validation(ValidationError::Invalid(
                    InvalidBatch::CountMismatch { .. }
                )))
            ));
        }
        // Two batches in one request, and a control batch: refused (the broker's own
        // path still takes both).
        let mut two = batch_of(1, 10, 0, b'a').to_vec();
        two.extend_from_slice(&batch_of(1, 10, 0, b'b'));
        assert!(
            log.append_from_client(bytes::BytesMut::from(&two[..]), 0, 0)
                .await
                .is_err()
        );
        assert_eq!(log.log_end_offset(), Offset(0));
        assert_eq!(log.stats().segments, 1);
        let appended = log
            .append_from_client(batch_of(3, 10, 0, b'y').into(), 0, 0)
            .await
            .unwrap();
        assert_eq!(
            (appended.base_offset, appended.last_offset),
            (Offset(0), Offset(2))
        );
        log.close().await.unwrap();
    });
}

#[test]
fn log_append_time_is_stamped_with_valid_crc() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        config.timestamp_type = TimestampType::LogAppendTime;
        let log = open(dir.path(), &config, &cache()).await;
        let result = log.append(batch_of(2, 10, 5, b'x'), 0, 777).await.unwrap();
        assert_eq!(result.log_append_time_ms, 777);
        let read = log.read(Offset(0), 1 << 20, true).await.unwrap();
        let header = batch::RecordBatchHeader::view(&read.batches[0]).unwrap();
        assert_eq!(header.max_timestamp.get(), 777);
        assert!(batch::validate_batch(&read.batches[0]).is_ok());
        log.close().await.unwrap();
    });
}

#[test]
fn group_commit_shares_syncs_between_concurrent_waiters() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        const WAITERS: usize = 32;
        let syncs_before = log.stats().syncs;
        let mut tasks = Vec::new();
        for i in 0..WAITERS {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let result = log
                    .append(batch_of(1, 100, i as i64, b'g'), 0, 0)
                    .await
                    .unwrap();
                log.wait_synced(result.last_offset).await.unwrap();
            }));
        }
        for task in tasks {
            task.await;
        }
        let syncs = log.stats().syncs - syncs_before;
        assert!(
            syncs < WAITERS as u64 / 2,
            "{syncs} syncs for {WAITERS} waiters"
        );
        assert_eq!(log.synced_offset(), Offset(WAITERS as i64));
        log.close().await.unwrap();
    });
}

#[test]
fn interval_and_bytes_policies_still_sync_for_waiters() {
    for policy in [SyncPolicy::Interval, SyncPolicy::Bytes] {
        run(move || async move {
            let dir = temp_dir();
            let mut config = small_config();
            config.sync_policy = policy;
            config.sync_interval_ms = 600_000;
            config.sync_bytes = 1 << 30;
            let log = open(dir.path(), &config, &cache()).await;
            let result = log.append(batch_of(1, 100, 0, b's'), 0, 0).await.unwrap();
            log.wait_flushed(result.last_offset).await.unwrap();
            assert_eq!(
                log.synced_offset(),
                Offset(0),
                "{policy:?}: no sync unless asked"
            );
            log.wait_synced(result.last_offset).await.unwrap();
            assert_eq!(log.synced_offset(), Offset(1));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn back_pressure_with_a_tiny_write_buffer() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        config.write_buffer_bytes_max = 8 * 1024;
        let log = open(dir.path(), &config, &cache()).await;
        let mut tasks = Vec::new();
        for task in 0..4 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for i in 0..50 {
                    let batch = batch_of(1, 3000, i, b'0' + task as u8);
                    log.append(batch, 0, 0).await.unwrap();
                    // Admitted but not yet copied <= 8 KiB; copied and in flight <= 8 chunks.
                    assert!(log.stats().pending_bytes <= 8 * 1024 + 3100 + 8 * 16 * 1024);
                }
            }));
        }
        for task in tasks {
            task.await;
        }
        assert_eq!(log.log_end_offset(), Offset(200));
        assert_eq!(read_all(&log).await.len(), 200);
        log.close().await.unwrap();
    });
}

#[test]
fn segments_roll_by_size_and_by_time() {
    run(|| async {
        let dir = temp_dir();
        let config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..40 {
            log.append(batch_of(1, 4000, i, b'r'), 0, 0).await.unwrap();
        }
        // 40 × ~4 KiB over 64 KiB segments.
        assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
        let count = log.segment_count();
        let later = config.segment_ms as i64 + 1;
        log.append(batch_of(1, 10, 0, b'r'), 0, later)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), count + 1, "rolled by age");
        log.append(batch_of(1, 10, 0, b'r'), 0, later)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), count + 1, "young segment not rolled");
        let all = read_all(&log).await;
        assert_eq!(all.len(), 42);
        log.close().await.unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "00000000000000000000.log"));
        assert!(names.iter().any(|n| n == "00000000000000000000.index"));
        assert!(names.iter().any(|n| n == "00000000000000000000.timeindex"));
    });
}

#[test]
fn retention_by_time_and_size_and_delete_records() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..64 {
            log.append(batch_of(1, 4000, 1000 + i, b't'), 0, 0)
                .await
                .unwrap();
        }
        let segments = log.segment_count();
        assert!(segments >= 4);
        log.close().await.unwrap();
        drop(log);
        // Time: everything older than 10 ms at now = 1030 is in the first segments.
        config.retention_ms = 10;
        let log = open(dir.path(), &config, &cache()).await;
        let deleted = log.apply_retention(1030).await.unwrap();
        assert!(deleted >= 1, "time retention deleted nothing");
        let start = log.log_start_offset();
        assert!(start.0 > 0);
        let first = log.read(start, 100, true).await.unwrap();
        assert_eq!(base_offset(&first.batches[0]), start.0);
        assert!(matches!(
            log.read(Offset(0), 100, true).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // Size: keep at most ~2 segments.
        config.retention_ms = -1;
        config.retention_bytes = 2 * 64 * 1024;
        log.update_config(config.clone());
        log.apply_retention(0).await.unwrap();
        assert!(log.size_bytes() <= 3 * 64 * 1024, "{}", log.size_bytes());
        // DeleteRecords: persisted, clamped to the high watermark.
        let target = Offset(log.log_start_offset().0 + 3);
        assert_eq!(log.delete_records_before(target).await.unwrap(), target);
        assert_eq!(
            log.delete_records_before(Offset(1000)).await.unwrap(),
            Offset(64)
        );
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), &config, &cache()).await;
        assert_eq!(
            log.log_start_offset(),
            Offset(64),
            "log start survives restart"
        );
        let before = log.segment_count();
        assert_eq!(log.apply_retention(0).await.unwrap(), before - 1);
        assert_eq!(log.segment_count(), 1);
        log.append(batch_of(1, 10, 0, b't'), 0, 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(65));
        log.close().await.unwrap();
    });
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        // Timestamps 0, 10, 20, ... with a dip, across several segments.
        for i in 0..50i64 {
            let ts = if i == 30 { 5 } else { i * 10 };
            log.append(batch_of(2, 3000, ts, b'x'), 0, 0).await.unwrap();
        }
        let check = |found: Option<(Offset, i64)>, offset: i64, ts: i64| {
            assert_eq!(found, Some((Offset(offset), ts)));
        };
        check(log.offset_for_timestamp(-5).await.unwrap(), 0, 0);
        check(log.offset_for_timestamp(0).await.unwrap(), 0, 0);
        check(log.offset_for_timestamp(95).await.unwrap(), 20, 100);
        check(log.offset_for_timestamp(300).await.unwrap(), 62, 310);
        check(log.offset_for_timestamp(490).await.unwrap(), 98, 490);
        assert_eq!(log.offset_for_timestamp(491).await.unwrap(), None);
        check(log.max_timestamp().await.unwrap(), 98, 490);
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), &small_config(), &cache()).await;
        check(log.offset_for_timestamp(95).await.unwrap(), 20, 100);
        check(log.max_timestamp().await.unwrap(), 98, 490);
        log.close().await.unwrap();
    });
}

#[test]
fn cache_evicts_under_budget_and_cold_reads_come_from_disk() {
    run(|| async {
        let dir = temp_dir();
        let shard_cache = Rc::new(BatchCache::new(32 * 1024));
        let log = open(dir.path(), &small_config(), &shard_cache).await;
        let mut expected = Vec::new();
        for i in 0..100 {
            let batch = batch_of(1, 1000, i, (i % 251) as u8);
            let result = log.append(batch.clone(), 3, 0).await.unwrap();
            expected.push(stamped(&batch, result.base_offset.0, 3));
            log.wait_synced(result.last_offset).await.unwrap();
            assert!(shard_cache.stats().used_bytes <= 32 * 1024);
        }
        let stats = shard_cache.stats();
        assert!(stats.evictions > 0);
        let misses = stats.misses;
        let all = read_all(&log).await;
        assert_eq!(all.len(), 100);
        for (got, want) in all.iter().zip(&expected) {
            assert_eq!(&got[..], &want[..]);
        }
        assert!(
            shard_cache.stats().misses > misses,
            "evicted data read from disk"
        );
        assert!(
            shard_cache.stats().hits > 0,
            "recent data served from memory"
        );
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), &small_config(), &shard_cache).await;
        let all = read_all(&log).await;
        assert_eq!(all.len(), 100);
        for (got, want) in all.iter().zip(&expected) {
            assert_eq!(&got[..], &want[..], "cold read after reopen");
        }
        log.close().await.unwrap();
    });
}

#[test]
fn open_segment_files_stay_under_the_limit() {
    run(|| async {
        let dir = temp_dir();
        let shard_cache = Rc::new(BatchCache::new(1 << 20));
        let mut config = small_config();
        config.open_segments_max = 2;
        let log = open(dir.path(), &config, &shard_cache).await;
        for i in 0..80 {
            log.append(batch_of(1, 4000, i, b'o'), 0, 0).await.unwrap();
        }
        log.close().await.unwrap();
        drop(log);
        assert!(shard_cache.stats().open_segment_files <= 2);
        let second_cache = Rc::new(BatchCache::new(1 << 20));
        let log = open(dir.path(), &config, &second_cache).await;
        assert!(log.segment_count() > 4);
        assert_eq!(read_all(&log).await.len(), 80);
        assert!(second_cache.stats().open_segment_files <= 2);
        log.close().await.unwrap();
    });
}

#[test]
fn reopen_after_clean_close_and_after_drop() {
    for clean in [true, false] {
        run(move || async move {
            let dir = temp_dir();
            let config = small_config();
            let log = open(dir.path(), &config, &cache()).await;
            let mut expected = Vec::new();
            for i in 0..30 {
                let batch = batch_of(1 + i % 3, 700, i as i64, i as u8);
                let result = log.append(batch.clone(), 7, 0).await.unwrap();
                expected.push(stamped(&batch, result.base_offset.0, 7));
            }
            let end = log.log_end_offset();
            log.wait_synced(Offset(end.0 - 1)).await.unwrap();
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            // Let a dropped log's flusher finish.
            glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
            let log = open(dir.path(), &config, &cache()).await;
            assert_eq!(log.log_end_offset(), end, "clean={clean}");
            let all = read_all(&log).await;
            let got: Vec<&[u8]> = all.iter().map(|b| &b[..]).collect();
            let want: Vec<&[u8]> = expected.iter().map(|b| &b[..]).collect();
            assert_eq!(got, want, "clean={clean}");
            assert_eq!(log.leader_epochs(), vec![(7, Offset(0))]);
            // Appends continue the tail block correctly.
            let batch = batch_of(1, 10, 99, b'z');
            log.append(batch.clone(), 8, 0).await.unwrap();
            log.close().await.unwrap();
            drop(log);
            let log = open(dir.path(), &config, &cache()).await;
            let all = read_all(&log).await;
            assert_eq!(&all[30][..], &stamped(&batch, end.0, 8)[..]);
            assert_eq!(log.leader_epochs(), vec![(7, Offset(0)), (8, end)]);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn truncate_to_cuts_memory_disk_and_survives_reopen() {
    run(|| async {
        let dir = temp_dir();
        let config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..60 {
            let result = log
                .append(batch_of(2, 2000, i, b'k'), (i / 20) as i32, 0)
                .await
                .unwrap();
            log.wait_synced(result.last_offset).await.unwrap();
        }
        let segments = log.segment_count();
        // Offset 51 is inside the batch [50, 51]: the whole batch goes.
        assert_eq!(log.truncate_to(Offset(51)).await.unwrap(), Offset(50));
        assert_eq!(log.log_end_offset(), Offset(50));
        assert_eq!(read_all(&log).await.len(), 25);
        assert_eq!(log.leader_epochs(), vec![(0, Offset(0)), (1, Offset(40))]);
        // Deep truncation drops whole segments.
        assert_eq!(log.truncate_to(Offset(10)).await.unwrap(), Offset(10));
        assert!(log.segment_count() < segments);
        let result = log.append(batch_of(1, 10, 0, b'n'), 4, 0).await.unwrap();
        assert_eq!(result.base_offset, Offset(10));
        log.wait_synced(result.last_offset).await.unwrap();
        // Pending (unwritten) data can be truncated too.
        let pending = log.append(batch_of(1, 10, 0, b'p'), 4, 0).await.unwrap();
        assert_eq!(
            log.truncate_to(pending.base_offset).await.unwrap(),
            Offset(11)
        );
        drop(log);
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        let log = open(dir.path(), &config, &cache()).await;
        assert_eq!(log.log_end_offset(), Offset(11));
        let all = read_all(&log).await;
        assert_eq!(all.len(), 6);
        assert_eq!(base_offset(&all[5]), 10);
        assert_eq!(log.leader_epochs(), vec![(0, Offset(0)), (4, Offset(10))]);
        log.close().await.unwrap();
    });
}

#[test]
fn idempotent_producer_dedup_gaps_and_fencing_survive_reopen() {
    for clean in [true, false] {
        run(move || async move {
            let dir = temp_dir();
            let config = small_config();
            let log = open(dir.path(), &config, &cache()).await;
            let plain = batch_of(2, 100, 0, b'i');
            let first = log
                .append(with_producer(&plain, 9, 0, 0), 0, 0)
                .await
                .unwrap();
            let second = log
                .append(with_producer(&plain, 9, 0, 2), 0, 0)
                .await
                .unwrap();
            assert_eq!(second.base_offset, Offset(2));
            let again = log
                .append(with_producer(&plain, 9, 0, 0), 0, 0)
                .await
                .unwrap();
            assert!(again.duplicate);
            assert_eq!(
                (again.base_offset, again.last_offset),
                (first.base_offset, first.last_offset)
            );
            assert_eq!(log.log_end_offset(), Offset(4), "duplicate not stored");
            assert!(matches!(
                log.append(with_producer(&plain, 9, 0, 7), 0, 0).await,
                Err(StorageError::OutOfOrderSequence { expected: 4, .. })
            ));
            log.wait_synced(Offset(3)).await.unwrap();
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
            let log = open(dir.path(), &config, &cache()).await;
            let again = log
                .append(with_producer(&plain, 9, 0, 2), 0, 0)
                .await
                .unwrap();
            assert!(again.duplicate, "clean={clean}: state recovered");
            assert_eq!(again.base_offset, Offset(2));
            log.append(with_producer(&plain, 9, 1, 0), 0, 0)
                .await
                .unwrap();
            assert!(matches!(
                log.append(with_producer(&plain, 9, 0, 4), 0, 0).await,
                Err(StorageError::InvalidProducerEpoch { .. })
            ));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn wait_for_append_wakes_on_append_and_close() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_for_append(Offset(0)).await })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        log.append(batch_of(1, 10, 0, b'w'), 0, 0).await.unwrap();
        waiter.await;
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_for_append(Offset(5)).await })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        log.close().await.unwrap();
        waiter.await;
        assert!(matches!(
            log.append(batch_of(1, 10, 0, b'w'), 0, 0).await,
            Err(StorageError::Closed)
        ));
    });
}

#[test]
fn interval_and_bytes_policies_sync_on_their_own() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        config.sync_policy = SyncPolicy::Interval;
        config.sync_interval_ms = 30;
        let log = open(dir.path(), &config, &cache()).await;
        let result = log.append(batch_of(1, 100, 0, b'i'), 0, 0).await.unwrap();
        log.wait_flushed(result.last_offset).await.unwrap();
        assert_eq!(
            synced_eventually(&log, 1).await,
            Offset(1),
            "interval sync without a waiter"
        );
        log.close().await.unwrap();

        let dir = temp_dir();
        config.sync_policy = SyncPolicy::Bytes;
        config.sync_bytes = 10_000;
        let log = open(dir.path(), &config, &cache()).await;
        let mut last = Offset(0);
        for i in 0..20 {
            last = log
                .append(batch_of(1, 1000, i, b'b'), 0, 0)
                .await
                .unwrap()
                .last_offset;
            log.wait_flushed(last).await.unwrap();
        }
        let synced = synced_eventually(&log, 9).await;
        assert!(synced.0 >= 9, "bytes policy synced only up to {synced}");
        assert!(log.stats().syncs < 20, "bytes policy synced every batch");
        assert!(log.synced_offset() <= last.next());
        log.close().await.unwrap();
    });
}

/// Polls (up to 5 s: the shared test machines have slow fdatasync spikes) until the log's
/// synced offset reaches `offset`; returns it.
async fn synced_eventually(log: &PartitionLog, offset: i64) -> Offset {
    for _ in 0..500 {
        if log.synced_offset().0 >= offset {
            break;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
    }
    log.synced_offset()
}

#[test]
fn records_become_visible_once_flushed() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        config.visible_when_flushed = true;
        let log = open(dir.path(), &config, &cache()).await;
        let appended = log.append(batch_of(3, 10, 1000, b'v'), 0, 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(3));
        // Visible no earlier than flushed: the high watermark never passes the flushed offset.
        assert!(log.high_watermark() <= log.flushed_offset());
        log.wait_flushed(appended.last_offset).await.unwrap();
        log.wait_for_append(Offset(2)).await;
        assert_eq!(log.high_watermark(), Offset(3));
        let read = log.read(Offset(0), 1 << 20, false).await.unwrap();
        assert_eq!(read.batches.len(), 1);
        assert_eq!(read.high_watermark, Offset(3));
    });
}

#[test]
fn a_follower_stores_the_leaders_batches_as_they_are() {
    run(|| async {
        let (leader_dir, follower_dir) = (temp_dir(), temp_dir());
        let config = small_config();
        let leader = open(leader_dir.path(), &config, &cache()).await;
        let follower = open(follower_dir.path(), &config, &cache()).await;
        leader
            .append(batch_of(3, 100, 1, b'a'), 0, 0)
            .await
            .unwrap();
        let idempotent = with_producer(&batch_of(2, 100, 2, b'b'), 7, 0, 0);
        leader.append(idempotent, 0, 0).await.unwrap();
        leader
            .append(batch_of(1, 100, 3, b'c'), 2, 0)
            .await
            .unwrap();
        let batches = read_all(&leader).await;
        assert_eq!(batches.len(), 3);

        // Two batches in one fetch, then the third.
        let mut first_two = batches[0].to_vec();
        first_two.extend_from_slice(&batches[1]);
        let result = follower
            .append_replicated(Bytes::from(first_two), 0)
            .await
            .unwrap();
        assert_eq!(
            (result.base_offset, result.last_offset),
            (Offset(0), Offset(4))
        );
        follower
            .append_replicated(batches[2].clone(), 0)
            .await
            .unwrap();
        assert_eq!(read_all(&follower).await, batches, "byte for byte");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(follower.producers(), leader.producers());

        // Nothing that does not continue the log, nothing corrupt, is stored.
        let again = follower.append_replicated(batches[0].clone(), 0).await;
        assert!(matches!(
            again,
            Err(StorageError::UnexpectedAppendOffset {
                base_offset: 0,
                expected: 6
            })
        ));
        let mut corrupt = stamped(&batch_of(1, 100, 4, b'd'), 6, 2);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let corrupt = follower.append_replicated(Bytes::from(corrupt), 0).await;
        assert!(matches!(corrupt, Err(StorageError::InvalidBatch(_))));
        assert_eq!(follower.log_end_offset(), Offset(6));

        let gap = Bytes::from(stamped(&batch_of(1, 100, 5, b'e'), 9, 3));
        let gap = follower.append_replicated(gap, 0).await;
        assert!(matches!(
            gap,
            Err(StorageError::UnexpectedAppendOffset {
                base_offset: 9,
                expected: 6
            })
        ));
        assert_eq!(follower.log_end_offset(), Offset(6));

        // What a follower stored survives a restart as it was.
        let next = Bytes::from(stamped(&batch_of(1, 100, 5, b'e'), 6, 3));
        follower.append_replicated(next, 0).await.unwrap();
        follower.wait_synced(Offset(6)).await.unwrap();
        follower.close().await.unwrap();
        let reopened = open(follower_dir.path(), &config, &cache()).await;
        assert_eq!(reopened.log_end_offset(), Offset(7));
        assert_eq!(read_all(&reopened).await[..3], batches[..]);
        assert_eq!(reopened.leader_epochs().last(), Some(&(3, Offset(6))));
        reopened.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

#[test]
fn a_replicated_high_watermark_caps_what_consumers_see() {
    run(|| async {
        let dir = temp_dir();
        let config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        log.append(batch_of(2, 100, 1, b'a'), 0, 0).await.unwrap();
        assert_eq!(
            log.high_watermark(),
            Offset(2),
            "a single broker shows it at once"
        );
        // Becoming replicated: records not yet on every in-sync replica are hidden again.
        log.set_replicated_high_watermark(Offset(0));
        assert_eq!(log.high_watermark(), Offset(0));
        assert!(read_all(&log).await.is_empty());
        log.append(batch_of(3, 100, 2, b'b'), 0, 0).await.unwrap();
        assert_eq!(log.high_watermark(), Offset(0), "appending shows nothing");
        log.set_replicated_high_watermark(Offset(2));
        assert_eq!(log.high_watermark(), Offset(2));
        assert_eq!(read_all(&log).await.len(), 1);
        log.set_replicated_high_watermark(Offset(1));
        assert_eq!(log.high_watermark(), Offset(2), "never back");
        log.set_replicated_high_watermark(Offset(100));
        assert_eq!(log.high_watermark(), Offset(5), "never past the log end");
        assert_eq!(read_all(&log).await.len(), 2);
        log.close().await.unwrap();
    });
}

#[test]
fn the_replicated_high_watermark_is_checkpointed_and_read_back_at_open() {
    run(|| async {
        let dir = temp_dir();
        let config = small_config();
        let log = open(dir.path(), &config, &cache()).await;
        assert_eq!(
            log.checkpointed_high_watermark(),
            None,
            "a new log has none"
        );
        let appended = log.append(batch_of(5, 100, 1, b'a'), 0, 0).await.unwrap();
        log.wait_synced(appended.last_offset).await.unwrap();
        log.checkpoint_high_watermark().await.unwrap();
        assert_eq!(
            log.checkpointed_high_watermark(),
            None,
            "not replicated: nothing"
        );
        log.set_replicated_high_watermark(Offset(3));
        log.checkpoint_high_watermark().await.unwrap();
        // A crash (no close): the periodic checkpoint is what the next open knows.
        drop(log);
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        let log = open(dir.path(), &config, &cache()).await;
        assert_eq!(log.checkpointed_high_watermark(), Some(Offset(3)));
        assert_eq!(
            log.replicated_high_watermark(),
            None,
            "no role given it yet"
        );
        // A clean close writes the current one; truncation caps what is reported.
        log.set_replicated_high_watermark(Offset(5));
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), &config, &cache()).await;
        assert_eq!(log.checkpointed_high_watermark(), Some(Offset(5)));
        let cut = log.truncate_to(Offset(2)).await.unwrap();
        assert_eq!(cut, Offset(0), "the whole batch holding offset 2 goes");
        assert_eq!(log.checkpointed_high_watermark(), Some(cut));
        log.close().await.unwrap();
    });
}
