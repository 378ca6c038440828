//! Checks of a produce request's producer fields that need state kept outside the
//! partition: that a producer id was handed out by this broker (the controller's producer-id
//! blocks), and that a transactional batch's partition is in its producer's ongoing
//! transaction (KIP-890 part 1: the transaction coordinator verifies it and leaves a ticket
//! on the partition's owner shard, see `storage/txn_tickets.rs` and docs/transactions.md).
//!
//! Owns: the per-shard cache of the allocated producer-id bound, the coordinator's
//! verification (`txn_verify`) and the partitions it already ticketed in each ongoing
//! transaction. May import: `crate::txn`, `crate::model`, shard modules.
//! Runs on: the connection's shard (the callers), shard 0 (the bound), the coordinator's
//! shard (verification) and each partition's owner (tickets). A verification that places
//! tickets holds the transactional id's claim from its check until every ticket is placed,
//! so a marker of the same transaction (written under the same claim) always reaches the
//! partition after the ticket and removes it.
//! Invariants: the cached bound only grows; every producer id below it was handed out (or
//! may have been, before a restart); a partition is in `ticketed` only while its ticket was
//! placed in the current Ongoing transaction.

use super::Shard;
use super::messages::*;
use crate::model::{ErrorCode, ShardId, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Cluster mode: how long a produce with a producer id past the metadata log's bound waits
/// for the block that holds it to be applied here, and how often it looks.
const CLUSTER_BLOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const CLUSTER_BLOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

thread_local! {
    /// The last producer id a cluster-mode check waited for in vain, and when.
    static LAST_UNKNOWN_ID: std::cell::Cell<(i64, Option<std::time::Instant>)> =
        const { std::cell::Cell::new((-1, None)) };
}

impl Shard {
    /// True if `producer_id` was handed out by InitProducerId (this run or an earlier one).
    /// Asks the controller only when the id is past this shard's cached bound; if the
    /// controller cannot answer, the id is given the benefit of the doubt.
    pub async fn producer_id_allocated(self: &Rc<Self>, producer_id: i64) -> bool {
        if producer_id < self.producer_id_bound.get() {
            return true;
        }
        // Cluster mode: ids come in blocks from the metadata log, shared by every broker. A
        // block committed a moment ago may not be applied here yet: wait a little for it.
        if crate::quorum::view::cluster_topics().is_some() {
            // An id that just waited in vain on this shard is refused at once (a request
            // checks each of its partitions: it must not wait once per partition).
            let recently_unknown = LAST_UNKNOWN_ID.with(|last| {
                let (id, at) = last.get();
                id == producer_id && at.is_some_and(|at| at.elapsed() < CLUSTER_BLOCK_WAIT)
            });
            if recently_unknown {
                return false;
            }
            let deadline = std::time::Instant::now() + CLUSTER_BLOCK_WAIT;
            loop {
                let bound = crate::quorum::view::cluster_topics()
                    .map_or(i64::MIN, |topics| topics.producer_id_bound);
                if producer_id < bound {
                    return true;
                }
                if std::time::Instant::now() >= deadline {
                    LAST_UNKNOWN_ID
                        .with(|last| last.set((producer_id, Some(std::time::Instant::now()))));
                    break;
                }
                glommio::timer::sleep(CLUSTER_BLOCK_POLL).await;
            }
        }
        let bound = if self.controller.is_some() {
            Ok(self.controller_producer_id_bound())
        } else {
            self.request(ShardId(0), |reply| {
                ShardMessage::Controller(ControllerOp::ProducerIdBound { reply })
            })
            .await
        };
        match bound {
            Ok(bound) => {
                self.producer_id_bound
                    .set(bound.max(self.producer_id_bound.get()));
                producer_id < bound
            }
            Err(error) => {
                tracing::warn!(shard = %self.id, %error, "cannot ask the controller for the producer id bound");
                true
            }
        }
    }

    /// KIP-890 part 1: asks `transactional_id`'s coordinator whether `producer_id` at
    /// `epoch` may write transactional data to each partition now. On success each
    /// partition holds a ticket by the time this returns.
    pub async fn verify_transaction(
        self: &Rc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<(TopicPartition, ErrorCode)>, super::ShardError> {
        match self.txn_coordinator_elsewhere(transactional_id) {
            Ok(None) => {}
            Ok(Some(node)) => {
                return Ok(self
                    .verify_with_remote_coordinator(
                        node,
                        transactional_id,
                        producer_id,
                        epoch,
                        partitions,
                    )
                    .await);
            }
            Err(code) => return Ok(partitions.into_iter().map(|p| (p, code)).collect()),
        }
        let owned = transactional_id.to_string();
        self.txn_call(transactional_id, |reply| TxnOp::Verify {
            transactional_id: owned,
            producer_id,
            producer_epoch: epoch,
            partitions,
            place_tickets: true,
            reply,
        })
        .await
    }

    /// The coordinator's answer to a partition leader on another broker (AddPartitionsToTxn
    /// v4, verify only): the verdicts of `txn_verify`, with no ticket placed.
    pub(super) fn txn_check(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let keys: Vec<(String, i32)> = partitions
            .iter()
            .map(|p| (p.topic.to_string(), p.partition))
            .collect();
        let transactions = self.txn_coordinator.transactions.borrow();
        let verdicts = crate::txn::verify_partitions(
            transactions.get(transactional_id),
            producer_id,
            epoch,
            &keys,
        );
        match verdicts {
            Ok(verdicts) => partitions
                .into_iter()
                .zip(verdicts)
                .map(|(p, in_txn)| {
                    let code = if in_txn {
                        ErrorCode::None
                    } else {
                        ErrorCode::TransactionAbortable
                    };
                    (p, code)
                })
                .collect(),
            Err(code) => partitions.into_iter().map(|p| (p, code)).collect(),
        }
    }

    /// The coordinator's side of `verify_transaction`. Partitions already ticketed in this
    /// transaction need only the check; placing new tickets needs the transactional id's
    /// claim (taken right after the check, with no `.await` between), so that no marker of
    /// this transaction can be on its way while they are placed.
    pub(super) async fn txn_verify(
        self: &Rc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let mut results = self.txn_check(transactional_id, producer_id, epoch, partitions);
        let ticketed = self.ticketed(transactional_id);
        let mut to_ticket: BTreeMap<ShardId, Vec<TopicPartition>> = BTreeMap::new();
        for (partition, code) in &results {
            let key = (partition.topic.to_string(), partition.partition);
            if *code == ErrorCode::None && !ticketed.contains(&key) {
                let owner = self.owner_of(partition);
                to_ticket.entry(owner).or_default().push(partition.clone());
            }
        }
        if to_ticket.is_empty() {
            return results;
        }
        let Some(_guard) = self.claim(transactional_id) else {
            let waiting: BTreeSet<TopicPartition> = to_ticket.into_values().flatten().collect();
            for (partition, code) in &mut results {
                if waiting.contains(partition) {
                    *code = ErrorCode::ConcurrentTransactions;
                }
            }
            return results;
        };
        let placed: BTreeSet<TopicPartition> = to_ticket.values().flatten().cloned().collect();
        let failed = self.place_tickets(producer_id, epoch, to_ticket).await;
        for (partition, code) in &mut results {
            if failed.contains(partition) {
                *code = ErrorCode::CoordinatorNotAvailable;
            } else if placed.contains(partition) {
                self.mark_ticketed(transactional_id, partition);
            }
        }
        results
    }

    /// Puts the tickets on the owner shards; returns the partitions whose owner did not
    /// answer.
    async fn place_tickets(
        self: &Rc<Self>,
        producer_id: i64,
        epoch: i16,
        per_shard: BTreeMap<ShardId, Vec<TopicPartition>>,
    ) -> BTreeSet<TopicPartition> {
        let mut failed = BTreeSet::new();
        for (target, partitions) in per_shard {
            if target == self.id {
                self.allow_transaction_local(producer_id, epoch, &partitions);
                continue;
            }
            let sent = partitions.clone();
            let placed = self
                .request(target, |reply| {
                    ShardMessage::AllowTxn(AllowTxnOp {
                        producer_id,
                        epoch,
                        partitions: sent,
                        reply,
                    })
                })
                .await;
            if let Err(error) = placed {
                tracing::warn!(shard = %self.id, %target, %error, "cannot place transaction tickets");
                failed.extend(partitions);
            }
        }
        failed
    }

    /// Tickets on partitions this shard owns (the handling of `AllowTxnOp`).
    pub(super) fn allow_transaction_local(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) {
        for partition in partitions {
            if let Some(log) = self.log(partition) {
                log.allow_transaction(producer_id, epoch);
            }
        }
    }

    fn ticketed(&self, transactional_id: &str) -> BTreeSet<(String, i32)> {
        self.txn_coordinator
            .ticketed
            .borrow()
            .get(transactional_id)
            .cloned()
            .unwrap_or_default()
    }

    fn mark_ticketed(&self, transactional_id: &str, partition: &TopicPartition) {
        self.txn_coordinator
            .ticketed
            .borrow_mut()
            .entry(transactional_id.to_string())
            .or_default()
            .insert((partition.topic.to_string(), partition.partition));
    }
}
