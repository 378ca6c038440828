//! Tests of `txn_state`: ongoing transactions, markers, fencing, the aborted index and
//! the producer-snapshot section.

use super::*;

fn data(producer_id: i64, epoch: i16, transactional: bool) -> TxnBatch {
    TxnBatch {
        producer_id,
        epoch,
        kind: BatchKind::Data { transactional },
        max_timestamp: 7,
    }
}

fn marker(producer_id: i64, epoch: i16, commit: bool) -> TxnBatch {
    TxnBatch {
        producer_id,
        epoch,
        kind: BatchKind::Marker {
            commit,
            coordinator_epoch: 2,
        },
        max_timestamp: 8,
    }
}

#[test]
fn a_marker_from_an_older_coordinator_epoch_is_fenced() {
    let mut state = TxnState::new(10);
    state.apply(&data(1, 0, true), 0, 0);
    // The producer's last marker came from coordinator epoch 2 (`marker`).
    state.apply(&marker(1, 0, true), 1, 1);
    let late = |coordinator_epoch| TxnBatch {
        kind: BatchKind::Marker {
            commit: true,
            coordinator_epoch,
        },
        ..marker(1, 0, true)
    };
    assert!(matches!(
        state.check(&late(1)),
        Err(StorageError::TransactionCoordinatorFenced {
            coordinator_epoch: 1,
            current: 2,
            ..
        })
    ));
    assert!(
        state.check(&late(2)).is_ok(),
        "the same coordinator resends"
    );
    assert!(state.check(&late(3)).is_ok(), "a newer coordinator");
    assert!(
        state.check(&data(1, 0, true)).is_ok(),
        "data is not fenced by it"
    );
}

#[test]
fn ongoing_transactions_markers_and_fencing() {
    let mut state = TxnState::new(10);
    state.apply(&data(1, 0, true), 0, 1);
    state.apply(&data(2, 0, true), 2, 2);
    state.apply(&data(1, 0, true), 3, 3);
    state.apply(&data(3, 0, false), 4, 4);
    assert_eq!(state.first_unstable_offset(), Some(0));
    state.apply(&marker(1, 1, false), 5, 5);
    assert_eq!(state.first_unstable_offset(), Some(2));
    assert_eq!(
        state.aborted.back().copied(),
        Some(AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 5,
            last_stable_offset: 2,
        })
    );
    assert!(matches!(
        state.check(&data(1, 0, true)),
        Err(StorageError::InvalidProducerEpoch {
            current_epoch: 1,
            ..
        })
    ));
    assert!(state.check(&data(1, 1, true)).is_ok());
    assert!(state.check(&marker(1, 0, true)).is_err());
    state.apply(&marker(2, 0, true), 6, 6);
    assert_eq!(state.first_unstable_offset(), None);
    // An empty transaction's marker adds no entry.
    state.apply(&marker(3, 0, false), 7, 7);
    assert_eq!(state.aborted.len(), 1);
    assert_eq!(state.aborted_between(0, 8).len(), 1);
    assert_eq!(state.aborted_between(6, 8).len(), 0);
    assert_eq!(state.aborted_between(0, 0).len(), 0);
    let section = state.encode_section();
    let mut decoded = TxnState::decode_section(&section, 10).unwrap();
    decoded.aborted = state.aborted.clone();
    assert_eq!(decoded, state);
    assert_eq!(
        TxnState::decode_section(&section[..section.len() - 1], 10),
        None
    );
}

#[test]
fn index_file_roundtrip_and_corruption() {
    let entries = [
        AbortedTxn {
            producer_id: 4,
            first_offset: 90,
            last_offset: 105,
            last_stable_offset: 100,
        },
        AbortedTxn {
            producer_id: 5,
            first_offset: 101,
            last_offset: 110,
            last_stable_offset: 111,
        },
    ];
    let bytes = encode_index(100, 120, &entries);
    assert_eq!(decode_index(&bytes, 100), Some(entries.to_vec()));
    assert_eq!(decode_index(&bytes, 0), None, "another segment");
    for position in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x10;
        assert_eq!(decode_index(&damaged, 100), None, "flip at {position}");
    }
    assert_eq!(decode_index(&bytes[..bytes.len() - 3], 100), None);
    assert_eq!(decode_index(&encode_index(100, 110, &entries), 100), None);
    let reversed = [entries[1], entries[0]];
    assert_eq!(decode_index(&encode_index(100, 120, &reversed), 100), None);
}

#[test]
fn truncation_without_markers_and_bounded_producers() {
    let mut state = TxnState::new(2);
    state.apply(&data(1, 0, true), 0, 0);
    state.apply(&data(2, 0, false), 1, 1);
    state.apply(&data(3, 0, false), 2, 2);
    assert!(state.producers.contains_key(&1), "ongoing never forgotten");
    assert!(!state.producers.contains_key(&2));
    state.apply(&data(4, 0, true), 3, 3);
    state.truncate_without_markers(3);
    assert_eq!(state.first_unstable_offset(), Some(0));
    assert_eq!(state.ongoing.len(), 1);
    assert!(!state.producers.contains_key(&4));
    state.truncate_without_markers(0);
    assert_eq!(state.first_unstable_offset(), None);
}
