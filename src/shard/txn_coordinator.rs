//! The transaction coordinator shell on the shard owning a transactional id's
//! `__transaction_state` partition (cluster mode: the partition's leader, `leadership`): it
//! applies the pure `txn` plans, persists metadata (synced, and in cluster mode replicated,
//! before answering), writes COMMIT/ABORT markers to every partition of a transaction
//! through their leaders (`txn_markers`), aborts timed-out transactions, and finishes
//! transactions left in a Prepare state (after a start, a move of leadership, or markers
//! that could not be written yet).

use super::coordinator_leadership::ReplayEnd;
use super::messages::*;
use super::{Shard, now_ms};
use crate::model::records::{NewRecord, encode_batch};
use crate::model::{ErrorCode, ShardId, TopicPartition, coordinator_partition};
use crate::txn::{
    EndPlan, InitPlan, MarkerJob, TRANSACTIONS_TOPIC, TxnLimits, TxnMetadata, plan_end, plan_init,
    plan_recovery, plan_timeout, records, validate_timeout,
};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

mod leadership;

pub(super) struct TxnCoordinator {
    limits: TxnLimits,
    pub(super) transactions: RefCell<HashMap<String, TxnMetadata>>,
    /// Transactional ids with an operation in flight: a second one gets
    /// CONCURRENT_TRANSACTIONS (the client retries), as in Kafka.
    busy: RefCell<HashSet<String>>,
    /// Partitions whose owner holds a verification ticket for the ongoing transaction of
    /// a transactional id (see `producer_checks`); cleared when it leaves Ongoing.
    pub(super) ticketed: RefCell<HashMap<String, BTreeSet<(String, i32)>>>,
    /// Cluster mode: the `__transaction_state` partitions (by number) this shard loads or
    /// serves as their leader (`leadership`).
    served: super::coordinator_leadership::ServedPartitions,
}

impl TxnCoordinator {
    pub(super) fn new(config: &crate::config::TransactionConfig) -> TxnCoordinator {
        TxnCoordinator {
            limits: TxnLimits {
                timeout_ms_max: config.timeout_ms_max,
            },
            transactions: RefCell::new(HashMap::new()),
            busy: RefCell::new(HashSet::new()),
            ticketed: RefCell::new(HashMap::new()),
            served: Default::default(),
        }
    }
}

/// Marks a transactional id busy for the lifetime of the guard.
pub(super) struct BusyGuard<'a> {
    busy: &'a RefCell<HashSet<String>>,
    id: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.busy.borrow_mut().remove(&self.id);
    }
}

impl Shard {
    pub fn transaction_partition(&self, transactional_id: &str) -> TopicPartition {
        let partitions = self
            .catalog()
            .topic(TRANSACTIONS_TOPIC)
            .map_or(self.config.transaction.state_topic_partitions, |t| {
                t.partitions
            });
        TopicPartition::new(
            TRANSACTIONS_TOPIC,
            coordinator_partition(transactional_id, partitions),
        )
    }

