//! Damage to data that was synced (the recovery point checkpoint says so): a zero-length or
//! truncated newest segment is refused with `Damaged` and nothing on disk changes, so no
//! offset is handed out twice; `repair_damaged` then lets the log continue after the
//! offsets it had reached. A CRC-corrupt batch in synced data of the last segment is
//! skipped and reported at open (the batches after it stay readable), a flipped length
//! field is refused. The scrub finds corruption in closed segments that the open trusted,
//! and readers get past a corrupt batch that precedes what they ask for. The recovery point
//! is checkpointed at segment roll and close and lowered by `truncate_to`. Failures print
//! `SHARDLOG_SEED`.

use super::recovery_tests::{
    Image, build_image, crash_copy, exact_copy, flip_bit, layout, log_path, segment_bases, set_len,
};
use super::*;
use crate::model::Offset;
use crate::storage::{StorageError, repair_damaged};

fn next_offset(batch: &[u8]) -> i64 {
    batch::RecordBatchHeader::view(batch).unwrap().next_offset()
}

fn log_end(image: &Image) -> i64 {
    next_offset(image.batches.last().unwrap())
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

async fn open_err(dir: &Path) -> StorageError {
    match PartitionLog::open(dir, small_config(), cache(), Rc::default()).await {
        Ok(log) => panic!("opened at log end {}", log.log_end_offset()),
        Err(error) => error,
    }
}

/// Refused with `Damaged`, nothing changed; then the repair makes it open at the old end.
async fn refused_then_repaired(dir: &Path, end: i64, readable_before: usize) {
    let before = snapshot(dir);
    let error = open_err(dir).await;
    let StorageError::Damaged {
        expected,
        segment,
        valid_bytes,
        ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(*expected, end, "{error}");
    assert_eq!(snapshot(dir), before, "a refused open changed the dir");
    repair_damaged(dir, segment.as_deref(), *valid_bytes, *expected).unwrap();
    let log = open(dir, &small_config(), &cache()).await;
    assert_eq!(log.log_end_offset(), Offset(end));
    assert_eq!(read_all(&log).await.len(), readable_before);
    let appended = log.append(batch_of(1, 10, 5, 1), 1, 0).await.unwrap();
    assert_eq!(appended.base_offset, Offset(end), "offset handed out twice");
    log.close().await.unwrap();
}

#[test]
fn zero_length_newest_segment_is_refused_and_repaired_without_reusing_offsets() {
    run(|| async {
        let mut rng = Rng::from_env();
        for count in [3, 40] {
            let image = build_image(&mut rng, count, 5000, 0).await;
            let copy = exact_copy(&image);
            let last = *segment_bases(copy.path()).last().unwrap();
            set_len(&log_path(copy.path(), last), 0);
            let before = image
                .batches
                .iter()
                .filter(|b| base_offset(b) < last)
                .count();
            refused_then_repaired(copy.path(), log_end(&image), before).await;
        }
    });
}

#[test]
fn truncated_synced_tail_is_refused_but_an_unsynced_one_is_cut() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 20, 3000, 0).await;
        let last = *segment_bases(image.dir.path()).last().unwrap();
        let size = std::fs::metadata(log_path(image.dir.path(), last))
            .unwrap()
            .len();
        let cut = size - rng.range(1, 40);
        let synced = exact_copy(&image);
        set_len(&log_path(synced.path(), last), cut);
        let kept = image.batches.len() - 1;
        refused_then_repaired(synced.path(), log_end(&image), kept).await;
        // Without the checkpoint (a crash before it advanced) the same cut is a torn tail.
        let torn = crash_copy(&image, false);
        set_len(&log_path(torn.path(), last), cut);
        let log = open(torn.path(), &small_config(), &cache()).await;
        assert_eq!(
            log.log_end_offset(),
            Offset(base_offset(&image.batches[kept]))
        );
    });
}

#[test]
fn corrupt_batch_in_synced_data_of_the_last_segment_is_skipped_and_reported() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 30, 800, 0).await;
        let last = *segment_bases(image.dir.path()).last().unwrap();
        let (first, positions) = layout(&image, last);
        assert!(
            positions.len() >= 3,
            "{} batches in the last segment",
            positions.len()
        );
        for round in 0..6 {
            let k = first + rng.range(0, positions.len() as u64) as usize;
            let body = rng.range(61, image.batches[k].len() as u64);
            let copy = exact_copy(&image);
            flip_bit(
                &log_path(copy.path(), last),
                positions[k - first] + body,
                rng.range(0, 8) as u8,
            );
            let log = open(copy.path(), &small_config(), &cache()).await;
            assert_eq!(
                log.log_end_offset(),
                Offset(log_end(&image)),
                "round {round}"
            );
            assert_eq!(log.corrupt_batches(), 1);
            let bad = Offset(base_offset(&image.batches[k]));
            assert!(matches!(
                log.read(bad, 1 << 20, true).await,
                Err(StorageError::CorruptData { .. })
            ));
            if let Some(after) = image.batches.get(k + 1) {
                let read = log.read(Offset(base_offset(after)), 1, true).await.unwrap();
                assert_eq!(
                    &read.batches[0][..],
                    &after[..],
                    "batch after the corrupt one"
                );
            }
            // Appends continue after the end; a crash and reopen keep everything.
            let appended = log.append(batch_of(1, 10, 5, 1), 1, 0).await.unwrap();
            assert_eq!(appended.base_offset, Offset(log_end(&image)));
            log.wait_synced(appended.last_offset).await.unwrap();
            drop(log);
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            let log = open(copy.path(), &small_config(), &cache()).await;
            assert_eq!(log.log_end_offset(), Offset(log_end(&image) + 1));
            assert_eq!(log.corrupt_batches(), 1);
            log.close().await.unwrap();
        }
    });
}

