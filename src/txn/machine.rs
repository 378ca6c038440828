//! Transaction metadata and its transitions (after Kafka's `TransactionCoordinator`).
//! Every method is pure: it validates a request against the current metadata and returns
//! the next metadata (which the shell persists before answering) or a Kafka error code.

use crate::model::ErrorCode;
use std::collections::BTreeSet;

/// Kafka's TransactionState, with its on-disk ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's names (DescribeTransactions, ListTransactions).
    pub fn kafka_name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

/// One transactional id's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) in the ongoing transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Markers to write to every partition of a transaction before it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// Epochs at or above this roll over to a new producer id (Kafka: Short.MaxValue - 1).
pub const EPOCH_MAX: i16 = i16::MAX - 1;

#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    /// Kafka `transaction.max.timeout.ms`.
    pub timeout_ms_max: i32,
}

impl TxnMetadata {
    pub fn new(
        transactional_id: &str,
        producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
    ) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Checks the producer id and epoch a client presents. `fenced_code` is the code for a
    /// stale epoch at this request version (PRODUCER_FENCED or INVALID_PRODUCER_EPOCH).
    fn check_producer(
        &self,
        producer_id: i64,
        epoch: i16,
        fenced_code: ErrorCode,
    ) -> Result<(), ErrorCode> {
        if self.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch < self.producer_epoch {
            return Err(fenced_code);
        }
        if epoch > self.producer_epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        Ok(())
    }
}

/// What InitProducerId must do for an existing transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitPlan {
    /// Persist this metadata and answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// Abort the ongoing transaction first, fencing the old producer: persist `prepare`
    /// (PrepareAbort at the epoch the markers carry, so the outcome is decided and the old
    /// epoch refused before any marker is written), write the markers, then persist
    /// `after` and answer with it. A coordinator that stops after `prepare` leaves the
    /// abort for the transaction timer (or the next leader) to finish.
    AbortThen {
        prepare: TxnMetadata,
        markers: MarkerJob,
        after: TxnMetadata,
    },
}

