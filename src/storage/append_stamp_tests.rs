//! In-place stamping (`Records::Owned`) against the copying path (`Records::Shared` with
//! another reference alive, i.e. the old behaviour): identical bytes, valid CRC, and no copy
//! when the region is owned and large enough.

use super::*;
use crate::storage::tests::batch_of;

/// Two batches back to back, as one request's records for a partition (broker origin).
fn two_batches(value_bytes: usize) -> Vec<u8> {
    let mut records = batch_of(3, value_bytes, 1_000, b'a').to_vec();
    records.extend_from_slice(&batch_of(2, value_bytes, 1_001, b'b'));
    records
}

fn spans_of(records: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut position = 0;
    while position < records.len() {
        let total = batch::validate_batch(&records[position..]).unwrap();
        spans.push((position, total));
        position += total;
    }
    spans
}

/// Stamps `records` both ways; returns (in place, copied).
fn stamp_both(records: &[u8], log_append_time: bool) -> (Bytes, Bytes) {
    let spans = spans_of(records);
    let shared = Bytes::copy_from_slice(records);
    let _other_reference = shared.clone();
    let copied = stamp(
        Records::Shared(shared),
        &spans,
        42,
        7,
        log_append_time,
        5_000,
    )
    .unwrap();
    let owned = BytesMut::from(records);
    let in_place = stamp(Records::Owned(owned), &spans, 42, 7, log_append_time, 5_000).unwrap();
    (in_place, copied)
}

#[test]
fn in_place_stamping_matches_the_copying_path() {
    for value_bytes in [10, STAMP_IN_PLACE_BYTES_MIN / 2] {
        for log_append_time in [false, true] {
            let records = two_batches(value_bytes);
            let (in_place, copied) = stamp_both(&records, log_append_time);
            assert_eq!(
                in_place, copied,
                "{value_bytes} B values, LogAppendTime {log_append_time}"
            );
            let mut next = 42;
            for (start, len) in spans_of(&in_place) {
                let batch = &in_place[start..start + len];
                batch::validate_batch(batch).unwrap();
                let header = RecordBatchHeader::view(batch).unwrap();
                assert_eq!(header.base_offset(), next);
                assert_eq!(header.partition_leader_epoch.get(), 7);
                if log_append_time {
                    assert_eq!(header.max_timestamp.get(), 5_000);
                }
                next = header.next_offset();
            }
            assert_eq!(next, 47);
        }
    }
}

/// An owned region at least `STAMP_IN_PLACE_BYTES_MIN` long is stamped where it lies: the
/// stamped bytes are the same memory. A smaller one, or a shared one, is copied.
#[test]
fn owned_regions_are_not_copied() {
    let records = two_batches(STAMP_IN_PLACE_BYTES_MIN / 4);
    assert!(records.len() >= STAMP_IN_PLACE_BYTES_MIN);
    let spans = spans_of(&records);
    // A region split off a larger buffer, as a request frame's records are.
    let mut frame = BytesMut::from(&b"header"[..]);
    frame.extend_from_slice(&records);
    frame.extend_from_slice(b"trailer");
    let _header = frame.split_to(6);
    let owned = frame.split_to(records.len());
    let address = owned.as_ptr();
    let stamped = stamp(Records::Owned(owned), &spans, 0, 1, true, 9).unwrap();
    assert_eq!(stamped.as_ptr(), address);
    assert_eq!(&frame[..], b"trailer");

    let small = batch_of(1, 10, 0, b's');
    let owned = BytesMut::from(&small[..]);
    let address = owned.as_ptr();
    let spans = spans_of(&small);
    let stamped = stamp(Records::Owned(owned), &spans, 0, 1, false, 9).unwrap();
    assert_ne!(stamped.as_ptr(), address);

    let shared = Bytes::from(records.clone());
    let _other_reference = shared.clone();
    let stamped = stamp(
        Records::Shared(shared.clone()),
        &spans_of(&records),
        0,
        1,
        false,
        9,
    );
    assert_ne!(stamped.unwrap().as_ptr(), shared.as_ptr());
}