    /// Runs a transaction operation on the coordinator shard of `transactional_id`.
    pub async fn txn_call<T: Send + 'static>(
        self: &Rc<Self>,
        transactional_id: &str,
        build: impl FnOnce(Reply<T>) -> TxnOp,
    ) -> Result<T, super::ShardError> {
        let target = self.owner_of(&self.transaction_partition(transactional_id));
        self.txn_call_on(target, build).await
    }

    pub async fn txn_call_on<T: Send + 'static>(
        self: &Rc<Self>,
        target: ShardId,
        build: impl FnOnce(Reply<T>) -> TxnOp,
    ) -> Result<T, super::ShardError> {
        let (reply, receiver) = super::reply::reply_channel();
        let op = build(reply);
        if target == self.id {
            self.handle_txn_op(op).await;
        } else {
            self.send(target, ShardMessage::Txn(op)).await?;
        }
        receiver
            .await
            .map_err(|_| super::ShardError::NoReply { target })
    }

    pub(super) fn claim(&self, transactional_id: &str) -> Option<BusyGuard<'_>> {
        let busy = &self.txn_coordinator.busy;
        if !busy.borrow_mut().insert(transactional_id.to_string()) {
            return None;
        }
        Some(BusyGuard {
            busy,
            id: transactional_id.to_string(),
        })
    }

    pub(super) async fn handle_txn_op(self: &Rc<Self>, op: TxnOp) {
        let Some(op) = self.admit_txn_op(op) else {
            return;
        };
        match op {
            TxnOp::Init {
                transactional_id,
                timeout_ms,
                presented,
                reply,
            } => {
                let _ = reply.send(
                    self.txn_init(&transactional_id, timeout_ms, presented)
                        .await,
                );
            }
            TxnOp::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                fenced_code,
                reply,
            } => {
                let outcome = self
                    .txn_add(
                        &transactional_id,
                        producer_id,
                        producer_epoch,
                        partitions,
                        fenced_code,
                    )
                    .await;
                let _ = reply.send(outcome);
            }
            TxnOp::End {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                fenced_code,
                reply,
            } => {
                let outcome = self
                    .txn_end(
                        &transactional_id,
                        producer_id,
                        producer_epoch,
                        commit,
                        fenced_code,
                    )
                    .await;
                let _ = reply.send(outcome);
            }
            TxnOp::Describe {
                transactional_id,
                reply,
            } => {
                let transactions = self.txn_coordinator.transactions.borrow();
                let description = match transactions.get(&transactional_id) {
                    Some(metadata) => describe(metadata),
                    None => not_described(transactional_id, ErrorCode::TransactionalIdNotFound),
                };
                let _ = reply.send(description);
            }
            TxnOp::Verify {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                place_tickets,
                reply,
            } => {
                let outcome = if place_tickets {
                    self.txn_verify(&transactional_id, producer_id, producer_epoch, partitions)
                        .await
                } else {
                    self.txn_check(&transactional_id, producer_id, producer_epoch, partitions)
                };
                let _ = reply.send(outcome);
            }
            TxnOp::List { reply } => {
                let listed = self
                    .txn_coordinator
                    .transactions
                    .borrow()
                    .values()
                    .map(describe)
                    .collect();
                let code = if self.txn_coordinator.served.any_loading() {
                    ErrorCode::CoordinatorLoadInProgress
                } else {
                    ErrorCode::None
                };
                let _ = reply.send((listed, code));
            }
        }
    }

    async fn txn_init(
        self: &Rc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        presented: (i64, i16),
    ) -> Result<(i64, i16), ErrorCode> {
        validate_timeout(timeout_ms, self.txn_coordinator.limits)?;
        let _guard = self
            .claim(transactional_id)
            .ok_or(ErrorCode::ConcurrentTransactions)?;
        let role = self.txn_served_here(transactional_id)?;
        let current = self
            .txn_coordinator
            .transactions
            .borrow()
            .get(transactional_id)
            .cloned();
        let now = now_ms();
        let Some(current) = current else {
            let producer_id = self.allocate_producer_id().await?;
            let metadata = TxnMetadata::new(transactional_id, producer_id, timeout_ms, now);
            self.persist_txn(&metadata, role).await?;
            return Ok((metadata.producer_id, metadata.producer_epoch));
        };
        let fresh_id = if current.producer_epoch >= crate::txn::EPOCH_MAX - 1 {
            self.allocate_producer_id().await?
        } else {
            -1
        };
        let after = match plan_init(&current, timeout_ms, presented, fresh_id, now)? {
            InitPlan::Ready(next) => next,
            InitPlan::AbortThen {
                prepare,
                markers,
                after,
            } => {
                self.persist_txn(&prepare, role).await?;
                self.write_markers(transactional_id, &markers, role).await?;
                after
            }
        };
        self.persist_txn(&after, role).await?;
        Ok((after.producer_id, after.producer_epoch))
    }

    async fn txn_add(
        self: &Rc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
        fenced_code: ErrorCode,
    ) -> ErrorCode {
        let Some(_guard) = self.claim(transactional_id) else {
            return ErrorCode::ConcurrentTransactions;
        };
        let role = match self.txn_served_here(transactional_id) {
            Ok(role) => role,
            Err(code) => return code,
        };
        let current = self
            .txn_coordinator
            .transactions
            .borrow()
            .get(transactional_id)
            .cloned();
        let Some(current) = current else {
            return ErrorCode::InvalidProducerIdMapping;
        };
        match crate::txn::add_partitions(
            &current,
            producer_id,
            epoch,
            &partitions,
            fenced_code,
            now_ms(),
        ) {
            Ok(next) if next == current => ErrorCode::None,
            Ok(next) => self
                .persist_txn(&next, role)
                .await
                .err()
                .unwrap_or(ErrorCode::None),
            Err(error) => error,
        }
    }

    async fn txn_end(
        self: &Rc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fenced_code: ErrorCode,
    ) -> ErrorCode {
        let Some(_guard) = self.claim(transactional_id) else {
            return ErrorCode::ConcurrentTransactions;
        };
        let role = match self.txn_served_here(transactional_id) {
            Ok(role) => role,
            Err(code) => return code,
        };
        let current = self
            .txn_coordinator
            .transactions
            .borrow()
            .get(transactional_id)
            .cloned();
        let Some(current) = current else {
            return ErrorCode::InvalidProducerIdMapping;
        };
        match plan_end(&current, producer_id, epoch, commit, fenced_code, now_ms()) {
            Ok(EndPlan::AlreadyDone) => ErrorCode::None,
            Ok(plan) => self
                .run_end_plan(plan, role)
                .await
                .err()
                .unwrap_or(ErrorCode::None),
            Err(error) => error,
        }
    }

    /// Prepare (persisted), markers, Complete (persisted). Once Prepare is persisted the
    /// outcome is decided and this answers `Ok`, as Kafka answers EndTxn: markers or a
    /// Complete record that could not be written are written by the transaction timer
    /// (`spawn_txn_timer` retries transactions left in a Prepare state, as Kafka's marker
    /// channel retries until it succeeds); the producer meanwhile gets
    /// CONCURRENT_TRANSACTIONS and retries.
    /// `role`: the leader role the plan was made under (`persist_txn`).
    async fn run_end_plan(
        self: &Rc<Self>,
        plan: EndPlan,
        role: Option<u64>,
    ) -> Result<(), ErrorCode> {
        let EndPlan::Complete {
            prepare,
            markers,
            complete,
        } = plan
        else {
            return Ok(());
        };
        self.persist_txn(&prepare, role).await?;
        let finished = match self
            .write_markers(&prepare.transactional_id, &markers, role)
            .await
        {
            Ok(()) => self.persist_txn(&complete, role).await,
            Err(error) => Err(error),
        };
        if let Err(error) = finished {
            tracing::warn!(shard = %self.id, transactional_id = %prepare.transactional_id, ?error, "transaction decided but not finished; the transaction timer retries");
        }
        Ok(())
    }

    /// Writes the metadata record to `__transaction_state` and waits until it is synced
    /// (cluster mode: on every ISR member), then makes it current here. Cluster mode: only
    /// while this shard serves the id's partition under `role` throughout, the leader role
    /// (`txn_served_here`) under which the caller read the state `metadata` follows from.
    /// A state read under an earlier role is stale once the partition was unloaded and
    /// loaded again (another leader may have moved the transaction on meanwhile), so it is
    /// never written under the new one: NOT_COORDINATOR, as Kafka refuses a write whose
    /// coordinator epoch is not the current one.
    async fn persist_txn(
        &self,
        metadata: &TxnMetadata,
        role: Option<u64>,
    ) -> Result<(), ErrorCode> {
        let partition = self.transaction_partition(&metadata.transactional_id);
        let Some(log) = self.log(&partition) else {
            return Err(ErrorCode::NotCoordinator);
        };
        let serving = same_role(role, self.txn_served_here(&metadata.transactional_id))?;
        let key = records::key(&metadata.transactional_id);
        let value = records::value(metadata);
        let record = NewRecord {
            key: Some(&key),
            value: Some(&value),
        };
        let batch = Bytes::from(encode_batch(&[record], now_ms()));
        let timeout = Duration::from_millis(self.config.transaction.state_write_timeout_ms);
        self.append_as_coordinator(&partition, &log, batch, serving.is_some(), timeout)
            .await?;
        if same_role(serving, self.txn_served_here(&metadata.transactional_id)).is_err() {
            // Reloaded meanwhile: the record is in the log, and the load that follows
            // (here or on the new leader) reads it; memory here is not this role's.
            return Err(ErrorCode::NotCoordinator);
        }
        if metadata.state != crate::txn::TxnState::Ongoing {
            self.txn_coordinator
                .ticketed
                .borrow_mut()
                .remove(&metadata.transactional_id);
        }
        self.txn_coordinator
            .transactions
            .borrow_mut()
            .insert(metadata.transactional_id.clone(), metadata.clone());
        Ok(())
    }

    /// Writes the markers into every partition through its leader (`txn_markers`). They
    /// carry the coordinator epoch: the leader epoch of the id's `__transaction_state`
    /// partition (0 in single-broker mode), as Kafka's. Each round of sending checks that
    /// this shard still coordinates the id under `role`: a deposed coordinator stops
    /// (NOT_COORDINATOR) rather than keep retrying for `cluster.replica_ack_timeout_ms`,
    /// because its late marker could land after the new coordinator finished the
    /// transaction and the producer began the next one on that partition, ending the new
    /// transaction there early (the partitions do not check the coordinator epoch yet).
    async fn write_markers(
        self: &Rc<Self>,
        transactional_id: &str,
        job: &MarkerJob,
        role: Option<u64>,
    ) -> Result<(), ErrorCode> {
        let partition = self.transaction_partition(transactional_id);
        let coordinator_epoch = self
            .replicas
            .leader_epoch_for_append(&partition, false)
            .ok()
            .flatten()
            .unwrap_or(0);
        let still_coordinator =
            || same_role(role, self.txn_served_here(transactional_id)).map(|_| ());
        self.write_marker_job(job, coordinator_epoch, still_coordinator)
            .await
    }

    /// Single-broker mode: replays the owned `__transaction_state` partitions, then
    /// finishes any transaction left in a Prepare state (its markers may be partly
    /// written). Cluster mode loads a partition when this broker becomes its leader
    /// (`leadership`).
    pub(super) async fn load_transactions(self: &Rc<Self>) {
        if self.config.cluster.cluster_mode() {
            return;
        }
        let partitions: Vec<_> = self
            .owned_logs()
            .into_iter()
            .filter(|(tp, _)| tp.topic.as_str() == TRANSACTIONS_TOPIC)
            .collect();
        let mut replayed = HashMap::new();
        for (partition, log) in partitions {
            // What could be read is served, as before (the error is logged).
            let _ = self
                .replay_txn_partition(&partition, &log, ReplayEnd::HighWatermark, &mut replayed)
                .await;
        }
        self.txn_coordinator
            .transactions
            .borrow_mut()
            .extend(replayed);
        let unfinished: Vec<EndPlan> = self
            .txn_coordinator
            .transactions
            .borrow()
            .values()
            .filter_map(|metadata| plan_recovery(metadata, now_ms()))
            .collect();
        for plan in unfinished {
            if let Err(error) = self.run_end_plan(plan, None).await {
                tracing::error!(shard = %self.id, ?error, "cannot finish a prepared transaction");
            }
        }
    }

    /// Aborts transactions open longer than their timeout, fencing their producers, and
    /// finishes transactions left in a Prepare state (markers not all written yet, or a
    /// partition loaded by a new leader) that no request is working on.
    pub(super) fn spawn_txn_timer(self: &Rc<Self>) {
        let shard = self.clone();
        let interval = Duration::from_millis(self.config.transaction.timeout_check_interval_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(interval).await;
                let now = now_ms();
                // Only the ids here: each plan is made after its claim, from the state and
                // leader role of that moment (a request, or an unload and a load, may have
                // moved the transaction on while an earlier one was being finished).
                let candidates: Vec<String> = shard
                    .txn_coordinator
                    .transactions
                    .borrow()
                    .values()
                    .filter(|m| plan_unattended(m, now).is_some())
                    .map(|m| m.transactional_id.clone())
                    .collect();
                for transactional_id in candidates {
                    let Some(_guard) = shard.claim(&transactional_id) else { continue };
                    let Ok(role) = shard.txn_served_here(&transactional_id) else { continue };
                    let plan = shard
                        .txn_coordinator
                        .transactions
                        .borrow()
                        .get(&transactional_id)
                        .and_then(|m| plan_unattended(m, now_ms()));
                    let Some(plan) = plan else { continue };
                    tracing::info!(shard = %shard.id, %transactional_id, "finishing a timed-out or prepared transaction");
                    if let Err(error) = shard.run_end_plan(plan, role).await {
                        tracing::error!(shard = %shard.id, %transactional_id, ?error, "cannot finish the transaction");
                    }
                }
            }
        })
        .detach();
    }
}

