//! Cluster mode: transaction coordinators follow the leadership of the metadata log's
//! `__transaction_state` partitions (Kafka's TransactionCoordinator onElection /
//! onResignation), as the group coordinators follow `__consumer_offsets`
//! (`coordinator_leadership` holds what both share).
//!
//! Every `LEADERSHIP_POLL`, each shard compares its leader roles of `__transaction_state`
//! partitions with what it serves:
//! - a partition it now leads is replayed to its log end and then served; requests for its
//!   transactional ids meanwhile get COORDINATOR_LOAD_IN_PROGRESS. Transactions left in a
//!   Prepare state (their markers may be partly written) are finished by the transaction
//!   timer (`spawn_txn_timer`), as Kafka's new coordinator resends their markers;
//! - a partition it no longer leads, or leads under a new generation, is unloaded (its
//!   transactions and tickets are dropped); requests for its ids get NOT_COORDINATOR, so
//!   clients look for the coordinator again.
//!
//! Metadata writes carry the leader epoch and complete on the high watermark
//! (`append_as_coordinator`), so a transaction state the client saw acknowledged survives
//! the leader's loss.

use crate::model::{ErrorCode, TopicPartition, coordinator_partition};
use crate::shard::Shard;
use crate::shard::coordinator_leadership::{LEADERSHIP_POLL, ReplayEnd};
use crate::shard::messages::TxnOp;
use crate::storage::PartitionLog;
use crate::txn::{TRANSACTIONS_TOPIC, TxnMetadata, records};
use std::collections::HashMap;
use std::rc::Rc;

/// Answers `op` with `code` (its transactional id is not served here now).
fn refuse(op: TxnOp, code: ErrorCode) {
    let _ = match op {
        TxnOp::Init { reply, .. } => reply.send(Err(code)),
        TxnOp::AddPartitions { reply, .. } | TxnOp::End { reply, .. } => reply.send(code),
        TxnOp::Describe {
            transactional_id,
            reply,
        } => reply.send(super::not_described(transactional_id, code)),
        TxnOp::Verify {
            partitions, reply, ..
        } => reply.send(partitions.into_iter().map(|p| (p, code)).collect()),
        TxnOp::List { reply } => reply.send((Vec::new(), code)),
    };
}

impl Shard {
    /// Answers `op` with the error its transactional id gets here and returns `None`, or
    /// gives it back to be served (always in single-broker mode; ListTransactions lists
    /// what this shard serves).
    pub(in crate::shard) fn admit_txn_op(&self, op: TxnOp) -> Option<TxnOp> {
        let transactional_id = match &op {
            TxnOp::List { .. } => return Some(op),
            TxnOp::Init {
                transactional_id, ..
            }
            | TxnOp::AddPartitions {
                transactional_id, ..
            }
            | TxnOp::End {
                transactional_id, ..
            }
            | TxnOp::Describe {
                transactional_id, ..
            }
            | TxnOp::Verify {
                transactional_id, ..
            } => transactional_id,
        };
        match self.txn_served_here(transactional_id) {
            Ok(_) => Some(op),
            Err(code) => {
                refuse(op, code);
                None
            }
        }
    }

    /// The partition count of the local copy of the metadata log's `__transaction_state`;
    /// `None` while there is no such copy (or only this broker's own topic of that name).
    pub(in crate::shard) fn txn_topic_copy_partitions(&self) -> Option<i32> {
        self.catalog()
            .topic(TRANSACTIONS_TOPIC)
            .filter(|meta| meta.cluster)
            .map(|meta| meta.partitions)
    }

    /// Whether this shard coordinates `transactional_id` now. Single-broker mode: always
    /// (`Ok(None)`). Cluster mode: `Ok(Some(generation))` of the leader role it serves the
    /// id's partition under; COORDINATOR_LOAD_IN_PROGRESS while it loads; else
    /// NOT_COORDINATOR.
    pub(in crate::shard) fn txn_served_here(
        &self,
        transactional_id: &str,
    ) -> Result<Option<u64>, ErrorCode> {
        if !self.config.cluster.cluster_mode() {
            return Ok(None);
        }
        if self.txn_topic_copy_partitions().is_none() {
            return Err(ErrorCode::NotCoordinator);
        }
        let partition = self.transaction_partition(transactional_id);
        self.coordinator_status(&partition, &self.txn_coordinator.served)
            .map(Some)
    }

