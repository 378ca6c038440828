//! AddPartitionsToTxn (key 24). v0–3 (clients): adds partitions to the producer's ongoing
//! transaction on its coordinator shard. If any topic is unknown, those partitions get
//! UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED, as in Kafka.
//! v4 (brokers, KIP-890): a batch of transactions; with `verify_only` the coordinator only
//! answers whether each partition is in the producer's ongoing transaction (a partition
//! leader on another broker asks before it lets a transactional batch in).

use super::topic_name;
use crate::model::ErrorCode;
use crate::model::TopicPartition;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{Shard, TxnOp};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnResponse, RequestKind, TransactionalId};
use std::rc::Rc;

/// KIP-588: PRODUCER_FENCED for clients that know it, INVALID_PRODUCER_EPOCH before.
pub fn fenced_code(version: i16, first_version_with_fenced: i16) -> ErrorCode {
    if version >= first_version_with_fenced {
        ErrorCode::ProducerFenced
    } else {
        ErrorCode::InvalidProducerEpoch
    }
}

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::AddPartitionsToTxn(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        if context.version >= 4 {
            let response = batched(&shard, request.transactions).await?;
            return context.respond(&response).map(Some);
        }
        let catalog = shard.catalog();
        let known = |topic: &str, partition: i32| {
            catalog
                .topic(topic)
                .is_some_and(|t| partition >= 0 && partition < t.partitions)
        };
        let topics = &request.v3_and_below_topics;
        let any_unknown = topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| !known(&t.name.0, *p)));
        let error_for_all = if any_unknown {
            None
        } else {
            let transactional_id = request.v3_and_below_transactional_id.0.to_string();
            let partitions: Vec<(String, i32)> = topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
                .collect();
            let owned = transactional_id.clone();
            Some(
                shard
                    .txn_call(&transactional_id, |reply| TxnOp::AddPartitions {
                        transactional_id: owned,
                        producer_id: request.v3_and_below_producer_id.0,
                        producer_epoch: request.v3_and_below_producer_epoch,
                        partitions,
                        fenced_code: fenced_code(context.version, 2),
                        reply,
                    })
                    .await?,
            )
        };
        let mut response = AddPartitionsToTxnResponse::default();
        response.results_by_topic_v3_and_below = topics
            .iter()
            .map(|topic| {
                let mut result = AddPartitionsToTxnTopicResult::default();
                result.name = topic_name(&topic.name.0);
                result.results_by_partition = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let error = match error_for_all {
                            Some(error) => error,
                            None if known(&topic.name.0, *p) => ErrorCode::OperationNotAttempted,
                            None => ErrorCode::UnknownTopicOrPartition,
                        };
                        let mut partition = AddPartitionsToTxnPartitionResult::default();
                        partition.partition_index = *p;
                        partition.partition_error_code = error.code();
                        partition
                    })
                    .collect();
                result
            })
            .collect();
        context.respond(&response).map(Some)
    })
}

/// v4: each transaction's partitions are verified (`verify_only`) or added on its
/// coordinator shard; per-partition results grouped by topic.
async fn batched(
    shard: &Rc<Shard>,
    transactions: Vec<AddPartitionsToTxnTransaction>,
) -> Result<AddPartitionsToTxnResponse, HandlerError> {
    let mut response = AddPartitionsToTxnResponse::default();
    for transaction in transactions {
        let transactional_id = transaction.transactional_id.0.to_string();
        let partitions: Vec<TopicPartition> = transaction
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.name.0.as_str(), *p))
            })
            .collect();
        let owned = transactional_id.clone();
        let producer_id = transaction.producer_id.0;
        let producer_epoch = transaction.producer_epoch;
        let verdicts: Vec<(TopicPartition, ErrorCode)> = if transaction.verify_only {
            shard
                .txn_call(&transactional_id, |reply| TxnOp::Verify {
                    transactional_id: owned,
                    producer_id,
                    producer_epoch,
                    partitions,
                    place_tickets: false,
                    reply,
                })
                .await?
        } else {
            let keys = partitions
                .iter()
                .map(|p| (p.topic.to_string(), p.partition))
                .collect();
            let code = shard
                .txn_call(&transactional_id, |reply| TxnOp::AddPartitions {
                    transactional_id: owned,
                    producer_id,
                    producer_epoch,
                    partitions: keys,
                    fenced_code: ErrorCode::ProducerFenced,
                    reply,
                })
                .await?;
            partitions.into_iter().map(|p| (p, code)).collect()
        };
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = TransactionalId(super::str_bytes(&transactional_id));
        for (partition, code) in verdicts {
            let name = partition.topic.as_str();
            let index = match result
                .topic_results
                .iter()
                .position(|t| t.name.0.as_str() == name)
            {
                Some(index) => index,
                None => {
                    let mut topic = AddPartitionsToTxnTopicResult::default();
                    topic.name = topic_name(name);
                    result.topic_results.push(topic);
                    result.topic_results.len() - 1
                }
            };
            let mut entry = AddPartitionsToTxnPartitionResult::default();
            entry.partition_index = partition.partition;
            entry.partition_error_code = code.code();
            result.topic_results[index].results_by_partition.push(entry);
        }
        response.results_by_transaction.push(result);
    }
    Ok(response)
}
