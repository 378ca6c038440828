//! Produce (key 0): appends each partition's record batches on the owning shard.
//! Stage 1 (in request order on the connection): batches are appended locally or enqueued
//! on the owner's mesh channel. Stage 2: the response, once acks are met — acks=1 when the
//! batches are written, acks=-1 when they are synced (fdatasync, group-committed); acks=0
//! sends no response.

use super::{resolve_topic, topic_name};
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::server::api_table::ResponseFuture;
use crate::server::{HandlerError, RequestContext};
use crate::shard::metrics::RejectReason;
use crate::shard::{Acks, ProducePartition, ProducePartitionResult, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestKind};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

#[allow(clippy::async_yields_async)] // stage 1 deliberately yields stage 2
pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    Box::pin(async move {
        let RequestKind::Produce(request) = body else {
            let api = context.api;
            let failed: ResponseFuture = Box::pin(async move { Err(HandlerError::WrongBody(api)) });
            return failed;
        };
        enqueue(shard, context, request).await
    })
}

/// Per (topic, partition) outcome, keyed for building the response in request order.
type Outcomes = HashMap<(String, i32), ProducePartitionResult>;

fn rejected(partition: TopicPartition, error: ErrorCode) -> ProducePartitionResult {
    ProducePartitionResult {
        partition,
        error,
        error_message: None,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

async fn enqueue(
    shard: Rc<Shard>,
    context: RequestContext,
    request: ProduceRequest,
) -> ResponseFuture {
    let acks = Acks::from_wire(request.acks);
    let catalog = shard.catalog();
    let mut outcomes: Outcomes = HashMap::new();
    let mut per_shard: BTreeMap<ShardId, Vec<ProducePartition>> = BTreeMap::new();
    for topic in &request.topic_data {
        let name = topic.name.0.to_string();
        let meta = resolve_topic(&catalog, &name, &topic.topic_id);
        for data in &topic.partition_data {
            let partition = TopicPartition::new(name.as_str(), data.index);
            let error = match (acks, meta, &data.records) {
                (None, _, _) => Some(ErrorCode::InvalidRequiredAcks),
                (_, None, _) => Some(ErrorCode::UnknownTopicOrPartition),
                (_, Some(m), _) if data.index < 0 || data.index >= m.partitions => {
                    Some(ErrorCode::UnknownTopicOrPartition)
                }
                (_, _, None) => Some(ErrorCode::CorruptMessage),
                _ => None,
            };
            match (error, &data.records) {
                (None, Some(records)) => {
                    per_shard
                        .entry(shard.owner_of(&partition))
                        .or_default()
                        .push(ProducePartition {
                            partition,
                            records: records.clone(),
                        });
                }
                (error, _) => {
                    let error = error.unwrap_or(ErrorCode::CorruptMessage);
                    shard.metrics.rejected(match error {
                        ErrorCode::InvalidRequiredAcks => RejectReason::InvalidRequiredAcks,
                        ErrorCode::UnknownTopicOrPartition => RejectReason::UnknownPartition,
                        _ => RejectReason::CorruptBatch,
                    });
                    outcomes.insert((name.clone(), data.index), rejected(partition, error));
                }
            }
        }
    }
    let acks = acks.unwrap_or(Acks::Leader);
    let mut completions = Vec::with_capacity(per_shard.len());
    for (target, partitions) in per_shard {
        completions.push(shard.produce(target, partitions, acks).await);
    }
    Box::pin(async move {
        for completion in futures::future::join_all(completions).await {
            for result in completion? {
                let key = (
                    result.partition.topic.to_string(),
                    result.partition.partition,
                );
                outcomes.insert(key, result);
            }
        }
        if acks == Acks::None {
            return Ok(None);
        }
        context.respond(&response(&request, outcomes)).map(Some)
    })
}

fn response(request: &ProduceRequest, mut outcomes: Outcomes) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    response.responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let mut entry = TopicProduceResponse::default();
            entry.name = topic_name(&name);
            entry.topic_id = topic.topic_id;
            entry.partition_responses = topic
                .partition_data
                .iter()
                .map(|data| {
                    let outcome =
                        outcomes
                            .remove(&(name.clone(), data.index))
                            .unwrap_or_else(|| {
                                rejected(
                                    TopicPartition::new(name.as_str(), data.index),
                                    ErrorCode::UnknownServerError,
                                )
                            });
                    let mut partition = PartitionProduceResponse::default();
                    partition.index = data.index;
                    partition.error_code = outcome.error.code();
                    partition.base_offset = outcome.base_offset;
                    partition.log_append_time_ms = outcome.log_append_time_ms;
                    partition.log_start_offset = outcome.log_start_offset;
                    partition.error_message = outcome.error_message.map(StrBytes::from_string);
                    partition
                })
                .collect();
            entry
        })
        .collect();
    response
}
