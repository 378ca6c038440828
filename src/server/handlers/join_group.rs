//! JoinGroup (key 11): routed to the group's coordinator shard; answered when the
//! rebalance completes (or at once for errors, MEMBER_ID_REQUIRED and static rejoins).

use super::str_bytes;
use crate::group::JoinInput;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::JoinGroup(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let group_id = request.group_id.0.to_string();
        if let Err(code) = authorize::group(&shard, &context, AclOperation::Read, &group_id) {
            let mut response = JoinGroupResponse::default();
            response.error_code = code.code();
            return context.respond(&response).map(Some);
        }
        let input = JoinInput {
            token: 0,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            fresh_member_id: String::new(),
            client_id: context.client_id.clone().unwrap_or_default(),
            client_host: context.client_host.clone(),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if context.version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: context.version >= 4,
        };
        let outcome = shard
            .group_call(&group_id, |reply| GroupOp::Join {
                group_id: group_id.clone(),
                input,
                reply,
            })
            .await?;
        let mut response = JoinGroupResponse::default();
        response.error_code = outcome.error.code();
        response.generation_id = outcome.generation_id;
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
        if context.version < 7 && response.protocol_name.is_none() {
            response.protocol_name = Some(str_bytes(""));
        }
        response.leader = str_bytes(&outcome.leader);
        // KIP-814's skip_assignment exists from v9; older leaders just reassign the same way.
        response.skip_assignment = context.version >= 9 && outcome.skip_assignment;
        response.member_id = str_bytes(&outcome.member_id);
        response.members = outcome
            .members
            .into_iter()
            .map(|m| {
                let mut member = JoinGroupResponseMember::default();
                member.member_id = str_bytes(&m.member_id);
                member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                member.metadata = m.metadata;
                member
            })
            .collect();
        context.respond(&response).map(Some)
    })
}
