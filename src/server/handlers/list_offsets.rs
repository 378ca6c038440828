//! ListOffsets (key 2, v1–10): latest (-1), earliest (-2), max timestamp (-3, KIP-734),
//! earliest local (-4, KIP-405), latest tiered (-5, KIP-1005), or the first record whose
//! timestamp is >= a given time, answered by the owning shards. v10's `timeout_ms`
//! (KIP-1075) bounds remote-storage lookups; there is no remote storage, so it is ignored.
//! The special timestamps are tabled in docs/protocol-coverage.md. KIP-320 (v4+): a
//! partition whose `current_leader_epoch` is not the partition's (as Metadata reports it; -1
//! is not checked) is answered FENCED_LEADER_EPOCH (older) or UNKNOWN_LEADER_EPOCH (newer).

use super::{check_current_leader_epoch, topic_name};
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::quorum::view::led_elsewhere;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{ListOffsetsPartition, ListOffsetsResult, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestKind};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ListOffsets(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let response = list_offsets(&shard, &context, request, context.version).await?;
        context.respond(&response).map(Some)
    })
}

async fn list_offsets(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: ListOffsetsRequest,
    version: i16,
) -> Result<ListOffsetsResponse, HandlerError> {
    let catalog = shard.catalog();
    let read_committed = request.isolation_level == 1;
    let mut per_shard: BTreeMap<ShardId, Vec<ListOffsetsPartition>> = BTreeMap::new();
    // Partitions refused before reading: another leader (cluster mode), or (KIP-320, v4+) a
    // current leader epoch other than the partition's.
    let mut refused: HashMap<(String, i32), ErrorCode> = HashMap::new();
    let node_id = shard.config.server.node_id;
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        // A follower needs CLUSTER_ACTION on the cluster, a consumer DESCRIBE on the topic.
        let denied = if request.replica_id.0 >= 0 {
            authorize::cluster(shard, context, AclOperation::ClusterAction).err()
        } else {
            authorize::topic(shard, context, AclOperation::Describe, &name).err()
        };
        if let Some(code) = denied {
            for partition in &topic.partitions {
                refused.insert((name.clone(), partition.partition_index), code);
            }
            continue;
        }
        let Some(meta) = catalog.topic(&name) else {
            continue;
        };
        for partition in topic
            .partitions
            .iter()
            .filter(|p| p.partition_index < meta.partitions)
        {
            let tp = TopicPartition::new(name.as_str(), partition.partition_index);
            if led_elsewhere(
                &name,
                &meta.id,
                partition.partition_index,
                node_id,
                meta.cluster,
            ) {
                refused.insert(
                    (name.clone(), partition.partition_index),
                    ErrorCode::NotLeaderOrFollower,
                );
                continue;
            }
            let epoch = check_current_leader_epoch(
                &name,
                partition.partition_index,
                partition.current_leader_epoch,
            );
            if epoch.is_error() {
                refused.insert((name.clone(), partition.partition_index), epoch);
                continue;
            }
            per_shard
                .entry(shard.owner_of(&tp))
                .or_default()
                .push(ListOffsetsPartition {
                    partition: tp,
                    timestamp: partition.timestamp,
                    read_committed,
                });
        }
    }
    let calls = per_shard
        .into_iter()
        .map(|(target, partitions)| shard.list_offsets(target, partitions));
    let mut found: HashMap<(String, i32), ListOffsetsResult> = HashMap::new();
    for outcome in futures::future::join_all(calls).await {
        for result in outcome? {
            let key = (
                result.partition.topic.to_string(),
                result.partition.partition,
            );
            found.insert(key, result);
        }
    }
    let mut response = ListOffsetsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let mut entry = ListOffsetsTopicResponse::default();
            entry.name = topic_name(&name);
            entry.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default();
                    out.partition_index = p.partition_index;
                    match found.remove(&(name.clone(), p.partition_index)) {
                        Some(result) => {
                            out.error_code = result.error.code();
                            out.offset = result.offset;
                            out.timestamp = result.timestamp;
                            // leader_epoch exists from v4 only; the codec refuses it before.
                            out.leader_epoch = if version >= 4 && result.offset >= 0 {
                                0
                            } else {
                                -1
                            };
                        }
                        None => {
                            let error = refused
                                .get(&(name.clone(), p.partition_index))
                                .copied()
                                .unwrap_or(ErrorCode::UnknownTopicOrPartition);
                            out.error_code = error.code();
                            out.offset = -1;
                            out.timestamp = -1;
                            out.leader_epoch = -1;
                        }
                    }
                    out
                })
                .collect();
            entry
        })
        .collect();
    Ok(response)
}
