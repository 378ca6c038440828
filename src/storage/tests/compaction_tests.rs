//! Compaction and broker-side compression through `PartitionLog`: latest value per key,
//! tombstones and `delete.retention.ms`, `min.compaction.lag.ms`, offsets and reads across
//! gaps (the group/transaction coordinators' replay loop), compressed batches in every
//! codec, crash states of the segment swap, the I/O budget, retention by policy,
//! keyless records and recompression on append.

use super::*;
use crate::model::Offset;
use crate::model::batch::{Compression, RecordBatchHeader};
use crate::model::compression;
use crate::model::records::{NewRecord, encode_batch};
use crate::storage::{CleanupPolicy, CompactionStats, StorageError};
use std::collections::BTreeMap;

const DELETE_RETENTION_MS: i64 = 1000;

fn compact_config() -> LogConfig {
    let mut config = small_config();
    config.cleanup_policy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    config.delete_retention_ms = DELETE_RETENTION_MS;
    config
}

/// One batch of (key, value) records (value None: tombstone) at `timestamp`.
fn keyed(records: &[(String, Option<String>)], timestamp: i64) -> Bytes {
    let records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(k, v)| NewRecord {
            key: Some(k.as_bytes()),
            value: v.as_deref().map(str::as_bytes),
        })
        .collect();
    Bytes::from(encode_batch(&records, timestamp))
}

fn record(key: &str, value: Option<&str>) -> (String, Option<String>) {
    (key.to_string(), value.map(str::to_string))
}

/// (offset, key, value) of every record of `batches`.
fn records_of(batches: &[Bytes]) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    for batch in batches {
        let header = RecordBatchHeader::view(batch).expect("header");
        let bytes = compression::batch_records(batch, 64 << 20).expect("decodes");
        let parsed =
            compression::parse_records(&bytes, header.records_count.get()).expect("parses");
        for r in parsed {
            out.push((
                header.base_offset() + i64::from(r.offset_delta),
                String::from_utf8_lossy(r.key.unwrap_or_default()).into_owned(),
                r.value.map(|v| String::from_utf8_lossy(v).into_owned()),
            ));
        }
    }
    out
}

/// Appends a batch far enough in time to roll the active segment by age, and waits until
/// it is flushed, so every earlier segment is closed and finished.
async fn roll(log: &PartitionLog, config: &LogConfig, now_ms: i64) -> i64 {
    let later = now_ms + config.segment_ms as i64 + 1;
    let sentinel = keyed(&[record("sentinel", Some("s"))], later);
    let appended = log.append(sentinel, 0, later).await.expect("append");
    log.wait_flushed(appended.last_offset)
        .await
        .expect("flushed");
    later
}

/// Offsets of the latest record of each key among `written` (offset order).
fn latest_by_key(
    written: &[(i64, String, Option<String>)],
) -> BTreeMap<String, (i64, Option<String>)> {
    let mut latest = BTreeMap::new();
    for (offset, key, value) in written {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    latest
}

#[test]
fn ten_thousand_updates_over_100_keys_leave_the_latest_100() {
    run(|| async {
        let dir = temp_dir();
        let config = compact_config();
        let log = open(dir.path(), &config, &cache()).await;
        let mut written = Vec::new();
        for chunk in 0..1000 {
            let records: Vec<_> = (0..10)
                .map(|j| {
                    let i = chunk * 10 + j;
                    record(
                        &format!("key-{}", i % 100),
                        Some(&format!("value-{i}-{}", "x".repeat(20))),
                    )
                })
                .collect();
            let appended = log.append(keyed(&records, 1000), 0, 1000).await.unwrap();
            for (j, (k, v)) in records.into_iter().enumerate() {
                written.push((appended.base_offset.0 + j as i64, k, v));
            }
        }
        let segments_before = log.segment_count();
        assert!(segments_before > 4, "{segments_before} segments");
        let now = roll(&log, &config, 1000).await;
        assert!(log.compaction_due(now));
        let stats = log.compact(now).await.unwrap();
        assert_eq!(stats.records_removed, 9900, "{stats:?}");
        assert!(!stats.aborted);
        assert!(stats.segments_rewritten >= segments_before - 1, "{stats:?}");
        let expected: Vec<_> = latest_by_key(&written)
            .into_iter()
            .map(|(k, (offset, v))| (offset, k, v))
            .collect();
        let check = |batches: Vec<Bytes>| {
            let mut found = records_of(&batches);
            assert_eq!(found.pop().map(|r| r.1), Some("sentinel".to_string()));
            found.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(
                found, want,
                "exactly the latest value of each of the 100 keys"
            );
        };
        check(read_all(&log).await);
        assert!(!log.compaction_due(now), "nothing dirty after a pass");
        assert_eq!(log.compact(now).await.unwrap(), CompactionStats::default());
        // Compacted segments, indexes and the cleaner checkpoint survive a restart.
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), &config, &cache()).await;
        check(read_all(&log).await);
        assert!(
            log.compaction_due(now),
            "first check after open reads the checkpoint"
        );
        assert_eq!(log.compact(now).await.unwrap().segments_written, 0);
        assert!(!log.compaction_due(now));
        log.close().await.unwrap();
    });
}