    /// Cluster mode: starts the task that loads and unloads `__transaction_state`
    /// partitions as leadership moves.
    pub(in crate::shard) fn spawn_txn_leadership(self: &Rc<Self>) {
        if !self.config.cluster.cluster_mode() {
            return;
        }
        let shard = self.clone();
        glommio::spawn_local(async move {
            while !crate::shard::shutdown::shutdown_requested() {
                shard.follow_txn_leadership();
                glommio::timer::sleep(LEADERSHIP_POLL).await;
            }
        })
        .detach();
    }

    /// One round: unload what this shard no longer leads, start loading what it newly leads.
    fn follow_txn_leadership(self: &Rc<Self>) {
        let changes = self.leadership_changes(
            TRANSACTIONS_TOPIC,
            self.txn_topic_copy_partitions(),
            &self.txn_coordinator.served,
        );
        for index in changes.unload {
            self.unload_txn_partition(index);
        }
        for load in changes.load {
            let shard = self.clone();
            glommio::spawn_local(async move {
                let mut replayed = HashMap::new();
                let complete = shard
                    .replay_txn_partition(&load.partition, &load.log, ReplayEnd::LogEnd, &mut replayed)
                    .await
                    .is_ok();
                // Nothing of a partial replay, or of one whose role ended meanwhile (the
                // next round unloads it), is installed.
                if shard
                    .txn_coordinator
                    .served
                    .finish_load(&shard, &load, complete)
                {
                    let loaded = replayed.len();
                    shard
                        .txn_coordinator
                        .transactions
                        .borrow_mut()
                        .extend(replayed);
                    tracing::info!(shard = %shard.id, partition = %load.partition, transactions = loaded, "transaction coordinator loaded the partition it leads");
                }
            })
            .detach();
        }
    }

    /// Drops the transactions (and tickets) of every transactional id whose
    /// `__transaction_state` partition is `index`.
    fn unload_txn_partition(&self, index: i32) {
        let partitions = self
            .txn_topic_copy_partitions()
            .unwrap_or(self.config.transaction.state_topic_partitions);
        let here = |id: &str| coordinator_partition(id, partitions) == index;
        let coordinator = &self.txn_coordinator;
        let mut dropped = 0usize;
        coordinator.transactions.borrow_mut().retain(|id, _| {
            let keep = !here(id);
            dropped += usize::from(!keep);
            keep
        });
        coordinator.ticketed.borrow_mut().retain(|id, _| !here(id));
        tracing::info!(shard = %self.id, partition = index, transactions = dropped, "transaction coordinator unloaded a partition it no longer leads");
    }

    /// Adds the transactions recorded in one `__transaction_state` partition, up to `end`,
    /// to `replayed` (the last record of each transactional id wins; a tombstone removes
    /// it). `Err`: the replay stopped early (logged).
    pub(in crate::shard) async fn replay_txn_partition(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        end: ReplayEnd,
        replayed: &mut HashMap<String, TxnMetadata>,
    ) -> Result<(), ()> {
        self.replay_coordinator_log(partition, log, end, |_, decoded| {
            for record in decoded {
                apply_txn_record(replayed, record.key, record.value);
            }
        })
        .await
    }
}

fn apply_txn_record(
    transactions: &mut HashMap<String, TxnMetadata>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let Some(Ok(transactional_id)) = key.map(records::decode_key) else {
        return;
    };
    match value.map(|v| records::decode_value(&transactional_id, v)) {
        Some(Ok(metadata)) => {
            transactions.insert(transactional_id, metadata);
        }
        Some(Err(error)) => {
            tracing::warn!(%error, "skipping unreadable transaction record")
        }
        None => {
            transactions.remove(&transactional_id);
        }
    }
}
