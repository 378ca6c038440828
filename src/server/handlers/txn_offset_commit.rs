//! TxnOffsetCommit (key 28): offsets committed inside a transaction, sent to the group's
//! coordinator; they become visible to OffsetFetch when the transaction commits.

use super::topic_name;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, OffsetCommitEntry, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{RequestKind, TxnOffsetCommitResponse};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::TxnOffsetCommit(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
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
        let (member_id, generation_id) = if context.version >= 3 {
            (request.member_id.to_string(), request.generation_id)
        } else {
            (String::new(), -1)
        };
        let owned = group_id.clone();
        let errors = shard
            .group_call(&group_id, |reply| GroupOp::TxnCommitOffsets {
                group_id: owned,
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
                member_id,
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                generation_id,
                entries,
                reply,
            })
            .await?;
        let mut errors = errors.into_iter();
        let mut response = TxnOffsetCommitResponse::default();
        response.topics = request
            .topics
            .iter()
            .map(|topic| {
                let mut entry = TxnOffsetCommitResponseTopic::default();
                entry.name = topic_name(&topic.name.0);
                entry.partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut partition = TxnOffsetCommitResponsePartition::default();
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
    })
}