#[test]
fn tombstones_go_after_delete_retention_and_not_before() {
    run(|| async {
        let dir = temp_dir();
        let config = compact_config();
        let log = open(dir.path(), &config, &cache()).await;
        let values: Vec<_> = (0..10)
            .map(|i| record(&format!("k{i}"), Some("v")))
            .collect();
        log.append(keyed(&values, 1000), 0, 1000).await.unwrap();
        let tombstones: Vec<_> = (0..3).map(|i| record(&format!("k{i}"), None)).collect();
        log.append(keyed(&tombstones, 2000), 0, 2000).await.unwrap();
        roll(&log, &config, 2000).await;
        let keys = |records: Vec<(i64, String, Option<String>)>| {
            records
                .into_iter()
                .filter(|r| r.1 != "sentinel")
                .map(|r| (r.0, r.1, r.2.is_none()))
                .collect::<Vec<_>>()
        };
        let mut values_left: Vec<_> = (3..10).map(|i| (i, format!("k{i}"), false)).collect();
        // Young tombstones: the values they delete go, the tombstones stay.
        let deadline = 2000 + DELETE_RETENTION_MS;
        let stats = log.compact(deadline - 1).await.unwrap();
        assert_eq!((stats.records_removed, stats.tombstones_removed), (3, 0));
        assert_eq!(stats.next_tombstone_deadline_ms, deadline);
        let mut expected = values_left.clone();
        expected.extend((0..3).map(|i| (10 + i, format!("k{i}"), true)));
        assert_eq!(keys(records_of(&read_all(&log).await)), expected);
        assert!(!log.compaction_due(deadline - 1));
        assert!(
            log.compaction_due(deadline),
            "the tombstone deadline triggers a pass"
        );
        let stats = log.compact(deadline).await.unwrap();
        assert_eq!(stats.tombstones_removed, 3, "{stats:?}");
        assert_eq!(
            keys(records_of(&read_all(&log).await)),
            values_left.split_off(0)
        );
        assert!(!log.compaction_due(deadline + 1_000_000));
        log.close().await.unwrap();
    });
}

#[test]
fn min_compaction_lag_protects_young_segments() {
    run(|| async {
        let dir = temp_dir();
        let mut config = compact_config();
        config.min_compaction_lag_ms = 60_000;
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..20 {
            let batch = keyed(&[record("same", Some(&i.to_string()))], 10_000);
            log.append(batch, 0, 10_000).await.unwrap();
        }
        roll(&log, &config, 10_000).await;
        // The closed segment's newest record is from 10 000: too young until 70 000.
        assert_eq!(
            log.compact(69_999).await.unwrap(),
            CompactionStats::default()
        );
        assert_eq!(records_of(&read_all(&log).await).len(), 21);
        let stats = log.compact(70_000).await.unwrap();
        assert_eq!(stats.records_removed, 19);
        let left = records_of(&read_all(&log).await);
        assert_eq!(left[0], (19, "same".to_string(), Some("19".to_string())));
        log.close().await.unwrap();
    });
}