/// InitProducerId for a transactional id that already has metadata. `fresh_producer_id`
/// is used when the epoch is exhausted. `presented` is the (producer id, epoch) the client
/// sent (KIP-360), or (-1, -1).
pub fn plan_init(
    current: &TxnMetadata,
    timeout_ms: i32,
    presented: (i64, i16),
    fresh_producer_id: i64,
    now_ms: i64,
) -> Result<InitPlan, ErrorCode> {
    if current.state.is_preparing() {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    let (presented_id, presented_epoch) = presented;
    if presented_id >= 0
        && (presented_id != current.producer_id || presented_epoch != current.producer_epoch)
    {
        return Err(ErrorCode::ProducerFenced);
    }
    let mut next = current.clone();
    next.timeout_ms = timeout_ms;
    next.last_update_ms = now_ms;
    if current.producer_epoch >= EPOCH_MAX - 1 {
        next.producer_id = fresh_producer_id;
        next.producer_epoch = 0;
    } else {
        next.producer_epoch = current.producer_epoch + 1;
    }
    if current.state == TxnState::Ongoing {
        // Fence the old producer and abort what it left open (markers carry the new epoch).
        let markers = MarkerJob {
            producer_id: current.producer_id,
            producer_epoch: next.producer_epoch.max(current.producer_epoch),
            commit: false,
            partitions: current.partitions.iter().cloned().collect(),
        };
        let mut prepare = current.clone();
        prepare.state = TxnState::PrepareAbort;
        prepare.producer_epoch = markers.producer_epoch;
        prepare.last_update_ms = now_ms;
        next.state = TxnState::CompleteAbort;
        next.partitions.clear();
        next.start_ms = -1;
        return Ok(InitPlan::AbortThen {
            prepare,
            markers,
            after: next,
        });
    }
    next.state = TxnState::Empty;
    next.partitions.clear();
    next.start_ms = -1;
    Ok(InitPlan::Ready(next))
}

pub fn validate_timeout(timeout_ms: i32, limits: TxnLimits) -> Result<(), ErrorCode> {
    if timeout_ms <= 0 || timeout_ms > limits.timeout_ms_max {
        return Err(ErrorCode::InvalidTransactionTimeout);
    }
    Ok(())
}

/// AddPartitionsToTxn / AddOffsetsToTxn: the metadata with `partitions` added.
pub fn add_partitions(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    fenced_code: ErrorCode,
    now_ms: i64,
) -> Result<TxnMetadata, ErrorCode> {
    current.check_producer(producer_id, epoch, fenced_code)?;
    if current.state.is_preparing() {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    if current.state == TxnState::Dead {
        return Err(ErrorCode::InvalidTxnState);
    }
    let mut next = current.clone();
    if next.state != TxnState::Ongoing {
        next.state = TxnState::Ongoing;
        next.partitions.clear();
        next.start_ms = now_ms;
    }
    next.partitions.extend(partitions.iter().cloned());
    next.last_update_ms = now_ms;
    Ok(next)
}

/// KIP-890 part 1 (Kafka's `handleVerifyPartitionsInTransaction`): may `producer_id` at
/// `epoch` write transactional data to each of `partitions` now? `Ok` says, per partition,
/// whether it is in the ongoing transaction (Kafka answers TRANSACTION_ABORTABLE for one that
/// is not); `Err` applies to all of them.
pub fn verify_partitions(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
) -> Result<Vec<bool>, ErrorCode> {
    let Some(current) = current else {
        return Err(ErrorCode::InvalidProducerIdMapping);
    };
    if current.producer_id != producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    if current.producer_epoch != epoch {
        return Err(ErrorCode::ProducerFenced);
    }
    if matches!(
        current.state,
        TxnState::PrepareCommit | TxnState::PrepareAbort
    ) {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    let ongoing = current.state == TxnState::Ongoing;
    Ok(partitions
        .iter()
        .map(|p| ongoing && current.partitions.contains(p))
        .collect())
}

/// What EndTxn must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPlan {
    /// Persist `prepare`, write the markers, then persist `complete` and answer NONE.
    Complete {
        prepare: TxnMetadata,
        markers: MarkerJob,
        complete: TxnMetadata,
    },
    /// A retry of an EndTxn that already completed: answer NONE.
    AlreadyDone,
}

pub fn plan_end(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    fenced_code: ErrorCode,
    now_ms: i64,
) -> Result<EndPlan, ErrorCode> {
    current.check_producer(producer_id, epoch, fenced_code)?;
    match (current.state, commit) {
        (TxnState::Ongoing, _) => {}
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            return Ok(EndPlan::AlreadyDone);
        }
        (state, _) if state.is_preparing() => return Err(ErrorCode::ConcurrentTransactions),
        _ => return Err(ErrorCode::InvalidTxnState),
    }
    Ok(end_transaction(
        current,
        commit,
        current.producer_epoch,
        now_ms,
    ))
}

fn end_transaction(current: &TxnMetadata, commit: bool, marker_epoch: i16, now_ms: i64) -> EndPlan {
    let mut prepare = current.clone();
    prepare.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    prepare.last_update_ms = now_ms;
    let markers = MarkerJob {
        producer_id: current.producer_id,
        producer_epoch: marker_epoch,
        commit,
        partitions: current.partitions.iter().cloned().collect(),
    };
    let mut complete = prepare.clone();
    complete.state = if commit {
        TxnState::CompleteCommit
    } else {
        TxnState::CompleteAbort
    };
    complete.partitions.clear();
    complete.start_ms = -1;
    EndPlan::Complete {
        prepare,
        markers,
        complete,
    }
}

/// A transaction open longer than its timeout is aborted by the coordinator, and the
/// producer is fenced by bumping its epoch (Kafka's timeout abort).
pub fn plan_timeout(current: &TxnMetadata, now_ms: i64) -> Option<EndPlan> {
    let expired = current.state == TxnState::Ongoing
        && current.start_ms >= 0
        && now_ms >= current.start_ms + i64::from(current.timeout_ms);
    if !expired || current.producer_epoch >= EPOCH_MAX {
        return None;
    }
    let mut bumped = current.clone();
    bumped.producer_epoch += 1;
    Some(end_transaction(
        &bumped,
        false,
        bumped.producer_epoch,
        now_ms,
    ))
}

/// Recovery: a transaction persisted in a Prepare state must be finished by writing its
/// markers again (they are idempotent).
pub fn plan_recovery(current: &TxnMetadata, now_ms: i64) -> Option<EndPlan> {
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            let commit = current.state == TxnState::PrepareCommit;
            Some(end_transaction(
                current,
                commit,
                current.producer_epoch,
                now_ms,
            ))
        }
        _ => None,
    }
}
