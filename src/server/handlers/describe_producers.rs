//! DescribeProducers (key 61): the idempotent and transactional producers each partition
//! knows (epoch, last sequence and timestamp, open transaction), from the owning shards.

use super::topic_name;
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersResponse, ProducerId, RequestKind};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeProducers(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let catalog = shard.catalog();
        let mut per_shard: BTreeMap<ShardId, Vec<TopicPartition>> = BTreeMap::new();
        for topic in &request.topics {
            let Some(meta) = catalog.topic(&topic.name.0) else {
                continue;
            };
            for index in topic
                .partition_indexes
                .iter()
                .filter(|p| **p >= 0 && **p < meta.partitions)
            {
                let tp = TopicPartition::new(meta.name.as_str(), *index);
                per_shard.entry(shard.owner_of(&tp)).or_default().push(tp);
            }
        }
        let calls = per_shard
            .into_iter()
            .map(|(target, partitions)| shard.producers(target, partitions));
        let mut found = HashMap::new();
        for result in futures::future::join_all(calls).await {
            for (tp, producers) in result? {
                found.insert((tp.topic.to_string(), tp.partition), producers);
            }
        }
        let mut response = DescribeProducersResponse::default();
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let mut entry = TopicResponse::default();
            entry.name = topic_name(&name);
            for index in &topic.partition_indexes {
                let mut partition = PartitionResponse::default();
                partition.partition_index = *index;
                match found.remove(&(name.clone(), *index)).flatten() {
                    Some(producers) => {
                        partition.active_producers = producers
                            .into_iter()
                            .map(|p| {
                                let mut state = ProducerState::default();
                                state.producer_id = ProducerId(p.producer_id);
                                state.producer_epoch = i32::from(p.producer_epoch);
                                state.last_sequence = p.last_sequence;
                                state.last_timestamp = p.last_timestamp;
                                state.coordinator_epoch = p.coordinator_epoch;
                                state.current_txn_start_offset = p.current_txn_start_offset;
                                state
                            })
                            .collect();
                    }
                    None => partition.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                }
                entry.partitions.push(partition);
            }
            response.topics.push(entry);
        }
        context.respond(&response).map(Some)
    })
}
