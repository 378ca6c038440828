//! Cluster mode, KIP-890 part 1 across brokers: a transactional batch for a partition this
//! broker leads, whose transactional id's coordinator is another broker, is verified by
//! asking that coordinator (AddPartitionsToTxn v4, `verify_only`), as Kafka's partition
//! leaders do through their AddPartitionsToTxnManager.
//!
//! Order, so that an answer can never start a transaction the coordinator has ended (a
//! "hanging" transaction): each partition's owner shard begins a verification (a token,
//! `txn_tickets`), then the coordinator is asked, then on a success answer the owner places
//! the ticket only if no marker of the producer came since the verification began.
//!
//! Owns: the verification flow and the AddPartitionsToTxn v4 client call. May import:
//! `super::peer_connection`, `crate::quorum::view`, kafka-protocol. Runs on: the produce
//! request's shard (the flow) and each partition's owner shard (`verification_local`).
//! Invariants: a ticket is placed only for a partition the coordinator said is in the
//! producer's ongoing transaction, and only while the verification begun before asking is
//! still pending.

use super::Shard;
use super::messages::{ShardMessage, VerificationOp};
use super::peer_connection::PeerError;
use crate::cluster::NodeId;
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::txn::TRANSACTIONS_TOPIC;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

/// AddPartitionsToTxn version a partition leader sends (the first with `verify_only`).
const VERIFY_VERSION: i16 = 4;
/// The largest verification answer read (a few bytes per partition).
const VERIFY_RESPONSE_BYTES_MAX: usize = 1 << 20;

impl Shard {
    /// Cluster mode: the broker coordinating `transactional_id` when it is another one
    /// (`Ok(None)`: this broker, or single-broker mode). COORDINATOR_NOT_AVAILABLE while its
    /// `__transaction_state` partition is not in the metadata log or has no leader.
    pub(super) fn txn_coordinator_elsewhere(
        &self,
        transactional_id: &str,
    ) -> Result<Option<NodeId>, ErrorCode> {
        if !self.config.cluster.cluster_mode() {
            return Ok(None);
        }
        let topics =
            crate::quorum::view::cluster_topics().ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let leader = topics
            .coordinator_leader(TRANSACTIONS_TOPIC, transactional_id)
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        Ok((leader != self.config.server.node_id).then_some(leader))
    }

    /// The flow of the module comment; one verdict per partition.
    pub(super) async fn verify_with_remote_coordinator(
        self: &Rc<Self>,
        coordinator: NodeId,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let mut per_shard: BTreeMap<ShardId, Vec<TopicPartition>> = BTreeMap::new();
        for partition in &partitions {
            per_shard
                .entry(self.owner_of(partition))
                .or_default()
                .push(partition.clone());
        }
        // 1. Begin a verification on each partition's owner.
        let mut tokens: HashMap<TopicPartition, (ShardId, u64)> = HashMap::new();
        for (owner, owned) in &per_shard {
            let begun = self
                .on_owner(*owner, |reply| VerificationOp::Begin {
                    producer_id,
                    epoch,
                    partitions: owned.clone(),
                    reply,
                })
                .await
                .unwrap_or_default();
            for (partition, token) in begun {
                if let Some(token) = token {
                    tokens.insert(partition, (*owner, token));
                }
            }
        }
        // 2. Ask the coordinator.
        let asked: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| tokens.contains_key(*p))
            .cloned()
            .collect();
        let answers: HashMap<TopicPartition, ErrorCode> = match self
            .ask_coordinator_to_verify(coordinator, transactional_id, producer_id, epoch, &asked)
            .await
        {
            Ok(answers) => answers.into_iter().collect(),
            Err(error) => {
                tracing::warn!(shard = %self.id, coordinator, %error, "cannot ask the transaction coordinator to verify");
                HashMap::new()
            }
        };
        // 3. Place the tickets of the partitions it verified.
        let mut to_finish: BTreeMap<ShardId, Vec<(TopicPartition, u64)>> = BTreeMap::new();
        for (partition, code) in &answers {
            if let (ErrorCode::None, Some((owner, token))) = (code, tokens.get(partition)) {
                to_finish
                    .entry(*owner)
                    .or_default()
                    .push((partition.clone(), *token));
            }
        }
        let mut placed: HashMap<TopicPartition, bool> = HashMap::new();
        for (owner, owned) in to_finish {
            let finished = self
                .on_owner(owner, |reply| VerificationOp::Finish {
                    producer_id,
                    epoch,
                    tokens: owned,
                    reply,
                })
                .await
                .unwrap_or_default();
            placed.extend(finished);
        }
        partitions
            .into_iter()
            .map(|partition| {
                let code = match answers.get(&partition) {
                    // A marker came meanwhile: the transaction the answer was about ended;
                    // the producer retries and the coordinator decides again.
                    Some(ErrorCode::None) if placed.get(&partition) != Some(&true) => {
                        ErrorCode::ConcurrentTransactions
                    }
                    Some(code) => *code,
                    None if tokens.contains_key(&partition) => ErrorCode::CoordinatorNotAvailable,
                    None => ErrorCode::NotLeaderOrFollower,
                };
                (partition, code)
            })
            .collect()
    }

    /// Runs a verification step on `owner` (this shard or another).
    async fn on_owner<T: Send + 'static>(
        self: &Rc<Self>,
        owner: ShardId,
        build: impl FnOnce(super::messages::Reply<T>) -> VerificationOp,
    ) -> Result<T, super::ShardError> {
        if owner == self.id {
            let (reply, receiver) = super::reply::reply_channel();
            self.verification_local(build(reply));
            return receiver
                .await
                .map_err(|_| super::ShardError::NoReply { target: owner });
        }
        self.request(owner, |reply| ShardMessage::TxnVerification(build(reply)))
            .await
    }

    /// The owner shard's side of `VerificationOp`.
    pub(super) fn verification_local(&self, op: VerificationOp) {
        match op {
            VerificationOp::Begin {
                producer_id,
                epoch,
                partitions,
                reply,
            } => {
                let begun = partitions
                    .into_iter()
                    .map(|partition| {
                        let token = self
                            .log(&partition)
                            .map(|log| log.begin_txn_verification(producer_id, epoch));
                        (partition, token)
                    })
                    .collect();
                let _ = reply.send(begun);
            }
            VerificationOp::Finish {
                producer_id,
                epoch,
                tokens,
                reply,
            } => {
                let finished = tokens
                    .into_iter()
                    .map(|(partition, token)| {
                        let placed = self.log(&partition).is_some_and(|log| {
                            log.finish_txn_verification(producer_id, epoch, token)
                        });
                        (partition, placed)
                    })
                    .collect();
                let _ = reply.send(finished);
            }
        }
    }
}

