//! ListTransactions (key 66): transactional ids of every coordinator shard, filtered by
//! state and producer id (v0) and by minimum running time (v1). While a shard loads a
//! `__transaction_state` partition it leads (cluster mode), the answer carries
//! COORDINATOR_LOAD_IN_PROGRESS with what is listed so far, as Kafka's.

use super::str_bytes;
use crate::model::ShardId;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{Shard, TxnOp, now_ms};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsResponse, ProducerId, RequestKind, TransactionalId,
};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ListTransactions(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let states: Vec<String> = request
            .state_filters
            .iter()
            .map(|s| s.to_string())
            .collect();
        let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
        let calls = (0..shard.shard_count).map(|target| {
            let shard = shard.clone();
            async move {
                shard
                    .txn_call_on(ShardId(target), |reply| TxnOp::List { reply })
                    .await
            }
        });
        let now = now_ms();
        let mut response = ListTransactionsResponse::default();
        for listed in futures::future::join_all(calls).await {
            let (listed, code) = listed?;
            if code.is_error() {
                response.error_code = code.code();
            }
            for described in listed {
                if !states.is_empty() && !states.iter().any(|s| s == described.state) {
                    continue;
                }
                if !producers.is_empty() && !producers.contains(&described.producer_id) {
                    continue;
                }
                let running_ms = if described.start_ms >= 0 {
                    now - described.start_ms
                } else {
                    0
                };
                if context.version >= 1
                    && request.duration_filter >= 0
                    && running_ms < request.duration_filter
                {
                    continue;
                }
                let mut state = TransactionState::default();
                state.transactional_id = TransactionalId(str_bytes(&described.transactional_id));
                state.producer_id = ProducerId(described.producer_id);
                state.transaction_state = str_bytes(described.state);
                response.transaction_states.push(state);
            }
        }
        context.respond(&response).map(Some)
    })
}