/// Reads from every original offset land on the first retained record at or after it,
/// across gaps inside batches, whole batches gone and segments that end in a gap; the
/// coordinators' replay loop (read, continue at the last batch's next offset, stop on an
/// empty read) reaches the end.
#[test]
fn offsets_are_kept_and_reads_cross_gaps() {
    run(|| async {
        let dir = temp_dir();
        let mut config = compact_config();
        config.segment_bytes = 4096;
        let log = open(dir.path(), &config, &cache()).await;
        let mut written = Vec::new();
        for i in 0..400i64 {
            // Every batch holds a "hot" key twice; two in three also a fresh key. Hot keys
            // get rewritten, so batches lose records or go entirely.
            let mut records = vec![
                record(&format!("hot-{}", i % 7), Some(&format!("{i}a"))),
                record(&format!("hot-{}", i % 7), Some(&format!("{i}b"))),
            ];
            if i % 3 != 0 {
                records.push(record(
                    &format!("cold-{i}"),
                    Some(&"c".repeat(i as usize % 50)),
                ));
            }
            let appended = log.append(keyed(&records, 5), 0, 5).await.unwrap();
            for (j, (k, v)) in records.into_iter().enumerate() {
                written.push((appended.base_offset.0 + j as i64, k, v));
            }
        }
        let now = roll(&log, &config, 5).await;
        log.compact(now).await.unwrap();
        let retained = records_of(&read_all(&log).await);
        let latest = latest_by_key(&written);
        let mut expected: Vec<_> = latest.into_iter().map(|(k, (o, v))| (o, k, v)).collect();
        expected.sort();
        let mut found = retained.clone();
        assert_eq!(found.pop().map(|r| r.1), Some("sentinel".to_string()));
        assert_eq!(found, expected);
        assert!(log.last_compaction().batches_removed > 50);
        // Some segment must end in a gap (its last batches went) for this to test the
        // reader's step to the next segment.
        let batch_ends: Vec<i64> = read_all(&log)
            .await
            .iter()
            .map(|b| RecordBatchHeader::view(b).unwrap().next_offset())
            .collect();
        let bases = segment_bases(dir.path());
        assert!(
            bases[1..].iter().any(|base| !batch_ends.contains(base)),
            "no segment ends in a gap: {bases:?}"
        );
        for offset in 0..log.log_end_offset().0 {
            let read = log.read(Offset(offset), 4096, true).await.unwrap();
            let first = records_of(&read.batches)
                .into_iter()
                .find(|r| r.0 >= offset)
                .map(|r| r.0);
            let want = retained.iter().find(|r| r.0 >= offset).map(|r| r.0);
            assert_eq!(first, want, "read at {offset}");
        }
        log.close().await.unwrap();
    });
}

#[test]
fn compressed_batches_keep_their_codec() {
    run(|| async {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let dir = temp_dir();
            let config = compact_config();
            let log = open(dir.path(), &config, &cache()).await;
            for round in 0..30 {
                let records: Vec<_> = (0..20)
                    .map(|k| {
                        record(
                            &format!("k{k}"),
                            Some(&format!("{round}-{}", "z".repeat(100))),
                        )
                    })
                    .collect();
                let plain = keyed(&records, 100);
                let batch = compression::recompress_batch(&plain, codec, 1 << 20)
                    .unwrap()
                    .unwrap();
                log.append(Bytes::from(batch), 0, 100).await.unwrap();
            }
            let now = roll(&log, &config, 100).await;
            let stats = log.compact(now).await.unwrap();
            assert_eq!(stats.records_removed, 29 * 20, "{codec:?}");
            let batches = read_all(&log).await;
            for batch in &batches[..batches.len() - 1] {
                assert_eq!(batch::validate_batch(batch), Ok(batch.len()));
                let header = RecordBatchHeader::view(batch).unwrap();
                assert_eq!(header.compression(), Ok(codec));
            }
            let values: Vec<_> = records_of(&batches)
                .into_iter()
                .filter(|r| r.1 != "sentinel")
                .map(|r| r.2.unwrap_or_default())
                .collect();
            assert_eq!(values.len(), 20);
            assert!(values.iter().all(|v| v.starts_with("29-")), "{codec:?}");
            log.close().await.unwrap();
        }
    });
}

