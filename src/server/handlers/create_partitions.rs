//! CreatePartitions (key 37): raises a topic's partition count (never lowers it). Keyed
//! producers then map some keys to new partitions: per-key ordering holds only within the
//! old or the new layout, as in Kafka.

use super::{cluster_forward, str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::quorum::frame::{ControllerRequest, PartitionsCreation};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{ControllerOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestKind};
use std::collections::HashMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::CreatePartitions(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let node_id = shard.config.server.node_id;
        let mut response = CreatePartitionsResponse::default();
        let in_cluster = create_partitions_in_cluster(&shard, &request).await;
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            if let Some((code, message)) = in_cluster.get(&name) {
                let mut result = CreatePartitionsTopicResult::default();
                result.name = topic_name(&name);
                result.error_code = *code;
                result.error_message = message.as_deref().map(str_bytes);
                response.results.push(result);
                continue;
            }
            let bad_assignment = topic.assignments.as_ref().is_some_and(|assignments| {
                assignments
                    .iter()
                    .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != node_id)
            });
            let (error, message) = if bad_assignment {
                (
                    ErrorCode::InvalidReplicaAssignment,
                    Some("Replicas must be this broker only.".to_string()),
                )
            } else {
                let outcome = shard
                    .controller_call(|reply| ControllerOp::CreatePartitions {
                        topic: name.clone(),
                        count: topic.count,
                        validate_only: request.validate_only,
                        reply,
                    })
                    .await?;
                (outcome.error, outcome.message)
            };
            let mut result = CreatePartitionsTopicResult::default();
            result.name = topic_name(&name);
            result.error_code = error.code();
            result.error_message = message.as_deref().map(str_bytes);
            response.results.push(result);
        }
        context.respond(&response).map(Some)
    })
}

/// Cluster mode: the request's topics of the metadata log go to the active controller
/// (new partitions placed on the cluster's brokers); answered once this broker's catalog
/// holds the new count, or at the deadline. (code, message) by topic name; topics of this
/// broker's own are left to the local path.
async fn create_partitions_in_cluster(
    shard: &Rc<Shard>,
    request: &CreatePartitionsRequest,
) -> HashMap<String, (i16, Option<String>)> {
    let forwarded: Vec<PartitionsCreation> = request
        .topics
        .iter()
        .filter(|topic| cluster_forward::is_cluster_topic(&topic.name.0))
        .map(|topic| PartitionsCreation {
            name: topic.name.0.to_string(),
            count: topic.count,
            assignments: topic
                .assignments
                .iter()
                .flatten()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        })
        .collect();
    if forwarded.is_empty() {
        return HashMap::new();
    }
    let deadline = cluster_forward::deadline(request.timeout_ms);
    let counts: Vec<(String, i32)> = forwarded
        .iter()
        .map(|t| (t.name.clone(), t.count))
        .collect();
    let call = ControllerRequest::CreatePartitions {
        topics: forwarded,
        validate_only: request.validate_only,
    };
    match cluster_forward::forward_topics(call, deadline).await {
        Ok(results) => {
            if !request.validate_only {
                let grown: Vec<&(String, i32)> = counts
                    .iter()
                    .filter(|(name, _)| {
                        results.iter().any(|r| &r.name == name && r.error_code == 0)
                    })
                    .collect();
                cluster_forward::wait_for_catalog(shard, deadline, |catalog| {
                    grown.iter().all(|(name, count)| {
                        catalog.topic(name).is_some_and(|t| t.partitions >= *count)
                    })
                })
                .await;
            }
            results
                .into_iter()
                .map(|result| (result.name, (result.error_code, result.message)))
                .collect()
        }
        Err(code) => counts
            .into_iter()
            .map(|(name, _)| (name, (code, None)))
            .collect(),
    }
}
