//! ListPartitionReassignments (key 46, KIP-455): the reassignments in progress, every one or
//! those of the requested partitions, from this broker's view of the metadata log (its
//! replicas, adding and removing replicas). Nothing in single-broker mode.
//!
//! Owns: the answer's shape. May import: `crate::quorum::view`. Runs on: any shard.

use super::topic_name;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsResponse, RequestKind};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

pub fn handle(
    _shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ListPartitionReassignments(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let filter: Option<BTreeMap<String, BTreeSet<i32>>> =
            request.topics.as_ref().map(|topics| {
                let mut map: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
                for topic in topics {
                    map.entry(topic.name.0.to_string())
                        .or_default()
                        .extend(topic.partition_indexes.iter().copied());
                }
                map
            });
        let mut response = ListPartitionReassignmentsResponse::default();
        let Some(topics) = crate::quorum::view::cluster_topics() else {
            return context.respond(&response).map(Some);
        };
        let ids = |nodes: &[i32]| nodes.iter().map(|n| BrokerId(*n)).collect::<Vec<_>>();
        for (name, topic) in &topics.topics {
            let wanted = filter.as_ref().map(|filter| filter.get(name));
            if wanted == Some(None) {
                continue;
            }
            let mut ongoing = Vec::new();
            for (index, partition) in topic.partitions.iter().enumerate() {
                let index = index as i32;
                let asked = wanted.flatten().is_none_or(|set| set.contains(&index));
                if !asked
                    || (partition.adding_replicas.is_empty()
                        && partition.removing_replicas.is_empty())
                {
                    continue;
                }
                let mut entry = OngoingPartitionReassignment::default();
                entry.partition_index = index;
                entry.replicas = ids(&partition.replicas);
                entry.adding_replicas = ids(&partition.adding_replicas);
                entry.removing_replicas = ids(&partition.removing_replicas);
                ongoing.push(entry);
            }
            if !ongoing.is_empty() {
                let mut entry = OngoingTopicReassignment::default();
                entry.name = topic_name(name);
                entry.partitions = ongoing;
                response.topics.push(entry);
            }
        }
        context.respond(&response).map(Some)
    })
}
