//! DeleteTopics (key 20): by name (v0–5) or by name or id (v6+), applied by the controller.

use super::{str_bytes, topic_name};
use crate::model::ErrorCode;
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
    // (name as requested, id as requested, resolved name)
    let wanted: Vec<(Option<String>, uuid::Uuid, Option<String>)> = if context.version >= 6 {
        request
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string());
                let resolved = match &name {
                    Some(n) => catalog.topic(n).map(|m| m.name.clone()),
                    None => catalog
                        .topic_by_id(t.topic_id.as_bytes())
                        .map(|m| m.name.clone()),
                };
                (name, t.topic_id, resolved)
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| {
                let name = n.0.to_string();
                let resolved = catalog.topic(&name).map(|m| m.name.clone());
                (Some(name), uuid::Uuid::nil(), resolved)
            })
            .collect()
    };
    let names: Vec<String> = wanted.iter().filter_map(|w| w.2.clone()).collect();
    let mut outcomes: HashMap<String, (ErrorCode, uuid::Uuid)> = HashMap::new();
    if !names.is_empty() {
        for outcome in shard.delete_topics(names).await? {
            let id = outcome
                .topic
                .as_ref()
                .map_or(uuid::Uuid::nil(), |m| uuid::Uuid::from_bytes(m.id));
            outcomes.insert(outcome.name, (outcome.error, id));
        }
    }
    let mut response = DeleteTopicsResponse::default();
    response.responses = wanted
        .into_iter()
        .map(|(name, id, resolved)| {
            let mut result = DeletableTopicResult::default();
            let (error, found_id) = match &resolved {
                Some(r) => outcomes
                    .get(r)
                    .copied()
                    .unwrap_or((ErrorCode::UnknownServerError, id)),
                None if name.is_none() => (ErrorCode::UnknownTopicId, id),
                None => (ErrorCode::UnknownTopicOrPartition, id),
            };
            result.name = resolved.or(name).map(|n| topic_name(&n));
            result.topic_id = if found_id.is_nil() { id } else { found_id };
            result.error_code = error.code();
            if error.is_error() {
                result.error_message = Some(str_bytes(&format!("{error:?}")));
            }
            result
        })
        .collect();
    Ok(response)
}
