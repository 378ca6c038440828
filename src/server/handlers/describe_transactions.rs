//! DescribeTransactions (key 65): state, producer, timeout and partitions of transactional
//! ids, from their coordinator shards.

use super::{str_bytes, topic_name};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{Shard, TxnDescription, TxnOp};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsResponse, ProducerId, RequestKind, TransactionalId,
};
use std::collections::BTreeMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeTransactions(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = DescribeTransactionsResponse::default();
        for id in &request.transactional_ids {
            let transactional_id = id.0.to_string();
            let owned = transactional_id.clone();
            let described: TxnDescription = shard
                .txn_call(&transactional_id, |reply| TxnOp::Describe {
                    transactional_id: owned,
                    reply,
                })
                .await?;
            let mut state = TransactionState::default();
            state.error_code = described.error.code();
            state.transactional_id = TransactionalId(str_bytes(&described.transactional_id));
            state.transaction_state = str_bytes(described.state);
            state.transaction_timeout_ms = described.timeout_ms;
            state.transaction_start_time_ms = described.start_ms;
            state.producer_id = ProducerId(described.producer_id);
            state.producer_epoch = described.producer_epoch;
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in described.partitions {
                topics.entry(topic).or_default().push(partition);
            }
            state.topics = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let mut data = TopicData::default();
                    data.topic = topic_name(&topic);
                    data.partitions = partitions;
                    data
                })
                .collect();
            response.transaction_states.push(state);
        }
        context.respond(&response).map(Some)
    })
}
