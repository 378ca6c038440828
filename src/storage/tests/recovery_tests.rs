//! Recovery over segment images with seeded faults. Each test writes a log through the
//! real append path, closes it, damages a copy of its files the way a crash or a bad disk
//! would (torn tail at every byte of the last batch, flipped bits, zero-filled and garbage
//! tails, deleted/truncated/stale/corrupt index files), reopens it and checks that what is
//! served is exactly a prefix of what was written (last segment), or that damaged batches
//! of closed segments are reported and never served. Failures print `SHARDLOG_SEED`.

use super::*;
use crate::model::Offset;
use crate::model::batch::test_support::build_batch;
use crate::storage::StorageError;
use crate::storage::index;

/// A closed log and the stamped batches it holds, in offset order.
pub(super) struct Image {
    pub dir: tempfile::TempDir,
    pub batches: Vec<Vec<u8>>,
}

pub(super) fn random_batch(rng: &mut Rng, index: usize, value_max: u64) -> Bytes {
    let count = rng.range(1, 4) as usize;
    let values: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let mut value = vec![0u8; rng.range(1, value_max) as usize];
            rng.fill(&mut value);
            value
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    Bytes::from(build_batch(&refs, 1000 + index as i64 * 10))
}

pub(super) async fn build_image(
    rng: &mut Rng,
    count: usize,
    value_max: u64,
    last_value: usize,
) -> Image {
    let dir = temp_dir();
    let log = open(dir.path(), &small_config(), &cache()).await;
    let mut batches = Vec::new();
    for i in 0..count {
        let batch = if i + 1 == count && last_value > 0 {
            batch_of(1, last_value, 1000 + i as i64 * 10, 0x5a)
        } else {
            random_batch(rng, i, value_max)
        };
        let result = log.append(batch.clone(), 1, 0).await.unwrap();
        batches.push(stamped(&batch, result.base_offset.0, 1));
    }
    log.close().await.unwrap();
    Image { dir, batches }
}

pub(super) fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            crate::storage::segment::parse_file_name(&name, "log")
        })
        .collect();
    bases.sort();
    bases
}

pub(super) fn log_path(dir: &Path, base: i64) -> PathBuf {
    crate::storage::segment::file_path(dir, base, "log")
}

/// Copies the image into a fresh directory, without the clean-shutdown marker unless asked,
/// and without the recovery point checkpoint (see `forget_recovery_point`).
pub(super) fn crash_copy(image: &Image, keep_marker: bool) -> tempfile::TempDir {
    let copy = exact_copy(image);
    if !keep_marker {
        std::fs::remove_file(copy.path().join(".clean-shutdown")).unwrap();
    }
    forget_recovery_point(copy.path());
    copy
}

/// Copies the image as it is: a clean stop, every checkpoint in place.
pub(super) fn exact_copy(image: &Image) -> tempfile::TempDir {
    let copy = temp_dir();
    for entry in std::fs::read_dir(image.dir.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

/// (index of first batch, byte position of each batch) for the segment based at `base`.
pub(super) fn layout(image: &Image, base: i64) -> (usize, Vec<u64>) {
    let first = image
        .batches
        .iter()
        .position(|b| base_offset(b) >= base)
        .unwrap();
    let mut positions = Vec::new();
    let mut at = 0u64;
    for batch in &image.batches[first..] {
        if base_offset(batch) >= base {
            positions.push(at);
            at += batch.len() as u64;
        }
    }
    (first, positions)
}

/// How many batches, from the first, are byte-identical in `file` at their positions.
pub(super) fn intact_batches(file: &[u8], positions: &[u64], batches: &[Vec<u8>]) -> usize {
    positions
        .iter()
        .zip(batches)
        .take_while(|(p, b)| file.get(**p as usize..**p as usize + b.len()) == Some(&b[..]))
        .count()
}

pub(super) fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

pub(super) fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

pub(super) fn flip_bit(path: &Path, position: u64, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position as usize] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

/// Opens `dir` and checks it holds exactly `expected`; then appends one more batch, reopens
/// after an unclean stop, and checks the tail continued correctly.
pub(super) async fn check_prefix(dir: &Path, expected: &[Vec<u8>], continue_after: bool) {
    let log = open(dir, &small_config(), &cache()).await;
    let end = expected.last().map_or(0, |b| {
        batch::RecordBatchHeader::view(b).unwrap().next_offset()
    });
    assert_eq!(log.log_end_offset(), Offset(end));
    let got = read_all(&log).await;
    assert_eq!(got.len(), expected.len());
    for (i, (got, want)) in got.iter().zip(expected).enumerate() {
        assert_eq!(&got[..], &want[..], "batch {i}");
    }
    if !continue_after {
        // No clean close: cheaper, and the next open of this copy must not depend on it.
        return;
    }
    let extra = batch_of(2, 77, 5, 0x42);
    log.append(extra.clone(), 2, 0).await.unwrap();
    log.wait_synced(Offset(end + 1)).await.unwrap();
    drop(log);
    glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
    let log = open(dir, &small_config(), &cache()).await;
    let got = read_all(&log).await;
    assert_eq!(got.len(), expected.len() + 1);
    assert_eq!(&got[expected.len()][..], &stamped(&extra, end, 2)[..]);
    log.close().await.unwrap();
}

#[test]
fn torn_tail_at_every_byte_of_the_last_batch() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 30, 4000, 300).await;
        let last_base = *segment_bases(image.dir.path()).last().unwrap();
        let (first, positions) = layout(&image, last_base);
        let last = image.batches.len() - 1;
        let start = positions[last - first];
        let end = start + image.batches[last].len() as u64;
        for cut in start..end {
            let keep_marker = rng.range(0, 4) == 0;
            let copy = crash_copy(&image, keep_marker);
            let path = log_path(copy.path(), last_base);
            set_len(&path, cut);
            match rng.range(0, 3) {
                0 => {}
                1 => set_len(&path, cut.div_ceil(4096) * 4096),
                _ => set_len(&path, cut.div_ceil(4096) * 4096 + 4096 * rng.range(1, 3)),
            }
            // The last bytes of a batch may be zeros (an empty headers count): zero padding
            // that covers them restores the batch exactly, and then it is rightly kept.
            let padded = std::fs::metadata(&path).unwrap().len();
            let missing = &image.batches[last][(cut - start) as usize..];
            let restored = padded >= end && missing.iter().all(|&b| b == 0);
            let keep = if restored { last + 1 } else { last };
            let continue_after = rng.range(0, 16) == 0 || cut == start;
            check_prefix(copy.path(), &image.batches[..keep], continue_after).await;
        }
    });
}

