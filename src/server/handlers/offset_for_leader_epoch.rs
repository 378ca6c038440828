//! OffsetForLeaderEpoch (key 23, v2–4; KIP-101, KIP-320): for each partition, the largest
//! leader epoch <= the requested one and its end offset (where the next epoch starts, or the
//! log end offset for the latest), answered from the owning shard's leader-epoch cache.
//! Consumers use it to validate their position after a leader change (KIP-320); v3+ carries
//! `replica_id` (KIP-392), which is not needed to answer (every answer comes from the leader's
//! log), v4 is flexible.
//!
//! Per partition, in this order: unknown topic or partition → UNKNOWN_TOPIC_OR_PARTITION;
//! another broker leads it (cluster mode) → NOT_LEADER_OR_FOLLOWER; `current_leader_epoch`
//! other than the partition's (as Metadata reports it) → FENCED_LEADER_EPOCH (older) or
//! UNKNOWN_LEADER_EPOCH (newer), -1 unchecked; no epoch <= the requested one in the log →
//! leader epoch -1 and end offset -1 (Kafka's UNDEFINED).
//!
//! May import: model, quorum::view (the leader), replication (the epoch check), shard.
//! Runs on: the connection's shard; lookups go to the owning shards over the mesh.

use super::{check_current_leader_epoch, topic_name};
use crate::metadata::Catalog;
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::quorum::view::led_elsewhere;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{EpochEndResult, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestKind,
};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::OffsetForLeaderEpoch(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let response = offset_for_leader_epoch(&shard, &context, request).await?;
        context.respond(&response).map(Some)
    })
}

/// Where one requested partition's answer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    /// Refused before reading the log.
    Refused(ErrorCode),
    /// Ask the owning shard for this leader epoch's end.
    Log(TopicPartition, i32),
}

/// The checks made on the connection's shard, before any log is read.
fn lookup(
    catalog: &Catalog,
    node_id: i32,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Lookup {
    let Some(meta) = catalog
        .topic(topic)
        .filter(|meta| partition >= 0 && partition < meta.partitions)
    else {
        return Lookup::Refused(ErrorCode::UnknownTopicOrPartition);
    };
    if led_elsewhere(topic, &meta.id, partition, node_id, meta.cluster) {
        return Lookup::Refused(ErrorCode::NotLeaderOrFollower);
    }
    match check_current_leader_epoch(topic, partition, current_leader_epoch) {
        ErrorCode::None => Lookup::Log(TopicPartition::new(topic, partition), leader_epoch),
        refused => Lookup::Refused(refused),
    }
}

async fn offset_for_leader_epoch(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> Result<OffsetForLeaderEpochResponse, HandlerError> {
    let node_id = shard.config.server.node_id;
    let lookups: Vec<Vec<Lookup>> = {
        let catalog = shard.catalog();
        request
            .topics
            .iter()
            .map(|topic| {
                // A follower needs CLUSTER_ACTION on the cluster, a consumer DESCRIBE on
                // the topic.
                let denied = if request.replica_id.0 >= 0 {
                    authorize::cluster(shard, context, AclOperation::ClusterAction).err()
                } else {
                    authorize::topic(shard, context, AclOperation::Describe, &topic.topic.0).err()
                };
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        if let Some(code) = denied {
                            return Lookup::Refused(code);
                        }
                        lookup(
                            &catalog,
                            node_id,
                            &topic.topic.0,
                            p.partition,
                            p.current_leader_epoch,
                            p.leader_epoch,
                        )
                    })
                    .collect()
            })
            .collect()
    };
    let mut per_shard: BTreeMap<ShardId, Vec<(TopicPartition, i32)>> = BTreeMap::new();
    for lookup in lookups.iter().flatten() {
        if let Lookup::Log(partition, epoch) = lookup {
            per_shard
                .entry(shard.owner_of(partition))
                .or_default()
                .push((partition.clone(), *epoch));
        }
    }
    let calls = per_shard
        .into_iter()
        .map(|(target, partitions)| shard.epoch_ends(target, partitions));
    let mut found: HashMap<(TopicPartition, i32), EpochEndResult> = HashMap::new();
    for outcome in futures::future::join_all(calls).await {
        for result in outcome? {
            // A request may name a partition twice with different epochs: key by both.
            let key = (result.partition.clone(), result.requested_epoch);
            found.insert(key, result);
        }
    }
    let mut response = OffsetForLeaderEpochResponse::default();
    response.topics = request
        .topics
        .iter()
        .zip(lookups)
        .map(|(topic, lookups)| {
            let mut entry = OffsetForLeaderTopicResult::default();
            entry.topic = topic_name(&topic.topic.0);
            entry.partitions = topic
                .partitions
                .iter()
                .zip(lookups)
                .map(|(p, lookup)| answer(p.partition, lookup, &found))
                .collect();
            entry
        })
        .collect();
    Ok(response)
}