/// Batches produced by librdkafka and kafka-python (300 records, 50 keys, a tombstone,
/// headers) compact in place: the batch keeps its codec and producer fields, and holds
/// the latest record of each key.
#[test]
fn client_batches_compact() {
    run(|| async {
        for client in ["librdkafka", "kafka-python"] {
            for codec in ["gzip", "snappy", "lz4", "zstd"] {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src/model/compression/fixtures")
                    .join(format!("{client}-{codec}.batch"));
                let fixture = std::fs::read(&path).unwrap();
                let source = *RecordBatchHeader::view(&fixture).unwrap();
                let dir = temp_dir();
                let config = compact_config();
                let log = open(dir.path(), &config, &cache()).await;
                log.append(Bytes::from(fixture), 0, 0).await.unwrap();
                let now = roll(&log, &config, source.max_timestamp.get()).await;
                let stats = log.compact(now).await.unwrap();
                assert_eq!(stats.records_removed, 250, "{client} {codec}: {stats:?}");
                let batches = read_all(&log).await;
                let header = RecordBatchHeader::view(&batches[0]).unwrap();
                assert_eq!(header.compression(), source.compression());
                assert_eq!(header.producer_id.get(), source.producer_id.get());
                assert_eq!(header.base_sequence.get(), source.base_sequence.get());
                assert_eq!(header.last_offset_delta.get(), 299);
                assert_eq!(header.records_count.get(), 50);
                let offsets: Vec<i64> = records_of(&batches[..1]).iter().map(|r| r.0).collect();
                assert_eq!(offsets, (250..300).collect::<Vec<_>>());
                log.close().await.unwrap();
            }
        }
    });
}

