//! DeleteRecords (key 21): advances partitions' log start offsets (-1: up to the high
//! watermark); readers below it get OFFSET_OUT_OF_RANGE. Answers the new low watermarks; on a
//! replicated partition, once every live replica's log start has followed (or
//! REQUEST_TIMED_OUT after the request's timeout).

use super::topic_name;
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsResponse, RequestKind};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DeleteRecords(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let catalog = shard.catalog();
        let mut per_shard: BTreeMap<ShardId, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let Some(meta) = catalog.topic(&name) else {
                continue;
            };
            for p in topic
                .partitions
                .iter()
                .filter(|p| p.partition_index >= 0 && p.partition_index < meta.partitions)
            {
                let tp = TopicPartition::new(name.as_str(), p.partition_index);
                per_shard
                    .entry(shard.owner_of(&tp))
                    .or_default()
                    .push((tp, p.offset));
            }
        }
        // On replicated partitions the leader waits this long for its followers (Kafka's
        // DelayedDeleteRecords); a single broker answers at once.
        let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
        let calls = per_shard
            .into_iter()
            .map(|(target, partitions)| shard.delete_records(target, partitions, timeout));
        let mut outcomes: HashMap<(String, i32), Result<i64, ErrorCode>> = HashMap::new();
        for results in futures::future::join_all(calls).await {
            for (tp, outcome) in results? {
                outcomes.insert((tp.topic.to_string(), tp.partition), outcome);
            }
        }
        let mut response = DeleteRecordsResponse::default();
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let mut entry = DeleteRecordsTopicResult::default();
            entry.name = topic_name(&name);
            for p in &topic.partitions {
                let mut result = DeleteRecordsPartitionResult::default();
                result.partition_index = p.partition_index;
                match outcomes.remove(&(name.clone(), p.partition_index)) {
                    Some(Ok(low_watermark)) => result.low_watermark = low_watermark,
                    Some(Err(error)) => {
                        result.low_watermark = -1;
                        result.error_code = error.code();
                    }
                    None => {
                        result.low_watermark = -1;
                        result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    }
                }
                entry.partitions.push(result);
            }
            response.topics.push(entry);
        }
        context.respond(&response).map(Some)
    })
}
