//! Transition tests for the transaction coordinator logic.

use super::*;
use crate::model::ErrorCode;

fn ongoing() -> TxnMetadata {
    let empty = TxnMetadata::new("tx", 7, 60_000, 0);
    add_partitions(
        &empty,
        7,
        0,
        &[("a".to_string(), 0), ("b".to_string(), 1)],
        ErrorCode::ProducerFenced,
        10,
    )
    .unwrap()
}

#[test]
fn add_partitions_starts_a_transaction() {
    let metadata = ongoing();
    assert_eq!(metadata.state, TxnState::Ongoing);
    assert_eq!(metadata.start_ms, 10);
    assert_eq!(metadata.partitions.len(), 2);
    let more = add_partitions(
        &metadata,
        7,
        0,
        &[("a".to_string(), 0), ("c".to_string(), 2)],
        ErrorCode::ProducerFenced,
        20,
    )
    .unwrap();
    assert_eq!(more.partitions.len(), 3);
    assert_eq!(more.start_ms, 10, "adding keeps the start time");
}

#[test]
fn wrong_producer_id_or_epoch_is_rejected() {
    let metadata = ongoing();
    let add = |pid, epoch| add_partitions(&metadata, pid, epoch, &[], ErrorCode::ProducerFenced, 1);
    assert_eq!(add(8, 0), Err(ErrorCode::InvalidProducerIdMapping));
    assert_eq!(add(7, 1), Err(ErrorCode::InvalidProducerEpoch));
    let mut bumped = metadata.clone();
    bumped.producer_epoch = 3;
    assert_eq!(
        add_partitions(&bumped, 7, 2, &[], ErrorCode::ProducerFenced, 1),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        plan_end(&bumped, 7, 2, true, ErrorCode::InvalidProducerEpoch, 1),
        Err(ErrorCode::InvalidProducerEpoch)
    );
}

#[test]
fn commit_writes_markers_then_completes() {
    let metadata = ongoing();
    let EndPlan::Complete {
        prepare,
        markers,
        complete,
    } = plan_end(&metadata, 7, 0, true, ErrorCode::ProducerFenced, 30).unwrap()
    else {
        panic!("expected a completion plan");
    };
    assert_eq!(prepare.state, TxnState::PrepareCommit);
    assert!(markers.commit);
    assert_eq!(markers.partitions.len(), 2);
    assert_eq!(complete.state, TxnState::CompleteCommit);
    assert!(complete.partitions.is_empty());
    // A retried commit is answered as done; an abort after commit is invalid.
    assert_eq!(
        plan_end(&complete, 7, 0, true, ErrorCode::ProducerFenced, 31),
        Ok(EndPlan::AlreadyDone)
    );
    assert_eq!(
        plan_end(&complete, 7, 0, false, ErrorCode::ProducerFenced, 31),
        Err(ErrorCode::InvalidTxnState)
    );
    assert_eq!(
        plan_end(&prepare, 7, 0, true, ErrorCode::ProducerFenced, 31),
        Err(ErrorCode::ConcurrentTransactions)
    );
}

#[test]
fn ending_without_a_transaction_is_invalid() {
    let empty = TxnMetadata::new("tx", 7, 60_000, 0);
    assert_eq!(
        plan_end(&empty, 7, 0, true, ErrorCode::ProducerFenced, 1),
        Err(ErrorCode::InvalidTxnState)
    );
}

#[test]
fn init_bumps_the_epoch_and_aborts_an_open_transaction() {
    let metadata = ongoing();
    let plan = plan_init(&metadata, 60_000, (-1, -1), 99, 40).unwrap();
    let InitPlan::AbortThen {
        prepare,
        markers,
        after,
    } = plan
    else {
        panic!("an open transaction must be aborted");
    };
    // The abort is decided (and the old epoch fenced) before any marker is written: a
    // coordinator that fails midway leaves PrepareAbort, which the timer or the next
    // leader finishes with the same markers, and the zombie's EndTxn(commit) is refused
    // rather than committing the partitions the abort markers have not reached yet.
    assert_eq!(prepare.state, TxnState::PrepareAbort);
    assert_eq!(prepare.producer_epoch, 1);
    assert_eq!(prepare.partitions, metadata.partitions);
    assert_eq!(
        plan_end(&prepare, 7, 0, true, ErrorCode::ProducerFenced, 45),
        Err(ErrorCode::ProducerFenced)
    );
    let Some(EndPlan::Complete {
        markers: resent,
        complete,
        ..
    }) = plan_recovery(&prepare, 45)
    else {
        panic!("a persisted PrepareAbort is finished by recovery");
    };
    assert_eq!(resent, markers);
    assert_eq!(complete.state, TxnState::CompleteAbort);
    assert!(!markers.commit);
    assert_eq!(markers.producer_id, 7);
    assert_eq!(markers.producer_epoch, 1);
    assert_eq!(after.producer_epoch, 1);
    assert_eq!(after.state, TxnState::CompleteAbort);
    let InitPlan::Ready(again) = plan_init(&after, 60_000, (-1, -1), 99, 50).unwrap() else {
        panic!("no transaction left to abort");
    };
    assert_eq!(again.producer_epoch, 2);
    assert_eq!(again.state, TxnState::Empty);
    // The zombie with epoch 0 is fenced.
    assert_eq!(
        add_partitions(&again, 7, 0, &[], ErrorCode::ProducerFenced, 60),
        Err(ErrorCode::ProducerFenced)
    );
}

