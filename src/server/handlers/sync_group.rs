//! SyncGroup (key 14): the leader's assignment is stored (and persisted) and every member
//! gets its share; followers wait for the leader.

use super::str_bytes;
use crate::group::SyncInput;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{RequestKind, SyncGroupResponse};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::SyncGroup(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let group_id = request.group_id.0.to_string();
        if let Err(code) = authorize::group(&shard, &context, AclOperation::Read, &group_id) {
            let mut response = SyncGroupResponse::default();
            response.error_code = code.code();
            return context.respond(&response).map(Some);
        }
        let input = SyncInput {
            token: 0,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            generation_id: request.generation_id,
            protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
            protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
            assignments: request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        let outcome = shard
            .group_call(&group_id, |reply| GroupOp::Sync {
                group_id: group_id.clone(),
                input,
                reply,
            })
            .await?;
        let mut response = SyncGroupResponse::default();
        response.error_code = outcome.error.code();
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
        response.assignment = outcome.assignment;
        context.respond(&response).map(Some)
    })
}
