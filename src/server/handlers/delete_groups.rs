//! DeleteGroups (key 42): removes groups without members, classic or consumer-protocol
//! (KIP-848), with their committed offsets (tombstones in `__consumer_offsets`). Non-empty
//! groups get NON_EMPTY_GROUP, unknown ids GROUP_ID_NOT_FOUND.

use super::str_bytes;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsResponse, GroupId, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DeleteGroups(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = DeleteGroupsResponse::default();
        for group_id in &request.groups_names {
            let group_id = group_id.0.to_string();
            let owned = group_id.clone();
            let error = shard
                .group_call(&group_id, |reply| GroupOp::Delete {
                    group_id: owned,
                    reply,
                })
                .await?;
            let mut result = DeletableGroupResult::default();
            result.group_id = GroupId(str_bytes(&group_id));
            result.error_code = error.code();
            response.results.push(result);
        }
        context.respond(&response).map(Some)
    })
}