#[test]
fn init_rolls_over_to_a_new_producer_id_when_epochs_run_out() {
    let mut metadata = TxnMetadata::new("tx", 7, 60_000, 0);
    metadata.producer_epoch = EPOCH_MAX - 1;
    let InitPlan::Ready(next) = plan_init(&metadata, 60_000, (-1, -1), 99, 1).unwrap() else {
        panic!();
    };
    assert_eq!((next.producer_id, next.producer_epoch), (99, 0));
}

#[test]
fn init_with_a_stale_presented_epoch_is_fenced() {
    let metadata = TxnMetadata::new("tx", 7, 60_000, 0);
    assert_eq!(
        plan_init(&metadata, 60_000, (7, 3), 99, 1),
        Err(ErrorCode::ProducerFenced)
    );
    assert!(plan_init(&metadata, 60_000, (7, 0), 99, 1).is_ok());
}

#[test]
fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
    let metadata = ongoing();
    assert_eq!(plan_timeout(&metadata, 10 + 59_999), None);
    let Some(EndPlan::Complete {
        markers, complete, ..
    }) = plan_timeout(&metadata, 10 + 60_000)
    else {
        panic!("expected an abort");
    };
    assert!(!markers.commit);
    assert_eq!(markers.producer_epoch, 1);
    assert_eq!(complete.producer_epoch, 1);
    assert_eq!(complete.state, TxnState::CompleteAbort);
}

#[test]
fn prepare_states_are_finished_on_recovery() {
    let metadata = ongoing();
    let Ok(EndPlan::Complete { prepare, .. }) =
        plan_end(&metadata, 7, 0, false, ErrorCode::ProducerFenced, 5)
    else {
        panic!();
    };
    let Some(EndPlan::Complete {
        markers, complete, ..
    }) = plan_recovery(&prepare, 6)
    else {
        panic!("a prepared abort must be finished");
    };
    assert!(!markers.commit);
    assert_eq!(complete.state, TxnState::CompleteAbort);
    assert_eq!(plan_recovery(&complete, 7), None);
}

#[test]
fn timeout_bounds_are_enforced() {
    let limits = TxnLimits {
        timeout_ms_max: 900_000,
    };
    assert!(validate_timeout(60_000, limits).is_ok());
    assert_eq!(
        validate_timeout(0, limits),
        Err(ErrorCode::InvalidTransactionTimeout)
    );
    assert_eq!(
        validate_timeout(900_001, limits),
        Err(ErrorCode::InvalidTransactionTimeout)
    );
}

#[test]
fn records_round_trip() {
    let metadata = ongoing();
    let decoded = records::decode_value("tx", &records::value(&metadata)).unwrap();
    assert_eq!(decoded, metadata);
    assert_eq!(records::decode_key(&records::key("tx")).unwrap(), "tx");
    assert!(records::decode_value("tx", &[0, 0, 1]).is_err());
}

#[test]
fn verification_needs_the_producer_and_an_added_partition() {
    let metadata = ongoing();
    let parts = [("a".to_string(), 0), ("z".to_string(), 9)];
    assert_eq!(
        verify_partitions(Some(&metadata), 7, 0, &parts),
        Ok(vec![true, false])
    );
    assert_eq!(
        verify_partitions(None, 7, 0, &parts),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        verify_partitions(Some(&metadata), -1, 0, &parts),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        verify_partitions(Some(&metadata), 7, 1, &parts),
        Err(ErrorCode::ProducerFenced)
    );
    let EndPlan::Complete {
        prepare, complete, ..
    } = plan_end(&metadata, 7, 0, true, ErrorCode::ProducerFenced, 30).unwrap()
    else {
        panic!("an ongoing transaction completes");
    };
    assert_eq!(
        verify_partitions(Some(&prepare), 7, 0, &parts),
        Err(ErrorCode::ConcurrentTransactions)
    );
    // Complete: no partition is in a transaction any more.
    assert_eq!(
        verify_partitions(Some(&complete), 7, 0, &parts),
        Ok(vec![false, false])
    );
}