#[test]
fn zero_filled_or_garbage_tail_ends_the_log() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 12, 3000, 0).await;
        let last_base = *segment_bases(image.dir.path()).last().unwrap();
        for round in 0..8 {
            let copy = crash_copy(&image, round % 2 == 0);
            let path = log_path(copy.path(), last_base);
            let size = std::fs::metadata(&path).unwrap().len();
            let mut tail = vec![0u8; rng.range(1, 3 * 4096) as usize];
            if round >= 4 {
                rng.fill(&mut tail);
            }
            append_bytes(&path, &tail);
            let log = open(copy.path(), &small_config(), &cache()).await;
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                size,
                "tail cut off"
            );
            log.close().await.unwrap();
            drop(log);
            check_prefix(copy.path(), &image.batches, round % 3 == 0).await;
        }
    });
}

#[test]
fn flipped_bit_in_the_last_segment_cuts_the_log_before_that_batch() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 20, 3000, 0).await;
        let last_base = *segment_bases(image.dir.path()).last().unwrap();
        let (first, positions) = layout(&image, last_base);
        for _ in 0..40 {
            let k = first + rng.range(0, positions.len() as u64) as usize;
            let within = rng.range(0, image.batches[k].len() as u64);
            let bit = rng.range(0, 8) as u8;
            let copy = crash_copy(&image, false);
            flip_bit(
                &log_path(copy.path(), last_base),
                positions[k - first] + within,
                bit,
            );
            if (12..16).contains(&within) {
                // partitionLeaderEpoch is not CRC-covered (as in Kafka): the batch stays.
                let mut expected = image.batches.clone();
                expected[k][within as usize] ^= 1 << bit;
                check_prefix(copy.path(), &expected, false).await;
            } else {
                check_prefix(copy.path(), &image.batches[..k], rng.range(0, 4) == 0).await;
            }
        }
    });
}

#[test]
fn flipped_bit_in_a_closed_segment_is_reported_and_never_served() {
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
        for round in 0..12 {
            let k = first + rng.range(0, in_first as u64) as usize;
            let within = rng.range(21, image.batches[k].len() as u64);
            let copy = crash_copy(&image, round % 2 == 0);
            flip_bit(
                &log_path(copy.path(), bases[0]),
                positions[k] + within,
                rng.range(0, 8) as u8,
            );
            if round % 3 == 0 {
                std::fs::remove_file(log_path(copy.path(), bases[0]).with_extension("index"))
                    .unwrap();
            }
            let log = open(copy.path(), &small_config(), &cache()).await;
            let end = image
                .batches
                .last()
                .map(|b| base_offset(b) + 1)
                .unwrap_or(0);
            assert!(
                log.log_end_offset().0 >= end,
                "closed segments are not truncated"
            );
            let bad = Offset(base_offset(&image.batches[k]));
            assert!(matches!(
                log.read(bad, 1 << 20, true).await,
                Err(StorageError::CorruptData { .. })
            ));
            // Reading from the start serves only batches before the bad one, then fails.
            let mut offset = Offset(0);
            let mut served = 0;
            loop {
                let result = log.read(offset, 4096, true).await;
                match result {
                    Ok(result) if result.batches.is_empty() => panic!("reached the end past {bad}"),
                    Ok(result) => {
                        for got in &result.batches {
                            assert_eq!(&got[..], &image.batches[served][..]);
                            served += 1;
                        }
                        let last = result.batches.last().unwrap();
                        offset =
                            Offset(batch::RecordBatchHeader::view(last).unwrap().next_offset());
                    }
                    Err(StorageError::CorruptData { .. }) => break,
                    Err(other) => panic!("{other}"),
                }
            }
            assert_eq!(served, k);
            // Later segments are unaffected.
            let later = log.read(Offset(bases[1]), 1 << 20, true).await.unwrap();
            assert_eq!(base_offset(&later.batches[0]), bases[1]);
            log.close().await.unwrap();
        }
    });
}