/// What the transaction timer does for a transaction no request is working on: abort it
/// if it timed out, finish it if it was left in a Prepare state.
fn plan_unattended(current: &TxnMetadata, now_ms: i64) -> Option<EndPlan> {
    plan_timeout(current, now_ms).or_else(|| plan_recovery(current, now_ms))
}

/// `Ok(role)` if `now` (`txn_served_here` at this moment) is still the leader role `role` a
/// state was read under; else the error a write of that state gets.
fn same_role(
    role: Option<u64>,
    now: Result<Option<u64>, ErrorCode>,
) -> Result<Option<u64>, ErrorCode> {
    match now {
        Ok(current) if current == role => Ok(role),
        Ok(_) => Err(ErrorCode::NotCoordinator),
        Err(code) => Err(code),
    }
}

/// DescribeTransactions' answer for an id without a description here.
fn not_described(transactional_id: String, error: ErrorCode) -> TxnDescription {
    TxnDescription {
        transactional_id,
        error,
        state: "",
        producer_id: -1,
        producer_epoch: -1,
        timeout_ms: 0,
        start_ms: -1,
        partitions: Vec::new(),
    }
}

fn describe(metadata: &TxnMetadata) -> TxnDescription {
    TxnDescription {
        transactional_id: metadata.transactional_id.clone(),
        error: ErrorCode::None,
        state: metadata.state.kafka_name(),
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        timeout_ms: metadata.timeout_ms,
        start_ms: metadata.start_ms,
        partitions: metadata.partitions.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::TxnState;

    #[test]
    fn a_state_read_under_one_leader_role_is_not_written_under_another() {
        assert_eq!(same_role(None, Ok(None)), Ok(None), "single-broker mode");
        assert_eq!(same_role(Some(3), Ok(Some(3))), Ok(Some(3)));
        // Unloaded and loaded again meanwhile (the transaction may have moved on elsewhere).
        assert_eq!(
            same_role(Some(3), Ok(Some(4))),
            Err(ErrorCode::NotCoordinator)
        );
        assert_eq!(
            same_role(Some(3), Err(ErrorCode::CoordinatorLoadInProgress)),
            Err(ErrorCode::CoordinatorLoadInProgress)
        );
        assert_eq!(
            same_role(Some(3), Err(ErrorCode::NotCoordinator)),
            Err(ErrorCode::NotCoordinator)
        );
    }

    #[test]
    fn the_timer_plans_from_the_state_it_finds_after_its_claim() {
        let mut open = TxnMetadata::new("t", 7, 1_000, 0);
        open.state = TxnState::Ongoing;
        open.start_ms = 0;
        open.partitions.insert(("a".to_string(), 0));
        let Some(EndPlan::Complete { prepare, .. }) = plan_unattended(&open, 1_000) else {
            panic!("a timed-out transaction is aborted");
        };
        assert_eq!(prepare.state, TxnState::PrepareAbort);
        // While the timer finished another transaction, the producer ended this one and began
        // the next: the timer must not abort (and drop) the new transaction with a plan made
        // from the old state.
        let mut next = open.clone();
        next.start_ms = 900;
        next.partitions = [("b".to_string(), 1)].into_iter().collect();
        assert_eq!(plan_unattended(&next, 1_000), None);
        let mut prepared = open.clone();
        prepared.state = TxnState::PrepareCommit;
        let Some(EndPlan::Complete { markers, .. }) = plan_unattended(&prepared, 0) else {
            panic!("a prepared transaction is finished");
        };
        assert!(markers.commit);
    }
}
