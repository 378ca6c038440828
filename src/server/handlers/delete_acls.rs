//! DeleteAcls (key 31): removes the ACL bindings each filter selects and answers, per
//! filter, the bindings it removed. Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED
//! for every filter otherwise); SECURITY_DISABLED when the authorizer is off; an invalid
//! filter is INVALID_REQUEST (the others still apply). The new set is saved in the catalog
//! (synced) and sent to every shard before the answer.

use super::acl_wire::{FilterFields, filter, refusal};
use super::{error_fields, str_bytes};
use crate::model::ErrorCode;
use crate::security::acl::{AclFilter, AclOperation};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{ControllerOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DeleteAcls(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let refusal = refusal(&shard, &context, AclOperation::Alter);
        // Per filter: the parsed filter, or the refusal it is answered with.
        let parsed: Vec<Result<AclFilter, (ErrorCode, Option<String>)>> = request
            .filters
            .iter()
            .map(|wire| {
                if let Some(refusal) = &refusal {
                    return Err(refusal.clone());
                }
                filter(&FilterFields {
                    resource_type: wire.resource_type_filter,
                    resource_name: wire.resource_name_filter.as_deref(),
                    pattern_type: wire.pattern_type_filter,
                    principal: wire.principal_filter.as_deref(),
                    host: wire.host_filter.as_deref(),
                    operation: wire.operation,
                    permission: wire.permission_type,
                })
                .map_err(|error| (ErrorCode::InvalidRequest, Some(error.to_string())))
            })
            .collect();
        let filters: Vec<AclFilter> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
        let mut removed = Vec::new();
        let mut failure = None;
        if !filters.is_empty() {
            let update: crate::shard::AclUpdate = Box::new(move |current| {
                let removed: Vec<_> = filters
                    .iter()
                    .map(|f| {
                        current
                            .iter()
                            .filter(|acl| f.matches(acl))
                            .cloned()
                            .collect()
                    })
                    .collect();
                let kept = current
                    .iter()
                    .filter(|acl| !filters.iter().any(|f| f.matches(acl)))
                    .cloned()
                    .collect();
                (kept, removed)
            });
            match shard
                .controller_call(|reply| ControllerOp::AlterAcls { update, reply })
                .await?
            {
                Ok(per_filter) => removed = per_filter,
                Err((code, message)) => failure = Some((code, Some(message))),
            }
        }
        let mut removed = removed.into_iter();
        let mut response = DeleteAclsResponse::default();
        for outcome in parsed {
            let mut result = DeleteAclsFilterResult::default();
            let refused = match outcome {
                Err(refusal) => Some(refusal),
                Ok(_) => failure.clone(),
            };
            match refused {
                Some((code, message)) => {
                    (result.error_code, result.error_message) =
                        error_fields(code, message.as_deref());
                }
                None => {
                    result.matching_acls = removed
                        .next()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|acl| {
                            let mut matching = DeleteAclsMatchingAcl::default();
                            matching.resource_type = acl.resource_type.code();
                            matching.resource_name = str_bytes(&acl.resource_name);
                            matching.pattern_type = acl.pattern_type.code();
                            matching.principal = str_bytes(&acl.principal);
                            matching.host = str_bytes(&acl.host);
                            matching.operation = acl.operation.code();
                            matching.permission_type = acl.permission.code();
                            matching
                        })
                        .collect();
                }
            }
            response.filter_results.push(result);
        }
        context.respond(&response).map(Some)
    })
}
