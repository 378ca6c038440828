//! LeaveGroup (key 13): one member (v0–2) or a batch of members by id or instance id (v3+).

use super::str_bytes;
use crate::model::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::LeaveGroup(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let group_id = request.group_id.0.to_string();
        if let Err(code) = authorize::group(&shard, &context, AclOperation::Read, &group_id) {
            let mut response = LeaveGroupResponse::default();
            response.error_code = code.code();
            return context.respond(&response).map(Some);
        }
        let members: Vec<(String, Option<String>)> = if context.version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let outcome = shard
            .group_call(&group_id, |reply| GroupOp::Leave {
                group_id: group_id.clone(),
                members: members.clone(),
                reply,
            })
            .await?;
        let mut response = LeaveGroupResponse::default();
        match outcome {
            Err(error) => response.error_code = error.code(),
            Ok(errors) if context.version >= 3 => {
                response.members = members
                    .iter()
                    .zip(errors)
                    .map(|((member_id, instance_id), error)| {
                        let mut member = MemberResponse::default();
                        member.member_id = str_bytes(member_id);
                        member.group_instance_id = instance_id.as_deref().map(str_bytes);
                        member.error_code = error.code();
                        member
                    })
                    .collect();
            }
            Ok(errors) => {
                response.error_code = errors
                    .first()
                    .copied()
                    .unwrap_or(ErrorCode::UnknownMemberId)
                    .code();
            }
        }
        context.respond(&response).map(Some)
    })
}
