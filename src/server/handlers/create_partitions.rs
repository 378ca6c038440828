//! CreatePartitions (key 37): raises a topic's partition count (never lowers it). Keyed
//! producers then map some keys to new partitions: per-key ordering holds only within the
//! old or the new layout, as in Kafka.

use super::{str_bytes, topic_name};
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{ControllerOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsResponse, RequestKind};
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
        for topic in &request.topics {
            let name = topic.name.0.to_string();
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
