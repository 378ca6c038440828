//! ElectLeaders (key 43, KIP-460): moves leadership back to each partition's preferred replica
//! (PREFERRED), or elects a leader for a partition without one (UNCLEAN). In cluster mode the
//! request goes to the active controller (`cluster::leader_elections`); this broker's own
//! topics, and every topic in single-broker mode, have one replica that already leads
//! (ELECTION_NOT_NEEDED).
//!
//! Owns: the request translation. May import: `super::cluster_forward`, `crate::quorum`
//! (`frame`, whose election types are `cluster::leader_elections`'s, and `forwarder`),
//! `crate::shard`. Runs on: any shard.
//! Invariants: every requested partition gets exactly one result; with `topic_partitions`
//! null, partitions that need no election are left out (as Kafka's controller does); the
//! answer comes after the controller committed the elections, before this broker's metadata
//! view may show them.

use super::{cluster_forward, str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::quorum::frame::{ControllerRequest, ElectionResult, ElectionType};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, RequestKind};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

type Requested = BTreeMap<String, BTreeSet<i32>>;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ElectLeaders(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = answer(&shard, &request).await;
        if context.version == 0 {
            // v0 has no top-level error code: the per-partition codes carry it.
            response.error_code = 0;
        }
        context.respond(&response).map(Some)
    })
}

async fn answer(shard: &Rc<Shard>, request: &ElectLeadersRequest) -> ElectLeadersResponse {
    let requested: Option<Requested> = request.topic_partitions.as_ref().map(|topics| {
        let mut map = Requested::new();
        for topic in topics {
            let ids = map.entry(topic.topic.0.to_string()).or_default();
            ids.extend(topic.partitions.iter().copied());
        }
        map
    });
    let Some(election_type) = ElectionType::from_code(request.election_type) else {
        let code = ErrorCode::InvalidRequest.code();
        return response(code, every(requested.as_ref(), code));
    };
    if !cluster_forward::cluster_mode() {
        return response(0, local(shard, requested.as_ref()));
    }
    let (forwarded, own): (Option<Requested>, Option<Requested>) = match requested {
        None => (None, None),
        Some(requested) => {
            let (forwarded, own) = requested
                .into_iter()
                .partition(|(topic, _)| cluster_forward::is_cluster_topic(topic));
            (Some(forwarded), Some(own))
        }
    };
    let mut results = local(shard, own.as_ref());
    if forwarded.as_ref().is_some_and(BTreeMap::is_empty) {
        return response(0, results);
    }
    let call = ControllerRequest::ElectLeaders {
        election_type,
        partitions: forwarded.clone(),
    };
    let deadline = cluster_forward::deadline(request.timeout_ms);
    let forwarded_answer = crate::quorum::forwarder::forward(call, deadline)
        .await
        .and_then(|answer| match answer.error_code {
            0 => Ok(answer.partition_results),
            code => Err(code),
        });
    match forwarded_answer {
        Ok(elections) => {
            results.extend(elections);
            response(0, results)
        }
        Err(code) => {
            results.extend(every(forwarded.as_ref(), code));
            response(code, results)
        }
    }
}

/// This broker's own topics (single-broker mode: every topic): a known partition has one
/// replica, which leads; an unknown one is UNKNOWN_TOPIC_OR_PARTITION. `None` (every
/// partition) needs no election anywhere, so it reports nothing.
fn local(shard: &Shard, requested: Option<&Requested>) -> Vec<ElectionResult> {
    let catalog = shard.catalog();
    let known = |topic: &str, partition: i32| {
        catalog
            .topic(topic)
            .is_some_and(|meta| (0..meta.partitions).contains(&partition))
    };
    let mut results = Vec::new();
    for (topic, ids) in requested.into_iter().flatten() {
        for partition in ids {
            let error = if known(topic, *partition) {
                ErrorCode::ElectionNotNeeded
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            results.push(ElectionResult {
                topic: topic.clone(),
                partition: *partition,
                error_code: error.code(),
            });
        }
    }
    results
}

/// `code` for every requested partition (nothing for `None`).
fn every(requested: Option<&Requested>, code: i16) -> Vec<ElectionResult> {
    let mut results = Vec::new();
    for (topic, ids) in requested.into_iter().flatten() {
        results.extend(ids.iter().map(|partition| ElectionResult {
            topic: topic.clone(),
            partition: *partition,
            error_code: code,
        }));
    }
    results
}

/// The response, results grouped by topic.
fn response(error_code: i16, results: Vec<ElectionResult>) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for result in results {
        let mut partition = PartitionResult::default();
        partition.partition_id = result.partition;
        partition.error_code = result.error_code;
        if result.error_code != 0 {
            let message = format!("{:?}", ErrorCode::from_code(result.error_code));
            partition.error_message = Some(str_bytes(&message));
        }
        by_topic.entry(result.topic).or_default().push(partition);
    }
    let mut response = ElectLeadersResponse::default();
    response.error_code = error_code;
    for (topic, partitions) in by_topic {
        let mut entry = ReplicaElectionResult::default();
        entry.topic = topic_name(&topic);
        entry.partition_result = partitions;
        response.replica_election_results.push(entry);
    }
    response
}
