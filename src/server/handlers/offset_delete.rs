//! OffsetDelete (key 47): deletes committed offsets of a group that has no active members
//! (a group with members gets GROUP_SUBSCRIBED_TO_TOPIC for every partition: shardlog does
//! not yet inspect subscriptions to allow deleting offsets of unsubscribed topics).

use super::topic_name;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::OffsetDelete(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let group_id = request.group_id.0.to_string();
        let partitions: Vec<(String, i32)> = request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index))
            })
            .collect();
        let owned = group_id.clone();
        let outcome = shard
            .group_call(&group_id, |reply| GroupOp::DeleteOffsets {
                group_id: owned,
                partitions,
                reply,
            })
            .await?;
        let mut response = OffsetDeleteResponse::default();
        match outcome {
            Err(error) => response.error_code = error.code(),
            Ok(errors) => {
                let mut errors = errors.into_iter();
                response.topics = request
                    .topics
                    .iter()
                    .map(|topic| {
                        let mut entry = OffsetDeleteResponseTopic::default();
                        entry.name = topic_name(&topic.name.0);
                        entry.partitions = topic
                            .partitions
                            .iter()
                            .map(|p| {
                                let mut partition = OffsetDeleteResponsePartition::default();
                                partition.partition_index = p.partition_index;
                                partition.error_code = errors
                                    .next()
                                    .unwrap_or(ErrorCode::UnknownServerError)
                                    .code();
                                partition
                            })
                            .collect();
                        entry
                    })
                    .collect();
            }
        }
        context.respond(&response).map(Some)
    })
}
