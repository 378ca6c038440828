//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets` partition to the
//! producer's transaction, so its TxnOffsetCommit becomes visible with the commit.

use super::add_partitions_to_txn::fenced_code;
use crate::group::OFFSETS_TOPIC;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{Shard, TxnOp};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{AddOffsetsToTxnResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::AddOffsetsToTxn(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let transactional_id = request.transactional_id.0.to_string();
        let offsets_partition = shard.group_coordinator_partition(&request.group_id.0);
        let owned = transactional_id.clone();
        let error = shard
            .txn_call(&transactional_id, |reply| TxnOp::AddPartitions {
                transactional_id: owned,
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
                partitions: vec![(OFFSETS_TOPIC.to_string(), offsets_partition.partition)],
                fenced_code: fenced_code(context.version, 2),
                reply,
            })
            .await?;
        let mut response = AddOffsetsToTxnResponse::default();
        response.error_code = error.code();
        context.respond(&response).map(Some)
    })
}