impl Shard {
    /// AddPartitionsToTxn v4 (`verify_only`) to `coordinator`: its verdict per partition (a
    /// partition missing from the answer: COORDINATOR_NOT_AVAILABLE).
    async fn ask_coordinator_to_verify(
        &self,
        coordinator: NodeId,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, ErrorCode)>, PeerError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for partition in partitions {
            topics
                .entry(partition.topic.as_str())
                .or_default()
                .push(partition.partition);
        }
        let mut transaction = AddPartitionsToTxnTransaction::default();
        transaction.transactional_id =
            TransactionalId(StrBytes::from_string(transactional_id.to_string()));
        transaction.producer_id = ProducerId(producer_id);
        transaction.producer_epoch = epoch;
        transaction.verify_only = true;
        transaction.topics = topics
            .into_iter()
            .map(|(name, indexes)| {
                let mut topic = AddPartitionsToTxnTopic::default();
                topic.name = TopicName(StrBytes::from_string(name.to_string()));
                topic.partitions = indexes;
                topic
            })
            .collect();
        let mut request = AddPartitionsToTxnRequest::default();
        request.transactions = vec![transaction];
        let timeout = Duration::from_millis(
            self.config.transaction.state_write_timeout_ms
                + self.config.cluster.controller_connect_timeout_ms,
        );
        let response: AddPartitionsToTxnResponse = self
            .call_peer(
                coordinator,
                ApiKey::AddPartitionsToTxn,
                VERIFY_VERSION,
                &request,
                timeout,
                VERIFY_RESPONSE_BYTES_MAX,
            )
            .await?;
        let top_level = ErrorCode::from_code(response.error_code);
        let mut answered: HashMap<TopicPartition, ErrorCode> = HashMap::new();
        for result in &response.results_by_transaction {
            for topic in &result.topic_results {
                for entry in &topic.results_by_partition {
                    answered.insert(
                        TopicPartition::new(topic.name.0.as_str(), entry.partition_index),
                        ErrorCode::from_code(entry.partition_error_code),
                    );
                }
            }
        }
        Ok(partitions
            .iter()
            .map(|partition| {
                let code = match answered.get(partition) {
                    _ if top_level.is_error() => top_level,
                    Some(code) => *code,
                    None => ErrorCode::CoordinatorNotAvailable,
                };
                (partition.clone(), code)
            })
            .collect())
    }
}
