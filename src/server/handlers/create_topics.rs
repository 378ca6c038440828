//! CreateTopics (key 19): validated and applied by the controller shard; every shard has
//! opened its partitions when the response is sent. Replication factor must be 1 (or -1)
//! on this single broker; `num_partitions = -1` means the broker default.

use super::{cluster_forward, str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::quorum::frame::TopicCreation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{NewTopic, Shard, TopicOutcome};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestKind};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::CreateTopics(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let response = create_topics(&shard, request).await?;
        context.respond(&response).map(Some)
    })
}

fn precheck(
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    node_id: i32,
) -> Result<i32, (ErrorCode, String)> {
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Replication factor: {} larger than available brokers: 1.",
                topic.replication_factor
            ),
        ));
    }
    if topic.assignments.is_empty() {
        return Ok(topic.num_partitions);
    }
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err((
            ErrorCode::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set.".to_string(),
        ));
    }
    let valid = topic
        .assignments
        .iter()
        .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node_id);
    if !valid {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "Replicas must be this broker only.".to_string(),
        ));
    }
    Ok(topic.assignments.len() as i32)
}

async fn create_topics(
    shard: &Rc<Shard>,
    request: CreateTopicsRequest,
) -> Result<CreateTopicsResponse, HandlerError> {
    if cluster_forward::cluster_mode() {
        return Ok(create_topics_in_cluster(shard, request).await);
    }
    let node_id = shard.config.server.node_id;
    let mut early: HashMap<String, TopicOutcome> = HashMap::new();
    let mut accepted = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        if !seen.insert(name.clone()) {
            early.insert(
                name.clone(),
                failed(
                    &name,
                    ErrorCode::InvalidRequest,
                    "Duplicate topic name.".to_string(),
                ),
            );
            continue;
        }
        match precheck(topic, node_id) {
            Ok(partitions) => {
                let configs: BTreeMap<String, String> = topic
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                accepted.push(NewTopic {
                    name,
                    partitions,
                    configs,
                });
            }
            Err((code, message)) => {
                early.insert(name.clone(), failed(&name, code, message));
            }
        }
    }
    let mut outcomes: HashMap<String, TopicOutcome> = shard
        .create_topics(accepted, request.validate_only)
        .await?
        .into_iter()
        .map(|o| (o.name.clone(), o))
        .collect();
    outcomes.extend(early);
    let mut response = CreateTopicsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let outcome = outcomes.remove(&name).unwrap_or_else(|| {
                failed(
                    &name,
                    ErrorCode::InvalidRequest,
                    "Duplicate topic name.".to_string(),
                )
            });
            let mut result = CreatableTopicResult::default();
            result.name = topic_name(&name);
            result.error_code = outcome.error.code();
            result.error_message = outcome.message.as_deref().map(str_bytes);
            match &outcome.topic {
                Some(meta) => {
                    result.topic_id = uuid::Uuid::from_bytes(meta.id);
                    result.num_partitions = meta.partitions;
                    result.replication_factor = 1;
                    result.configs = Some(Vec::new());
                }
                None => {
                    result.num_partitions = -1;
                    result.replication_factor = -1;
                }
            }
            result
        })
        .collect();
    Ok(response)
}

/// Cluster mode: the topics go to the active controller, which places their replicas on
/// the cluster's brokers; the answer comes once the controller committed them and this
/// broker's catalog holds them (or the deadline passed: they exist all the same).
async fn create_topics_in_cluster(
    shard: &Rc<Shard>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let deadline = cluster_forward::deadline(request.timeout_ms);
    let forwarded: Vec<TopicCreation> = request
        .topics
        .iter()
        .filter(|topic| !cluster_forward::is_own_topic(shard, &topic.name.0))
        .map(|topic| TopicCreation {
            name: topic.name.0.to_string(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: topic
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
        })
        .collect();
    let results =
        cluster_forward::create_topics(shard, forwarded, request.validate_only, deadline).await;
    let mut response = CreateTopicsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let mut entry = CreatableTopicResult::default();
            entry.name = topic_name(&name);
            entry.num_partitions = -1;
            entry.replication_factor = -1;
            let found = match &results {
                _ if cluster_forward::is_own_topic(shard, &name) => Err((
                    ErrorCode::TopicAlreadyExists.code(),
                    Some(format!("Topic '{name}' already exists.")),
                )),
                Err(code) => Err((*code, None)),
                Ok(results) => results
                    .get(&name)
                    .ok_or((ErrorCode::InvalidRequest.code(), None)),
            };
            match found {
                Ok(result) if result.error_code == ErrorCode::None.code() => {
                    entry.topic_id = uuid::Uuid::from_bytes(result.topic_id);
                    entry.num_partitions = result.num_partitions;
                    entry.replication_factor = result.replication_factor;
                    entry.configs = Some(Vec::new());
                }
                Ok(result) => {
                    entry.error_code = result.error_code;
                    entry.error_message = result.message.as_deref().map(str_bytes);
                }
                Err((code, message)) => {
                    entry.error_code = code;
                    entry.error_message = message.as_deref().map(str_bytes);
                }
            }
            entry
        })
        .collect();
    response
}

fn failed(name: &str, error: ErrorCode, message: String) -> TopicOutcome {
    TopicOutcome {
        name: name.to_string(),
        error,
        message: Some(message),
        topic: None,
    }
}