#[test]
fn flipped_length_in_synced_data_is_refused() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 24, 3000, 0).await;
        let last = *segment_bases(image.dir.path()).last().unwrap();
        let (_, positions) = layout(&image, last);
        let copy = exact_copy(&image);
        let k = rng.range(0, positions.len() as u64) as usize;
        // batchLength is bytes 8..12: its top bits make it larger than any stored batch.
        flip_bit(&log_path(copy.path(), last), positions[k] + 8, 6);
        let before = snapshot(copy.path());
        assert!(matches!(
            open_err(copy.path()).await,
            StorageError::Damaged { .. }
        ));
        assert_eq!(snapshot(copy.path()), before);
    });
}

#[test]
fn scrub_finds_corruption_in_a_closed_segment_the_open_trusted() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 40, 5000, 0).await;
        let bases = segment_bases(image.dir.path());
        assert!(bases.len() >= 3, "{} segments", bases.len());
        let (first, positions) = layout(&image, bases[0]);
        let in_first = image
            .batches
            .iter()
            .filter(|b| base_offset(b) < bases[1])
            .count();
        assert!(in_first >= 2);
        let k = first + rng.range(0, in_first as u64 - 1) as usize;
        let copy = exact_copy(&image);
        flip_bit(
            &log_path(copy.path(), bases[0]),
            positions[k] + rng.range(61, image.batches[k].len() as u64),
            rng.range(0, 8) as u8,
        );
        let log = open(copy.path(), &small_config(), &cache()).await;
        assert_eq!(log.corrupt_batches(), 0, "the open trusts sane indexes");
        let stats = log.scrub(1 << 30).await.unwrap();
        assert_eq!(stats.corrupt_found, 1);
        assert_eq!(stats.segments, bases.len() - 1);
        assert_eq!(log.corrupt_batches(), 1);
        assert_eq!(
            log.scrub(1 << 30).await.unwrap().corrupt_found,
            0,
            "reported once"
        );
        // A reader past the corrupt batch is not stuck on it.
        let after = &image.batches[k + 1];
        let read = log.read(Offset(base_offset(after)), 1, true).await.unwrap();
        assert_eq!(&read.batches[0][..], &after[..]);
        log.close().await.unwrap();
    });
}

fn recovery_point(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join("recovery-point-offset.checkpoint")).unwrap();
    text.lines().nth(1).unwrap().parse().unwrap()
}

#[test]
fn recovery_point_is_checkpointed_at_roll_and_close_and_lowered_by_truncation() {
    run(|| async {
        let dir = temp_dir();
        let log = open(dir.path(), &small_config(), &cache()).await;
        let mut last = Offset(0);
        while log.segment_count() < 3 {
            last = log
                .append(batch_of(4, 1000, 5, 7), 1, 0)
                .await
                .unwrap()
                .last_offset;
        }
        log.wait_synced(last).await.unwrap();
        let active = *segment_bases(dir.path()).last().unwrap();
        assert_eq!(
            recovery_point(dir.path()),
            active,
            "checkpointed at the roll"
        );
        let more = log.append(batch_of(1, 10, 5, 7), 1, 0).await.unwrap();
        log.wait_synced(more.last_offset).await.unwrap();
        let end = log.log_end_offset();
        assert_eq!(log.checkpoint_recovery_point().await.unwrap(), end);
        assert_eq!(recovery_point(dir.path()), end.0);
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), &small_config(), &cache()).await;
        let cut = log.truncate_to(Offset(active - 2)).await.unwrap();
        assert!(recovery_point(dir.path()) <= cut.0);
        drop(log);
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        let log = open(dir.path(), &small_config(), &cache()).await;
        assert_eq!(log.log_end_offset(), cut, "a truncation is not damage");
        log.close().await.unwrap();
    });
}

/// A follower whose log lies wholly below its leader's log start restarts it empty there
/// (`start_empty_log_at`, Kafka's `truncateFullyAndStartAt`): the log opens with its start
/// and end at that offset, takes the leader's batches from it, and reopens the same way. A
/// directory that still holds a segment is refused.
#[test]
fn a_log_started_empty_at_an_offset_opens_there_and_continues_from_it() {
    run(|| async {
        let dir = temp_dir();
        crate::storage::start_empty_log_at(dir.path(), 200).unwrap();
        let log = open(dir.path(), &small_config(), &cache()).await;
        assert_eq!(log.log_start_offset(), Offset(200));
        assert_eq!(log.log_end_offset(), Offset(200));
        let leaders = stamped(&batch_of(3, 10, 5, 1), 200, 4);
        let appended = log.append_replicated(leaders.into(), 0).await.unwrap();
        assert_eq!(appended.base_offset, Offset(200));
        let below = stamped(&batch_of(1, 10, 5, 1), 150, 4);
        assert!(matches!(
            log.append_replicated(below.into(), 0).await,
            Err(StorageError::UnexpectedAppendOffset { .. })
        ));
        log.close().await.unwrap();
        let log = open(dir.path(), &small_config(), &cache()).await;
        assert_eq!(log.log_start_offset(), Offset(200));
        assert_eq!(log.log_end_offset(), Offset(203));
        log.close().await.unwrap();
        let error = crate::storage::start_empty_log_at(dir.path(), 500).unwrap_err();
        assert!(
            error.to_string().contains("still holds a segment"),
            "{error}"
        );
    });
}
