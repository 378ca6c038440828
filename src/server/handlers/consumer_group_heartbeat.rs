//! ConsumerGroupHeartbeat (key 68, KIP-848): a `consumer`-protocol member joins, heartbeats,
//! reports the partitions it owns and learns its epoch and assignment; epoch -1 leaves,
//! -2 leaves for a while (static members). The group coordinator's state machine decides.

use super::{error_fields, str_bytes};
use crate::group::consumer::{Assignment, HeartbeatInput};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ConsumerGroupHeartbeat(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let group_id = request.group_id.0.to_string();
        let mut member_id = request.member_id.to_string();
        // v0: the coordinator names a joining member (v1+ clients generate their id).
        if member_id.is_empty() && request.member_epoch == 0 && context.version == 0 {
            member_id = uuid::Uuid::new_v4().to_string();
        }
        let owned_partitions = request.topic_partitions.as_ref().map(|topics| {
            let mut owned = Assignment::new();
            for topic in topics {
                owned
                    .entry(*topic.topic_id.as_bytes())
                    .or_default()
                    .extend(topic.partitions.iter().copied());
            }
            owned
        });
        let input = HeartbeatInput {
            member_id,
            instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
            rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
            member_epoch: request.member_epoch,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_topic_names: request
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
            subscribed_topic_regex: request
                .subscribed_topic_regex
                .as_ref()
                .map(|s| s.to_string()),
            server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
            owned_partitions,
            client_id: context.client_id.clone().unwrap_or_default(),
            client_host: context.client_host.clone(),
        };
        let outcome = shard
            .group_call(&group_id, |reply| GroupOp::ConsumerHeartbeat {
                group_id: group_id.clone(),
                input,
                reply,
            })
            .await?;
        let mut response = ConsumerGroupHeartbeatResponse::default();
        (response.error_code, response.error_message) =
            error_fields(outcome.error, outcome.error_message.as_deref());
        if !outcome.error.is_error() {
            response.member_id = Some(str_bytes(&outcome.member_id));
        }
        response.member_epoch = outcome.member_epoch;
        response.heartbeat_interval_ms = outcome.heartbeat_interval_ms;
        response.assignment = outcome.assignment.map(|assignment| {
            let mut wire = WireAssignment::default();
            wire.topic_partitions = assignment
                .into_iter()
                .map(|(topic_id, partitions)| {
                    let mut topic = TopicPartitions::default();
                    topic.topic_id = uuid::Uuid::from_bytes(topic_id);
                    topic.partitions = partitions.into_iter().collect();
                    topic
                })
                .collect();
            wire
        });
        context.respond(&response).map(Some)
    })
}
