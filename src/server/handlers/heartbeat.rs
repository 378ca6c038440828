//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.

use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{HeartbeatResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::Heartbeat(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let group_id = request.group_id.0.to_string();
        if let Err(code) = authorize::group(&shard, &context, AclOperation::Read, &group_id) {
            let mut response = HeartbeatResponse::default();
            response.error_code = code.code();
            return context.respond(&response).map(Some);
        }
        let error = shard
            .group_call(&group_id, |reply| GroupOp::Heartbeat {
                group_id: group_id.clone(),
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                generation_id: request.generation_id,
                reply,
            })
            .await?;
        let mut response = HeartbeatResponse::default();
        response.error_code = error.code();
        context.respond(&response).map(Some)
    })
}
