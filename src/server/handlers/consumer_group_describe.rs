//! ConsumerGroupDescribe (key 69, KIP-848): a consumer-protocol group's state, epochs,
//! assignor and members with their epochs, subscriptions, current and target assignments.
//! A group id that is not a consumer group gets GROUP_ID_NOT_FOUND.

use super::{error_fields, str_bytes};
use crate::group::consumer::Assignment;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupDescribeResponse, GroupId, RequestKind, TopicName};
use std::rc::Rc;

const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// KIP-1099 `MemberType`: the member uses the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn wire_assignment(shard: &Shard, assignment: Assignment) -> WireAssignment {
    let catalog = shard.catalog();
    let mut wire = WireAssignment::default();
    wire.topic_partitions = assignment
        .into_iter()
        .map(|(topic_id, partitions)| {
            let mut topic = TopicPartitions::default();
            topic.topic_id = uuid::Uuid::from_bytes(topic_id);
            if let Some(meta) = catalog.topics().find(|t| t.id == topic_id) {
                topic.topic_name = TopicName(str_bytes(&meta.name));
            }
            topic.partitions = partitions.into_iter().collect();
            topic
        })
        .collect();
    wire
}

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ConsumerGroupDescribe(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let calls = request.group_ids.iter().map(|group_id| {
            let shard = shard.clone();
            let group_id = group_id.0.to_string();
            async move {
                let owned = group_id.clone();
                let described = shard
                    .group_call(&group_id, |reply| GroupOp::ConsumerDescribe {
                        group_id: owned,
                        reply,
                    })
                    .await;
                (group_id, described)
            }
        });
        let mut response = ConsumerGroupDescribeResponse::default();
        for (group_id, described) in futures::future::join_all(calls).await {
            let mut group = DescribedGroup::default();
            group.group_id = GroupId(str_bytes(&group_id));
            group.authorized_operations = OPERATIONS_NOT_REQUESTED;
            match described? {
                Err(error) => {
                    let not_found = format!("Group {group_id} not found.");
                    let message = (error == ErrorCode::GroupIdNotFound).then_some(not_found);
                    (group.error_code, group.error_message) =
                        error_fields(error, message.as_deref());
                }
                Ok(description) => {
                    group.group_state = str_bytes(description.state.kafka_name());
                    group.group_epoch = description.group_epoch;
                    group.assignment_epoch = description.assignment_epoch;
                    group.assignor_name = str_bytes(description.assignor_name);
                    group.members = description
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = Member::default();
                            member.member_id = str_bytes(&m.member_id);
                            member.instance_id = m.instance_id.as_deref().map(str_bytes);
                            member.rack_id = m.rack_id.as_deref().map(str_bytes);
                            member.member_epoch = m.member_epoch;
                            member.client_id = str_bytes(&m.client_id);
                            member.client_host = str_bytes(&m.client_host);
                            member.subscribed_topic_names = m
                                .subscribed_topic_names
                                .iter()
                                .map(|n| TopicName(str_bytes(n)))
                                .collect();
                            member.subscribed_topic_regex =
                                m.subscribed_topic_regex.as_deref().map(str_bytes);
                            member.assignment = wire_assignment(&shard, m.assignment);
                            member.target_assignment = wire_assignment(&shard, m.target_assignment);
                            member.member_type = MEMBER_TYPE_CONSUMER;
                            member
                        })
                        .collect();
                }
            }
            response.groups.push(group);
        }
        context.respond(&response).map(Some)
    })
}