fn answer(
    partition: i32,
    lookup: Lookup,
    found: &HashMap<(TopicPartition, i32), EpochEndResult>,
) -> EpochEndOffset {
    let mut out = EpochEndOffset::default();
    out.partition = partition;
    out.leader_epoch = UNDEFINED_EPOCH;
    out.end_offset = UNDEFINED_EPOCH_OFFSET;
    match lookup {
        Lookup::Refused(error) => out.error_code = error.code(),
        Lookup::Log(partition, epoch) => match found.get(&(partition, epoch)) {
            Some(result) => {
                out.error_code = result.error.code();
                if !result.error.is_error() {
                    out.leader_epoch = result.leader_epoch;
                    out.end_offset = result.end_offset;
                }
            }
            // The owning shard does not have the log (yet): as Kafka, unknown here.
            None => out.error_code = ErrorCode::UnknownTopicOrPartition.code(),
        },
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Topic "t" with 2 partitions, as a single broker has it.
    fn catalog() -> Catalog {
        let meta = crate::metadata::TopicMeta {
            name: "t".to_string(),
            id: [1; 16],
            partitions: 2,
            configs: Default::default(),
            internal: false,
            cluster: false,
        };
        Catalog::default().with_topic(meta).expect("valid topic")
    }

    #[test]
    fn unknown_topic_and_partition_are_refused() {
        let catalog = catalog();
        let unknown = Lookup::Refused(ErrorCode::UnknownTopicOrPartition);
        assert_eq!(lookup(&catalog, 0, "missing", 0, -1, 0), unknown);
        assert_eq!(lookup(&catalog, 0, "t", 2, -1, 0), unknown);
        assert_eq!(lookup(&catalog, 0, "t", -1, -1, 0), unknown);
    }

    /// Single-broker mode: the partition's leader epoch is 0, as Metadata reports it.
    #[test]
    fn current_leader_epoch_is_checked_against_the_partitions() {
        let catalog = catalog();
        let log = Lookup::Log(TopicPartition::new("t", 1), 3);
        assert_eq!(lookup(&catalog, 0, "t", 1, -1, 3), log);
        assert_eq!(lookup(&catalog, 0, "t", 1, 0, 3), log);
        assert_eq!(
            lookup(&catalog, 0, "t", 1, 5, 3),
            Lookup::Refused(ErrorCode::UnknownLeaderEpoch)
        );
    }

    #[test]
    fn answer_reports_the_shards_lookup() {
        let partition = TopicPartition::new("t", 0);
        let mut found = HashMap::new();
        found.insert(
            (partition.clone(), 3),
            EpochEndResult {
                partition: partition.clone(),
                requested_epoch: 3,
                error: ErrorCode::None,
                leader_epoch: 2,
                end_offset: 40,
            },
        );
        let out = answer(0, Lookup::Log(partition.clone(), 3), &found);
        assert_eq!(
            (out.error_code, out.leader_epoch, out.end_offset),
            (0, 2, 40)
        );
        // Another requested epoch of the same partition is not mixed up with it.
        let out = answer(0, Lookup::Log(partition, 1), &found);
        assert_eq!(out.error_code, ErrorCode::UnknownTopicOrPartition.code());
    }

    #[test]
    fn refused_partitions_answer_undefined() {
        let out = answer(
            7,
            Lookup::Refused(ErrorCode::FencedLeaderEpoch),
            &HashMap::new(),
        );
        assert_eq!(out.partition, 7);
        assert_eq!(out.error_code, 74);
        assert_eq!((out.leader_epoch, out.end_offset), (-1, -1));
    }
}
