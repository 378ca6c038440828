//! EndTxn (key 26): commits or aborts the producer's transaction. The coordinator persists
//! PrepareCommit/PrepareAbort, writes markers to every partition (synced), persists the
//! completion, then answers.

use super::add_partitions_to_txn::fenced_code;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{Shard, TxnOp};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{EndTxnResponse, ProducerId, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::EndTxn(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let transactional_id = request.transactional_id.0.to_string();
        let owned = transactional_id.clone();
        let error = shard
            .txn_call(&transactional_id, |reply| TxnOp::End {
                transactional_id: owned,
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
                commit: request.committed,
                fenced_code: fenced_code(context.version, 2),
                reply,
            })
            .await?;
        let mut response = EndTxnResponse::default();
        response.error_code = error.code();
        response.producer_id = ProducerId(-1);
        response.producer_epoch = -1;
        context.respond(&response).map(Some)
    })
}