#[derive(Debug, Clone, Copy)]
enum IndexFault {
    Deleted,
    Truncated,
    Stale,
    Corrupt,
    TimeIndexDeleted,
}

fn damage_index(rng: &mut Rng, path: &Path, fault: IndexFault) {
    let index_path = path.with_extension("index");
    let mut bytes = std::fs::read(&index_path).unwrap();
    match fault {
        IndexFault::Deleted => std::fs::remove_file(&index_path).unwrap(),
        IndexFault::TimeIndexDeleted => {
            std::fs::remove_file(path.with_extension("timeindex")).unwrap()
        }
        IndexFault::Truncated => {
            bytes.truncate(rng.range(0, bytes.len() as u64) as usize);
            std::fs::write(&index_path, bytes).unwrap();
        }
        IndexFault::Stale => {
            // A sane index written when the segment was shorter.
            let covered = u64::from_be_bytes(bytes[16..24].try_into().unwrap()) - 100;
            bytes[16..24].copy_from_slice(&covered.to_be_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..28]), &bytes[32..]);
            bytes[28..32].copy_from_slice(&crc.to_be_bytes());
            std::fs::write(&index_path, bytes).unwrap();
        }
        IndexFault::Corrupt => {
            let at = rng.range(0, bytes.len() as u64) as usize;
            bytes[at] ^= 0x81;
            std::fs::write(&index_path, bytes).unwrap();
        }
    }
}

#[test]
fn missing_truncated_stale_or_corrupt_index_is_rebuilt() {
    run(|| async {
        let mut rng = Rng::from_env();
        let image = build_image(&mut rng, 40, 5000, 0).await;
        let bases = segment_bases(image.dir.path());
        assert!(bases.len() >= 3);
        let faults = [
            IndexFault::Deleted,
            IndexFault::Truncated,
            IndexFault::Stale,
            IndexFault::Corrupt,
            IndexFault::TimeIndexDeleted,
        ];
        for fault in faults {
            let copy = crash_copy(&image, rng.range(0, 2) == 0);
            let which = bases[rng.range(0, bases.len() as u64 - 1) as usize];
            let path = log_path(copy.path(), which);
            damage_index(&mut rng, &path, fault);
            check_prefix(copy.path(), &image.batches, false).await;
            let log = open(copy.path(), &small_config(), &cache()).await;
            for (i, batch) in image.batches.iter().enumerate().step_by(7) {
                let ts = 1000 + i as i64 * 10;
                let found = log.offset_for_timestamp(ts).await.unwrap();
                assert_eq!(found, Some((Offset(base_offset(batch)), ts)), "{fault:?}");
            }
            let size = std::fs::metadata(&path).unwrap().len();
            let rebuilt = std::fs::read(path.with_extension("index")).unwrap();
            assert!(
                index::decode_offsets(&rebuilt, which, size).is_ok(),
                "{fault:?}"
            );
            log.close().await.unwrap();
        }
    });
}

#[test]
fn random_tail_damage_always_recovers_a_prefix() {
    run(|| async {
        let mut rng = Rng::from_env();
        for _ in 0..12 {
            let count = rng.range(1, 30) as usize;
            let value_max = rng.range(2, 6000);
            let image = build_image(&mut rng, count, value_max, 0).await;
            let last_base = *segment_bases(image.dir.path()).last().unwrap();
            let (first, positions) = layout(&image, last_base);
            let size = positions.last().unwrap() + image.batches.last().unwrap().len() as u64;
            let copy = crash_copy(&image, rng.range(0, 3) == 0);
            let path = log_path(copy.path(), last_base);
            let cut = rng.range(0, size + 1);
            set_len(&path, cut);
            if rng.range(0, 2) == 0 {
                let mut garbage = vec![0u8; rng.range(1, 9000) as usize];
                if rng.range(0, 2) == 0 {
                    rng.fill(&mut garbage);
                }
                append_bytes(&path, &garbage);
            }
            let whole = intact_batches(
                &std::fs::read(&path).unwrap(),
                &positions,
                &image.batches[first..],
            );
            check_prefix(copy.path(), &image.batches[..first + whole], true).await;
        }
    });
}
