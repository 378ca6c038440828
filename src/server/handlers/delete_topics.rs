//! DeleteTopics (key 20): by name (v0–5) or by name or id (v6+), applied by the controller.

use super::{cluster_forward, str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::quorum::frame::ControllerRequest;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestKind};
use std::collections::HashMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DeleteTopics(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let response = delete_topics(&shard, &context, request).await?;
        context.respond(&response).map(Some)
    })
}

async fn delete_topics(
    shard: &Rc<Shard>,
    context: &RequestContext,
    request: DeleteTopicsRequest,
) -> Result<DeleteTopicsResponse, HandlerError> {
    let catalog = shard.catalog();
    // Cluster mode: the metadata log's topics are resolved (and deleted) there first.
    let cluster = crate::quorum::view::cluster_topics();
    let in_cluster = |name: Option<&String>, id: &uuid::Uuid| -> Option<String> {
        let topics = cluster.as_ref()?;
        match name {
            Some(name) => topics.topics.contains_key(name).then(|| name.clone()),
            None => topics
                .topics
                .iter()
                .find(|(_, topic)| &topic.id == id.as_bytes())
                .map(|(name, _)| name.clone()),
        }
    };
    let own = |name: &str| {
        catalog
            .topic(name)
            .filter(|t| !t.cluster || cluster.is_none())
    };
    // (name as requested, id as requested, resolved name)
    let wanted: Vec<(Option<String>, uuid::Uuid, Option<String>)> = if context.version >= 6 {
        request
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string());
                let resolved = match &name {
                    Some(n) => own(n).map(|m| m.name.clone()),
                    None => catalog
                        .topic_by_id(t.topic_id.as_bytes())
                        .and_then(|m| own(&m.name))
                        .map(|m| m.name.clone()),
                };
                let resolved = in_cluster(name.as_ref(), &t.topic_id).or(resolved);
                (name, t.topic_id, resolved)
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| {
                let name = n.0.to_string();
                let resolved = own(&name).map(|m| m.name.clone());
                let resolved = in_cluster(Some(&name), &uuid::Uuid::nil()).or(resolved);
                (Some(name), uuid::Uuid::nil(), resolved)
            })
            .collect()
    };
    let (cluster_names, names): (Vec<String>, Vec<String>) = wanted
        .iter()
        .filter_map(|w| w.2.clone())
        .partition(|name| in_cluster(Some(name), &uuid::Uuid::nil()).is_some());
    // name -> (error code, message, topic id)
    let mut outcomes: HashMap<String, (i16, Option<String>, uuid::Uuid)> = HashMap::new();
    if !cluster_names.is_empty() {
        let ids: HashMap<String, uuid::Uuid> = cluster_names
            .iter()
            .filter_map(|name| {
                let id = cluster.as_ref()?.topics.get(name)?.id;
                Some((name.clone(), uuid::Uuid::from_bytes(id)))
            })
            .collect();
        let deadline = cluster_forward::deadline(request.timeout_ms);
        let call = ControllerRequest::DeleteTopics {
            names: cluster_names.clone(),
        };
        match cluster_forward::forward_topics(call, deadline).await {
            Ok(results) => {
                for result in results {
                    let id = ids.get(&result.name).copied().unwrap_or_default();
                    outcomes.insert(result.name, (result.error_code, result.message, id));
                }
                cluster_forward::wait_for_catalog(shard, deadline, |catalog| {
                    ids.iter().all(|(name, id)| {
                        catalog.topic(name).is_none_or(|t| &t.id != id.as_bytes())
                    })
                })
                .await;
            }
            Err(code) => {
                for name in cluster_names {
                    let id = ids.get(&name).copied().unwrap_or_default();
                    outcomes.insert(name, (code, None, id));
                }
            }
        }
    }
    if !names.is_empty() {
        for outcome in shard.delete_topics(names).await? {
            let id = outcome
                .topic
                .as_ref()
                .map_or(uuid::Uuid::nil(), |m| uuid::Uuid::from_bytes(m.id));
            let message = outcome
                .error
                .is_error()
                .then(|| format!("{:?}", outcome.error));
            outcomes.insert(outcome.name, (outcome.error.code(), message, id));
        }
    }
    let mut response = DeleteTopicsResponse::default();
    response.responses = wanted
        .into_iter()
        .map(|(name, id, resolved)| {
            let mut result = DeletableTopicResult::default();
            let failed = |error: ErrorCode| (error.code(), Some(format!("{error:?}")), id);
            let (code, message, found_id) = match &resolved {
                Some(r) => outcomes
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| failed(ErrorCode::UnknownServerError)),
                None if name.is_none() => failed(ErrorCode::UnknownTopicId),
                None => failed(ErrorCode::UnknownTopicOrPartition),
            };
            result.name = resolved.or(name).map(|n| topic_name(&n));
            result.topic_id = if found_id.is_nil() { id } else { found_id };
            result.error_code = code;
            result.error_message = message.as_deref().map(str_bytes);
            result
        })
        .collect();
    Ok(response)
}
