//! AlterPartitionReassignments (key 45, KIP-455): moves partitions' replicas to other
//! brokers, or cancels a move (a null replica list). In cluster mode the request goes to the
//! active controller (`cluster::reassignments`), which answers once the target is in the
//! metadata log; the data is copied by the new replicas' fetchers and the move completes
//! when they are in sync. A broker's own topics, and every topic in single-broker mode, have
//! one replica on this broker: a target of exactly this broker changes nothing, any other
//! is INVALID_REPLICA_ASSIGNMENT.
//!
//! Owns: the request translation. May import: `super::cluster_forward`, `crate::quorum`
//! (`frame`, `forwarder`, `view`), `crate::shard`. Runs on: any shard.
//! Invariants: every requested partition gets exactly one result, after the controller
//! committed the change (before this broker's metadata view may show it).

use super::{cluster_forward, str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::quorum::frame::{ControllerRequest, ElectionResult, ReassignmentRequest};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, RequestKind,
};
use std::collections::BTreeMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::AlterPartitionReassignments(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let response = answer(&shard, &request).await;
        context.respond(&response).map(Some)
    })
}

async fn answer(
    shard: &Rc<Shard>,
    request: &AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let wanted: Vec<ReassignmentRequest> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| ReassignmentRequest {
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index,
                    target: partition
                        .replicas
                        .as_ref()
                        .map(|replicas| replicas.iter().map(|id| id.0).collect()),
                })
        })
        .collect();
    let mut results = Vec::new();
    let mut forwarded = Vec::new();
    for reassignment in wanted {
        if !cluster_forward::cluster_mode()
            || !cluster_forward::is_cluster_topic(&reassignment.topic)
        {
            results.push(local(shard, &reassignment));
        } else {
            forwarded.push(reassignment);
        }
    }
    if forwarded.is_empty() {
        return response(0, results);
    }
    let call = ControllerRequest::AlterReassignments {
        reassignments: forwarded.clone(),
    };
    let deadline = cluster_forward::deadline(request.timeout_ms);
    let outcome = crate::quorum::forwarder::forward(call, deadline)
        .await
        .and_then(|answer| match answer.error_code {
            0 => Ok(answer.partition_results),
            code => Err(code),
        });
    match outcome {
        Ok(answered) => {
            results.extend(answered);
            response(0, results)
        }
        Err(code) => {
            results.extend(
                forwarded
                    .iter()
                    .map(|r| result(r, ErrorCode::from_code(code))),
            );
            response(code, results)
        }
    }
}

/// A partition with one replica on this broker (own topics, single-broker mode).
fn local(shard: &Shard, reassignment: &ReassignmentRequest) -> ElectionResult {
    let known = shard
        .catalog()
        .topic(&reassignment.topic)
        .is_some_and(|meta| (0..meta.partitions).contains(&reassignment.partition));
    let own = shard.config.server.node_id;
    let code = match &reassignment.target {
        _ if !known => ErrorCode::UnknownTopicOrPartition,
        None => ErrorCode::NoReassignmentInProgress,
        Some(target) if target.as_slice() == [own] => ErrorCode::None,
        Some(_) => ErrorCode::InvalidReplicaAssignment,
    };
    result(reassignment, code)
}

fn result(reassignment: &ReassignmentRequest, code: ErrorCode) -> ElectionResult {
    ElectionResult {
        topic: reassignment.topic.clone(),
        partition: reassignment.partition,
        error_code: code.code(),
    }
}

/// The response, results grouped by topic in request order of first appearance.
fn response(error_code: i16, results: Vec<ElectionResult>) -> AlterPartitionReassignmentsResponse {
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for result in results {
        let mut partition = ReassignablePartitionResponse::default();
        partition.partition_index = result.partition;
        partition.error_code = result.error_code;
        if result.error_code != 0 {
            let message = format!("{:?}", ErrorCode::from_code(result.error_code));
            partition.error_message = Some(str_bytes(&message));
        }
        by_topic.entry(result.topic).or_default().push(partition);
    }
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.error_code = error_code;
    for (topic, partitions) in by_topic {
        let mut entry = ReassignableTopicResponse::default();
        entry.name = topic_name(&topic);
        entry.partitions = partitions;
        response.responses.push(entry);
    }
    response
}
