//! DescribeGroups (key 15): state, protocol and members (with their subscriptions and
//! assignments) of each classic group. An unknown id, or a consumer-protocol (KIP-848) group,
//! reads as state "Dead" with no error before v6 and gets GROUP_ID_NOT_FOUND with Kafka's
//! message from v6 (Kafka 4.0), as Kafka answers.

use super::{error_fields, str_bytes};
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsResponse, GroupId, RequestKind};
use std::rc::Rc;

const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeGroups(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let calls = request.groups.iter().map(|group_id| {
            let shard = shard.clone();
            let group_id = group_id.0.to_string();
            async move {
                let owned = group_id.clone();
                shard
                    .group_call(&group_id, |reply| GroupOp::Describe {
                        group_id: owned,
                        reply,
                    })
                    .await
            }
        });
        let mut response = DescribeGroupsResponse::default();
        for described in futures::future::join_all(calls).await {
            let described = described?;
            let mut group = DescribedGroup::default();
            group.error_code = described.error.code();
            if context.version >= 6
                && !described.error.is_error()
                && let Some(reason) = &described.not_found
            {
                (group.error_code, group.error_message) =
                    error_fields(ErrorCode::GroupIdNotFound, Some(reason));
            }
            group.group_id = GroupId(str_bytes(&described.group_id));
            group.group_state = str_bytes(described.state.kafka_name());
            group.protocol_type = str_bytes(&described.protocol_type);
            group.protocol_data = str_bytes(&described.protocol_name);
            group.authorized_operations = OPERATIONS_NOT_REQUESTED;
            group.members = described
                .members
                .into_iter()
                .map(|m| {
                    let mut member = DescribedGroupMember::default();
                    member.member_id = str_bytes(&m.member_id);
                    member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                    member.client_id = str_bytes(&m.client_id);
                    member.client_host = str_bytes(&m.client_host);
                    member.member_metadata = m.metadata;
                    member.member_assignment = m.assignment;
                    member
                })
                .collect();
            response.groups.push(group);
        }
        context.respond(&response).map(Some)
    })
}