/// Two logs with the same closed segments: one compacted for real, giving the files of
/// the swap; the other gets those files in each intermediate state a crash can leave, and
/// must open to either the old or the new content, with no leftovers.
#[test]
fn crash_during_the_swap_recovers_a_consistent_log() {
    run(|| async {
        let mut config = compact_config();
        config.segment_bytes = 1 << 20;
        config.segment_ms = 1000;
        let original = temp_dir();
        let log = open(original.path(), &config, &cache()).await;
        let mut now = 0;
        for segment in 0..5 {
            for i in 0..10 {
                let value = format!("{segment}-{i}");
                log.append(
                    keyed(&[record(&format!("k{i}"), Some(&value))], now),
                    0,
                    now,
                )
                .await
                .unwrap();
            }
            now += 2000;
            log.append(keyed(&[record("tick", Some("t"))], now), 0, now)
                .await
                .unwrap();
        }
        let now = roll(&log, &config, now).await;
        log.close().await.unwrap();
        drop(log);
        let old_content = {
            let log = open(original.path(), &config, &cache()).await;
            let content = records_of(&read_all(&log).await);
            log.close().await.unwrap();
            content
        };
        let compacted = temp_dir();
        copy_dir(original.path(), compacted.path());
        let (new_content, old_bases, end) = {
            let log = open(compacted.path(), &config, &cache()).await;
            let bases = segment_bases(compacted.path());
            let stats = log.compact(now).await.unwrap();
            assert_eq!(stats.segments_written, 1, "{stats:?}");
            let content = records_of(&read_all(&log).await);
            log.close().await.unwrap();
            let after = segment_bases(compacted.path());
            let end = after[1];
            (
                content,
                bases.into_iter().filter(|&b| b < end).collect::<Vec<_>>(),
                end,
            )
        };
        assert!(old_bases.len() >= 5, "{old_bases:?}");
        assert_ne!(old_content, new_content);
        let name = |base: i64, suffix: &str| format!("{base:020}.{suffix}");
        let new_file =
            |suffix: &str| std::fs::read(compacted.path().join(name(0, suffix))).unwrap();
        let marker = format!("0\n0\n{end}\n");
        // (description, files to write, old segment bases to delete, expect new content)
        type State<'a> = (&'a str, Vec<(String, Vec<u8>)>, Vec<i64>, bool);
        let cleaned = |suffix: &str| (format!("{}.cleaned", name(0, suffix)), new_file(suffix));
        let all_cleaned = || vec![cleaned("log"), cleaned("index"), cleaned("timeindex")];
        let with_marker = |mut files: Vec<(String, Vec<u8>)>| {
            files.push((name(0, "swap"), marker.clone().into_bytes()));
            files
        };
        let states: Vec<State<'_>> = vec![
            ("cleaned files, no marker", all_cleaned(), vec![], false),
            (
                "partial cleaned log, no marker",
                vec![cleaned("log")],
                vec![],
                false,
            ),
            ("marker written", with_marker(all_cleaned()), vec![], true),
            (
                "some old segments deleted",
                with_marker(all_cleaned()),
                old_bases[1..3].to_vec(),
                true,
            ),
            (
                "indexes renamed, log not yet",
                with_marker(vec![
                    cleaned("log"),
                    (name(0, "index"), new_file("index")),
                    (name(0, "timeindex"), new_file("timeindex")),
                ]),
                old_bases[1..].to_vec(),
                true,
            ),
            (
                "everything renamed, marker left",
                with_marker(vec![
                    (name(0, "log"), new_file("log")),
                    (name(0, "index"), new_file("index")),
                    (name(0, "timeindex"), new_file("timeindex")),
                ]),
                old_bases[1..].to_vec(),
                true,
            ),
            (
                "abandoned: log.cleaned removed first",
                with_marker(vec![cleaned("index")]),
                vec![],
                false,
            ),
        ];
        for (description, files, deleted, expect_new) in states {
            let dir = temp_dir();
            copy_dir(original.path(), dir.path());
            for (file, bytes) in files {
                std::fs::write(dir.path().join(file), bytes).unwrap();
            }
            for base in deleted {
                for suffix in ["log", "index", "timeindex"] {
                    let _ = std::fs::remove_file(dir.path().join(name(base, suffix)));
                }
            }
            let log = open(dir.path(), &config, &cache()).await;
            let content = records_of(&read_all(&log).await);
            let want = if expect_new {
                &new_content
            } else {
                &old_content
            };
            assert_eq!(&content, want, "{description}");
            log.close().await.unwrap();
            let leftovers: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .collect();
            assert!(leftovers.is_empty(), "{description}: {leftovers:?}");
        }
    });
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn segment_bases(dir: &std::path::Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log").and_then(|stem| stem.parse().ok())
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Counting bytes: a pass charges every byte it reads and writes to the budget, and the
/// waits it asks for add up to what the rate implies for them.
#[test]
fn the_io_budget_is_respected() {
    run(|| async {
        let dir = temp_dir();
        let mut config = compact_config();
        config.compaction_io_bytes_per_second = 1 << 20;
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..300 {
            let records: Vec<_> = (0..4)
                .map(|j| record(&format!("k{}", (i * 4 + j) % 40), Some(&"v".repeat(300))))
                .collect();
            log.append(keyed(&records, 1), 0, 1).await.unwrap();
        }
        roll(&log, &config, 1).await;
        let sentinel = read_all(&log).await.last().map_or(0, |b| b.len() as u64);
        let closed_bytes = log.size_bytes() - sentinel;
        let started = std::time::Instant::now();
        let stats = log.compact(10).await.unwrap();
        let elapsed = started.elapsed();
        // The map pass and the rewrite each read every closed byte at least once.
        assert!(
            stats.bytes_read >= 2 * closed_bytes,
            "{stats:?} of {closed_bytes}"
        );
        // Every byte of the rewritten segments was written (plus block padding).
        assert!(
            stats.bytes_written >= log.size_bytes() - sentinel,
            "{stats:?}"
        );
        assert!(
            stats.bytes_written > 0 && stats.throttled_ms > 0,
            "{stats:?}"
        );
        // Bytes charged never outran the budget: burst + rate x elapsed.
        let charged = stats.bytes_read + stats.bytes_written;
        let rate = config.compaction_io_bytes_per_second;
        let allowed = rate / 10 + (rate as f64 * elapsed.as_secs_f64()) as u64;
        assert!(
            charged <= allowed,
            "{charged} bytes in {elapsed:?}: {stats:?}"
        );
        let owed_ms = (charged - rate / 10) * 1000 / rate;
        assert!(
            stats.throttled_ms <= owed_ms + 1,
            "{stats:?}: owed {owed_ms} ms"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn time_and_size_retention_only_with_delete() {
    run(|| async {
        let dir = temp_dir();
        let mut config = compact_config();
        config.retention_ms = 10;
        config.retention_bytes = 1;
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..64 {
            log.append(
                keyed(&[record(&format!("k{i}"), Some(&"r".repeat(4000)))], 1000),
                0,
                1000,
            )
            .await
            .unwrap();
        }
        roll(&log, &config, 1000).await;
        let segments = log.segment_count();
        assert!(segments > 2);
        assert_eq!(
            log.apply_retention(1_000_000).await.unwrap(),
            0,
            "compact only"
        );
        config.cleanup_policy = CleanupPolicy::parse("compact,delete");
        log.update_config(config.clone());
        assert_eq!(log.apply_retention(1_000_000).await.unwrap(), segments - 1);
        log.close().await.unwrap();
    });
}

#[test]
fn keyless_records_are_rejected_on_compacted_topics() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &compact_config(), &cache()).await;
        let keyless = batch_of(2, 10, 0, b'n');
        assert!(matches!(
            log.append(keyless, 0, 0).await,
            Err(StorageError::InvalidRecord { .. })
        ));
        assert_eq!(log.log_end_offset(), Offset(0));
        log.append(keyed(&[record("k", Some("v"))], 0), 0, 0)
            .await
            .unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn appends_recompress_to_the_topic_codec() {
    run(|| async {
        for (name, target) in [
            ("uncompressed", Compression::None),
            ("gzip", Compression::Gzip),
            ("snappy", Compression::Snappy),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let dir = temp_dir();
            let mut config = small_config();
            config.compression_type = Some(target);
            let log = open(dir.path(), &config, &cache()).await;
            let fixture = std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src/model/compression/fixtures/librdkafka-gzip.batch"),
            )
            .unwrap();
            let expected = compression::batch_records(&fixture, 1 << 20).unwrap();
            let mut request = fixture.clone();
            request.extend_from_slice(&batch_of(3, 50, 9, b'p'));
            let appended = log.append(Bytes::from(request), 0, 0).await.unwrap();
            assert_eq!(appended.last_offset, Offset(302), "{name}");
            let batches = read_all(&log).await;
            assert_eq!(batches.len(), 2);
            for batch in &batches {
                let header = RecordBatchHeader::view(batch).unwrap();
                assert_eq!(header.compression(), Ok(target), "{name}");
            }
            assert_eq!(
                compression::batch_records(&batches[0], 1 << 20).unwrap(),
                expected
            );
            assert_eq!(records_of(&batches).len(), 303);
            log.close().await.unwrap();
        }
    });
}

/// Appends keep going while a pass runs; the result holds every key's latest value.
#[test]
fn appends_continue_during_compaction() {
    run(|| async {
        let dir = temp_dir();
        let mut config = compact_config();
        config.compaction_io_bytes_per_second = 1 << 20;
        let log = open(dir.path(), &config, &cache()).await;
        for i in 0..400 {
            log.append(
                keyed(
                    &[record(&format!("k{}", i % 10), Some(&"a".repeat(400)))],
                    1,
                ),
                0,
                1,
            )
            .await
            .unwrap();
        }
        let now = roll(&log, &config, 1).await;
        let compacting = glommio::spawn_local({
            let log = log.clone();
            async move { log.compact(now).await }
        });
        for i in 0..200 {
            let value = format!("late-{i}");
            log.append(
                keyed(&[record(&format!("k{}", i % 10), Some(&value))], now),
                0,
                now,
            )
            .await
            .unwrap();
        }
        let stats = compacting.await.unwrap();
        assert!(stats.records_removed > 0);
        let latest: BTreeMap<_, _> = records_of(&read_all(&log).await)
            .into_iter()
            .map(|r| (r.1, r.2))
            .collect();
        for k in 0..10 {
            let value = latest[&format!("k{k}")].clone().unwrap();
            assert!(value.starts_with("late-19"), "k{k}: {value}");
        }
        log.close().await.unwrap();
    });
}

const KILL_CHILD_ENV: &str = "SHARDLOG_COMPACTION_CHILD_DIR";
const KILL_TEST_NAME: &str =
    "storage::tests::compaction_tests::kill_dash_nine_during_compaction_keeps_latest_values";
const KILL_CYCLES_DEFAULT: usize = 50;
const KILL_KEYS: u64 = 20;
/// The child stops by itself after this long if nobody kills it.
const KILL_CHILD_LIFETIME_MAX: std::time::Duration = std::time::Duration::from_secs(20);

fn kill_config() -> LogConfig {
    let mut config = compact_config();
    config.segment_bytes = 8 * 1024;
    config.delete_retention_ms = i64::MAX / 2;
    config.compaction_io_bytes_per_second = 1 << 30;
    config
}

/// kill -9 at random moments of a child that appends keyed records (some tombstones) with
/// sync-per-batch while compaction passes run back to back, so kills land in every phase
/// of a pass, swaps included. After each kill the log must open without leftovers, decode
/// completely with increasing offsets, and hold for every key a latest record at or after
/// the last acknowledged one for that key (no acknowledged update lost, no older value
/// resurrected). `SHARDLOG_SEED` replays; `SHARDLOG_CRASH_CYCLES` sets the cycles.
#[test]
fn kill_dash_nine_during_compaction_keeps_latest_values() {
    if let Some(dir) = std::env::var_os(KILL_CHILD_ENV) {
        kill_child(std::path::PathBuf::from(dir));
        return;
    }
    let cycles = std::env::var("SHARDLOG_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(KILL_CYCLES_DEFAULT);
    let mut rng = Rng::from_env();
    let dir = temp_dir();
    let mut latest_acked: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    let mut passes = 0;
    for cycle in 0..cycles {
        let delay = std::time::Duration::from_millis(rng.range(30, 400));
        let (acks, child_passes) = run_kill_child(dir.path(), delay);
        passes += child_passes;
        let acked = acks.len();
        for (offset, key, value) in acks {
            let newer = latest_acked.get(&key).is_none_or(|(o, _)| *o < offset);
            if newer {
                latest_acked.insert(key, (offset, value));
            }
        }
        let path = dir.path().to_path_buf();
        let expected = latest_acked.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        run(move || async move {
            let log = open(&path, &kill_config(), &cache()).await;
            let records = records_of(&read_all(&log).await);
            assert!(
                records.windows(2).all(|w| w[0].0 < w[1].0),
                "offsets increase"
            );
            let found = latest_by_key(&records);
            for (key, (offset, value)) in &expected {
                let (found_offset, found_value) = found.get(key).cloned().unwrap_or((-1, None));
                assert!(
                    found_offset >= *offset,
                    "{key}: acked {offset}, latest {found_offset}"
                );
                if found_offset == *offset {
                    assert_eq!(&found_value, value, "{key} at {offset}");
                }
            }
            log.close().await.unwrap();
            sender.send(log.segment_count()).unwrap();
        });
        let segments = receiver.recv().unwrap();
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .count();
        assert_eq!(leftovers, 0);
        eprintln!(
            "cycle {cycle}: killed after {delay:?}: {acked} acks, {child_passes} passes, \
             {segments} segments"
        );
    }
    assert!(
        passes > cycles,
        "children completed only {passes} compaction passes"
    );
}

/// Runs one child until `delay` after it has opened its log (its start-up, slow on a busy
/// machine, does not eat the delay), SIGKILLs it; returns its acknowledged records and
/// passes.
fn run_kill_child(
    dir: &std::path::Path,
    delay: std::time::Duration,
) -> (Vec<(i64, String, Option<String>)>, usize) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([KILL_TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(KILL_CHILD_ENV, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_sender, ready) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let (mut acks, mut passes) = (Vec::new(), 0);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line).into_owned();
            let fields: Vec<&str> = text.split_whitespace().collect();
            // Only whole lines: the kill may cut the last one.
            match fields[..] {
                ["ack", offset, key, value] if text.ends_with('\n') => {
                    let value = (value != "-").then(|| value.to_string());
                    acks.push((offset.parse().unwrap(), key.to_string(), value));
                }
                ["pass"] if text.ends_with('\n') => passes += 1,
                // The harness prints `test <name> ... ` without a newline first.
                [.., "ready"] => {
                    let _ = ready_sender.send(());
                }
                _ => {}
            }
            line.clear();
        }
        (acks, passes)
    });
    // The child stops by itself after its lifetime, which bounds this wait.
    let _ = ready.recv_timeout(KILL_CHILD_LIFETIME_MAX);
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The child: one task appends (rolling segments by size) and prints
/// `ack <offset> <key> <value or ->` once synced; another runs compaction passes.
fn kill_child(dir: std::path::PathBuf) {
    run(move || async move {
        let config = kill_config();
        let log = open(&dir, &config, &cache()).await;
        println!("ready");
        let compactor = glommio::spawn_local({
            let log = log.clone();
            async move {
                loop {
                    if let Ok(stats) = log.compact(i64::MAX / 4).await
                        && stats.segments_written > 0
                    {
                        println!("pass");
                    }
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        });
        let start = log.log_end_offset().0;
        let appender = glommio::spawn_local(async move {
            for seq in start.. {
                let key = format!("k{}", seq as u64 % KILL_KEYS);
                let value = (seq % 13 != 0).then(|| format!("{seq}-{}", "v".repeat(200)));
                let batch = keyed(&[(key.clone(), value.clone())], 1);
                let result = log.append(batch, 0, 1).await.unwrap();
                log.wait_synced(result.last_offset).await.unwrap();
                let shown = value.as_deref().unwrap_or("-");
                println!("ack {} {key} {shown}", result.base_offset.0);
            }
        });
        glommio::timer::sleep(KILL_CHILD_LIFETIME_MAX).await;
        drop((compactor, appender));
    });
}

/// Transactional batches and transaction markers are kept as they are, and a segment
/// holding markers is never merged into an earlier one (its base offset, which
/// per-segment transaction state is keyed by, stays).
#[test]
fn transactional_batches_and_markers_stay_intact() {
    use crate::model::records::{BatchOrigin, encode_batch_from, encode_control_batch};
    run(|| async {
        let dir = temp_dir();
        let mut config = compact_config();
        config.segment_bytes = 1 << 20;
        config.segment_ms = 1000;
        let log = open(dir.path(), &config, &cache()).await;
        let five = |value: &str| -> Vec<_> {
            (0..5)
                .map(|i| record(&format!("k{i}"), Some(value)))
                .collect()
        };
        log.append(keyed(&five("old"), 0), 0, 0).await.unwrap();
        let txn_records = [
            NewRecord {
                key: Some(b"k0"),
                value: Some(b"txn"),
            },
            NewRecord {
                key: Some(b"k1"),
                value: Some(b"txn"),
            },
        ];
        let origin = BatchOrigin {
            producer_id: 9,
            producer_epoch: 0,
            base_sequence: 0,
            transactional: true,
            control: false,
        };
        let txn = Bytes::from(encode_batch_from(&txn_records, 2000, origin));
        let txn_at = log.append(txn, 0, 2000).await.unwrap().base_offset.0;
        let marker = Bytes::from(encode_control_batch(9, 0, true, 0, 2000));
        log.append(marker, 0, 2000).await.unwrap();
        log.append(keyed(&five("new"), 4000), 0, 4000)
            .await
            .unwrap();
        roll(&log, &config, 4000).await;
        let bases_before = segment_bases(dir.path());
        assert_eq!(bases_before.len(), 4, "{bases_before:?}");
        let stats = log.compact(10_000).await.unwrap();
        assert_eq!(stats.records_removed, 5, "{stats:?}");
        assert_eq!(stats.batches_kept_intact, 2, "{stats:?}");
        assert_eq!(
            segment_bases(dir.path()),
            bases_before,
            "marker segment not merged"
        );
        let batches = read_all(&log).await;
        let headers: Vec<_> = batches
            .iter()
            .map(|b| *RecordBatchHeader::view(b).unwrap())
            .collect();
        assert_eq!(headers[0].base_offset(), txn_at);
        assert!(headers[0].is_transactional() && !headers[0].is_control());
        assert!(headers[1].is_control());
        let records = records_of(&batches);
        let txn_values: Vec<_> = records
            .iter()
            .filter(|r| r.2.as_deref() == Some("txn"))
            .map(|r| r.1.clone())
            .collect();
        assert_eq!(txn_values, ["k0", "k1"], "transactional records kept");
        let news = records
            .iter()
            .filter(|r| r.2.as_deref() == Some("new"))
            .count();
        assert_eq!(news, 5);
        assert!(records.iter().all(|r| r.2.as_deref() != Some("old")));
        log.close().await.unwrap();
    });
}
