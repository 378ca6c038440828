//! DescribeAcls (key 29): the ACL bindings one filter selects, grouped by resource. Needs
//! DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise); SECURITY_DISABLED when
//! the authorizer is off; an invalid filter is INVALID_REQUEST.

use super::acl_wire::{FilterFields, by_resource, filter, refusal};
use super::{error_fields, str_bytes};
use crate::model::ErrorCode;
use crate::security::acl::{AclBinding, AclOperation};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeAcls(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = DescribeAclsResponse::default();
        let fields = FilterFields {
            resource_type: request.resource_type_filter,
            resource_name: request.resource_name_filter.as_deref(),
            pattern_type: request.pattern_type_filter,
            principal: request.principal_filter.as_deref(),
            host: request.host_filter.as_deref(),
            operation: request.operation,
            permission: request.permission_type,
        };
        let outcome = match refusal(&shard, &context, AclOperation::Describe) {
            Some(refused) => Err(refused),
            None => filter(&fields)
                .map_err(|error| (ErrorCode::InvalidRequest, Some(error.to_string()))),
        };
        match outcome {
            Err((code, message)) => {
                (response.error_code, response.error_message) =
                    error_fields(code, message.as_deref());
            }
            Ok(filter) => {
                let catalog = shard.catalog();
                let selected: Vec<AclBinding> = catalog
                    .acls()
                    .iter()
                    .filter(|acl| filter.matches(acl))
                    .cloned()
                    .collect();
                response.resources = by_resource(&selected)
                    .into_iter()
                    .map(|(first, members)| {
                        let mut resource = DescribeAclsResource::default();
                        resource.resource_type = first.resource_type.code();
                        resource.resource_name = str_bytes(&first.resource_name);
                        resource.pattern_type = first.pattern_type.code();
                        resource.acls = members
                            .into_iter()
                            .map(|acl| {
                                let mut description = AclDescription::default();
                                description.principal = str_bytes(&acl.principal);
                                description.host = str_bytes(&acl.host);
                                description.operation = acl.operation.code();
                                description.permission_type = acl.permission.code();
                                description
                            })
                            .collect();
                        resource
                    })
                    .collect();
            }
        }
        context.respond(&response).map(Some)
    })
}
