//! OffsetCommit (key 8): checked against the group's generation and membership (for a
//! consumer-protocol group, v9+: the member and its epoch), written to `__consumer_offsets`,
//! answered once synced. Simple consumers (generation -1, no member) may commit for a group
//! without members.

use super::topic_name;
use crate::model::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::api_table::ResponseFuture;
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{GroupOp, OffsetCommitEntry, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestKind};
use std::rc::Rc;

/// Stage 1 enqueues the commit on the coordinator shard in request order (so pipelined
/// async commits of one consumer apply in order and the last one wins, as in Kafka); stage 2
/// waits until it is synced and answers.
#[allow(clippy::async_yields_async)] // stage 1 deliberately yields stage 2
pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    Box::pin(async move {
        let RequestKind::OffsetCommit(request) = body else {
            let api = context.api;
            let failed: ResponseFuture = Box::pin(async move { Err(HandlerError::WrongBody(api)) });
            return failed;
        };
        enqueue(shard, context, request).await
    })
}

async fn enqueue(
    shard: Rc<Shard>,
    context: RequestContext,
    request: OffsetCommitRequest,
) -> ResponseFuture {
    let group_id = request.group_id.0.to_string();
    let entries: Vec<OffsetCommitEntry> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| OffsetCommitEntry {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let count = entries.len();
    // The authorizer: READ on the group (every partition refused otherwise), READ on each
    // topic (its partitions refused, the others committed).
    let group_denied = authorize::group(&shard, &context, AclOperation::Read, &group_id).err();
    let topic_denied: Vec<Option<ErrorCode>> = entries
        .iter()
        .map(|entry| authorize::topic(&shard, &context, AclOperation::Read, &entry.topic).err())
        .collect();
    let entries: Vec<OffsetCommitEntry> = entries
        .into_iter()
        .zip(&topic_denied)
        .filter(|(_, denied)| denied.is_none())
        .map(|(entry, _)| entry)
        .collect();
    let pending = if group_id.is_empty() || group_denied.is_some() || entries.is_empty() {
        None
    } else {
        let op = |reply| GroupOp::CommitOffsets {
            group_id: group_id.clone(),
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            generation_id: request.generation_id_or_member_epoch,
            api_version: context.version,
            entries,
            reply,
        };
        Some(shard.group_enqueue(&group_id, op).await)
    };
    Box::pin(async move {
        let errors = match (pending, group_denied) {
            (_, Some(denied)) => vec![denied; count],
            (Some(reply), None) => {
                let mut committed = reply.await?.into_iter();
                topic_denied
                    .iter()
                    .map(|denied| {
                        denied.unwrap_or_else(|| {
                            committed.next().unwrap_or(ErrorCode::UnknownServerError)
                        })
                    })
                    .collect()
            }
            (None, None) if group_id.is_empty() => vec![ErrorCode::InvalidGroupId; count],
            (None, None) => topic_denied
                .iter()
                .map(|denied| denied.unwrap_or(ErrorCode::UnknownServerError))
                .collect(),
        };
        respond(&context, &request, errors)
    })
}

/// The response in request order, one error per partition.
fn respond(
    context: &RequestContext,
    request: &OffsetCommitRequest,
    errors: Vec<ErrorCode>,
) -> Result<Option<crate::server::ResponseFrame>, HandlerError> {
    let mut errors = errors.into_iter();
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = OffsetCommitResponseTopic::default();
            entry.name = topic_name(&topic.name.0);
            entry.topic_id = topic.topic_id;
            entry.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = OffsetCommitResponsePartition::default();
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
    context.respond(&response).map(Some)
}
