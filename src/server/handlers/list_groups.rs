//! ListGroups (key 16): the groups of every shard, optionally filtered by state (v4+) and
//! type (v5+: "classic", or "consumer" for KIP-848 groups).

use super::str_bytes;
use crate::model::ShardId;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{GroupOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ListGroups(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let states: Vec<String> = request
            .states_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let types: Vec<String> = request
            .types_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let calls = (0..shard.shard_count).map(|target| {
            let shard = shard.clone();
            async move {
                shard
                    .group_call_on(ShardId(target), |reply| GroupOp::List { reply })
                    .await
            }
        });
        let mut response = ListGroupsResponse::default();
        for listed in futures::future::join_all(calls).await {
            let (groups, error) = listed?;
            // As Kafka: the groups found so far, with COORDINATOR_LOAD_IN_PROGRESS while a
            // partition's groups are still loading.
            if error.is_error() {
                response.error_code = error.code();
            }
            for group in groups {
                let state = group.state;
                if !states.is_empty() && !states.contains(&state.to_lowercase()) {
                    continue;
                }
                if !types.is_empty() && !types.iter().any(|t| t == group.group_type) {
                    continue;
                }
                let mut entry = ListedGroup::default();
                entry.group_id = GroupId(str_bytes(&group.group_id));
                entry.protocol_type = str_bytes(&group.protocol_type);
                entry.group_state = str_bytes(state);
                entry.group_type = str_bytes(group.group_type);
                response.groups.push(entry);
            }
        }
        response
            .groups
            .sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
        context.respond(&response).map(Some)
    })
}
