//! The ACL APIs' wire structs to and from `security::acl` (CreateAcls, DescribeAcls,
//! DeleteAcls share the binding and filter fields).

use crate::model::ErrorCode;
use crate::security::acl::{AclBinding, AclError, AclFilter, AclOperation, WireAcl};
use crate::server::{RequestContext, authorize};
use crate::shard::Shard;
use kafka_protocol::messages::create_acls_request::AclCreation;

/// SECURITY_DISABLED's message when the authorizer is off, as Kafka words it.
pub fn security_disabled_message() -> Option<String> {
    Some("No Authorizer is configured (start with --authorizer acl).".to_string())
}

/// Why an ACL request is refused as a whole: SECURITY_DISABLED without the authorizer, else
/// CLUSTER_AUTHORIZATION_FAILED when the principal may not do `operation` on the cluster.
pub fn refusal(
    shard: &Shard,
    context: &RequestContext,
    operation: AclOperation,
) -> Option<(ErrorCode, Option<String>)> {
    if !authorize::enabled(shard) {
        return Some((ErrorCode::SecurityDisabled, security_disabled_message()));
    }
    authorize::cluster(shard, context, operation)
        .err()
        .map(|code| (code, None))
}

pub fn wire_creation(creation: &AclCreation) -> WireAcl<'_> {
    WireAcl {
        resource_type: creation.resource_type,
        resource_name: creation.resource_name.as_str(),
        pattern_type: creation.resource_pattern_type,
        principal: creation.principal.as_str(),
        host: creation.host.as_str(),
        operation: creation.operation,
        permission: creation.permission_type,
    }
}

/// The fields every ACL filter request carries (DescribeAcls, DeleteAcls' filters).
pub struct FilterFields<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

pub fn filter(fields: &FilterFields<'_>) -> Result<AclFilter, AclError> {
    let wire = WireAcl {
        resource_type: fields.resource_type,
        resource_name: "",
        pattern_type: fields.pattern_type,
        principal: "",
        host: "",
        operation: fields.operation,
        permission: fields.permission,
    };
    AclFilter::new(&wire, fields.resource_name, fields.principal, fields.host)
}

/// Bindings grouped by resource (type, name, pattern), in the catalog's order.
pub fn by_resource(acls: &[AclBinding]) -> Vec<(&AclBinding, Vec<&AclBinding>)> {
    let mut groups: Vec<(&AclBinding, Vec<&AclBinding>)> = Vec::new();
    for acl in acls {
        match groups.last_mut() {
            Some((first, members))
                if first.resource_type == acl.resource_type
                    && first.resource_name == acl.resource_name
                    && first.pattern_type == acl.pattern_type =>
            {
                members.push(acl)
            }
            _ => groups.push((acl, vec![acl])),
        }
    }
    groups
}
