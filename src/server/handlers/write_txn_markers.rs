//! WriteTxnMarkers (key 27, v1): a transaction coordinator asks this broker to append
//! COMMIT/ABORT markers to partitions it leads (Kafka's `handleWriteTxnMarkersRequest`).
//! Each marker's partitions are appended on their owner shards; a partition is answered
//! once its marker is synced and, for a replicated partition, below the high watermark
//! (Kafka appends markers with acks=-1), at most `cluster.replica_ack_timeout_ms`.
//! Per-partition errors as Kafka: UNKNOWN_TOPIC_OR_PARTITION for a partition not in the
//! catalog, NOT_LEADER_OR_FOLLOWER where this broker does not lead, NOT_ENOUGH_REPLICAS
//! below `min.insync.replicas`, REQUEST_TIMED_OUT / NOT_ENOUGH_REPLICAS_AFTER_APPEND when
//! the ISR does not catch up in time, storage errors as for Produce.

use super::topic_name;
use crate::model::{ErrorCode, TopicPartition};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{Marker, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{RequestKind, WriteTxnMarkersResponse};
use std::collections::HashMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::WriteTxnMarkers(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let answers = request
            .markers
            .iter()
            .map(|marker| write_marker(&shard, marker));
        let markers = futures::future::join_all(answers).await;
        let response = WriteTxnMarkersResponse::default().with_markers(markers);
        context.respond(&response).map(Some)
    })
}

/// Appends one marker to its known partitions and answers for each partition asked.
async fn write_marker(shard: &Rc<Shard>, asked: &WritableTxnMarker) -> WritableTxnMarkerResult {
    let catalog = shard.catalog();
    let known = |topic: &str, partition: i32| {
        catalog
            .topic(topic)
            .is_some_and(|t| partition >= 0 && partition < t.partitions)
    };
    // A partition named twice gets one marker (and the same answer twice).
    let to_write: Vec<TopicPartition> = asked
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partition_indexes
                .iter()
                .filter(|p| known(&topic.name.0, **p))
                .map(|p| TopicPartition::new(topic.name.0.as_str(), *p))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let marker = Marker {
        producer_id: asked.producer_id.0,
        producer_epoch: asked.producer_epoch,
        commit: asked.transaction_result,
        coordinator_epoch: asked.coordinator_epoch,
    };
    let written: HashMap<TopicPartition, ErrorCode> = shard
        .write_markers_on_owners(marker, to_write)
        .await
        .into_iter()
        .collect();
    let code_of = |topic: &str, partition: i32| {
        written
            .get(&TopicPartition::new(topic, partition))
            .copied()
            .unwrap_or(ErrorCode::UnknownTopicOrPartition)
    };
    let topics = asked
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|p| {
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(code_of(&topic.name.0, *p).code())
                })
                .collect();
            WritableTxnMarkerTopicResult::default()
                .with_name(topic_name(&topic.name.0))
                .with_partitions(partitions)
        })
        .collect();
    WritableTxnMarkerResult::default()
        .with_producer_id(asked.producer_id)
        .with_topics(topics)
}
