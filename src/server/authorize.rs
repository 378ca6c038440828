//! The authorizer as handlers call it: may this request's principal, from its host, do an
//! operation on a resource (`security::acl` decides over the catalog's ACLs and the
//! `[authorizer]` config). With `authorizer.kind = none` every check passes and costs a
//! config read.
//!
//! Owns: nothing; the glue from a request's connection to `Authorizer::authorize`. May
//! import: `crate::security::acl`, `crate::shard` (catalog, config). Runs on: any shard.

use super::context::RequestContext;
use crate::model::ErrorCode;
use crate::security::acl::{AclOperation, Authorizer, CLUSTER_NAME, ResourceType};
use crate::shard::Shard;
use kafka_protocol::messages::ApiKey;

/// Whether the authorizer is on (`authorizer.kind = acl`).
pub fn enabled(shard: &Shard) -> bool {
    shard.config.authorizer.enabled()
}

/// Runs `decision` with the authorizer over the catalog's ACLs and the request's principal
/// (`User:alice`) and host (an IP address).
fn decide(
    shard: &Shard,
    context: &RequestContext,
    decision: impl FnOnce(&Authorizer<'_>, &str, &str) -> bool,
) -> bool {
    let principal = context.connection.security.borrow().principal.to_string();
    let host = context.client_host.trim_start_matches('/');
    let catalog = shard.catalog();
    let config = &shard.config.authorizer;
    let authorizer = Authorizer {
        acls: catalog.acls(),
        super_users: &config.super_users,
        allow_if_no_acl: config.allow_everyone_if_no_acl_found,
    };
    decision(&authorizer, &principal, host)
}

/// Whether the request's principal may do `operation` on resource `name` of `resource_type`.
pub fn allowed(
    shard: &Shard,
    context: &RequestContext,
    operation: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if !enabled(shard) {
        return true;
    }
    let decision = decide(shard, context, |authorizer, principal, host| {
        authorizer.authorize(principal, host, operation, resource_type, name)
    });
    if !decision {
        let principal = &context.connection.security.borrow().principal;
        tracing::debug!(%principal, host = %context.client_host, operation = operation.label(),
            resource_type = resource_type.label(), resource = %name, api = ?context.api,
            "request denied by ACLs");
    }
    decision
}

/// Whether some ALLOW binding grants the principal (or `User:*`), from its host,
/// `operation` on some topic (Kafka's `authorizeByResourceType`, simplified: a DENY on every
/// topic, literal `*`, refuses). True for super users and with the authorizer off.
pub fn any_topic(shard: &Shard, context: &RequestContext, operation: AclOperation) -> bool {
    if !enabled(shard) {
        return true;
    }
    decide(shard, context, |authorizer, principal, host| {
        authorizer.authorize_any(principal, host, operation, ResourceType::Topic)
    })
}

/// `allowed` on the topic `name`, as TOPIC_AUTHORIZATION_FAILED when not.
pub fn topic(
    shard: &Shard,
    context: &RequestContext,
    operation: AclOperation,
    name: &str,
) -> Result<(), ErrorCode> {
    allowed(shard, context, operation, ResourceType::Topic, name)
        .then_some(())
        .ok_or(ErrorCode::TopicAuthorizationFailed)
}

/// `allowed` on the group `id`, as GROUP_AUTHORIZATION_FAILED when not.
pub fn group(
    shard: &Shard,
    context: &RequestContext,
    operation: AclOperation,
    id: &str,
) -> Result<(), ErrorCode> {
    allowed(shard, context, operation, ResourceType::Group, id)
        .then_some(())
        .ok_or(ErrorCode::GroupAuthorizationFailed)
}

/// `allowed` on the transactional id `id`, as TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
pub fn transactional_id(
    shard: &Shard,
    context: &RequestContext,
    operation: AclOperation,
    id: &str,
) -> Result<(), ErrorCode> {
    allowed(shard, context, operation, ResourceType::TransactionalId, id)
        .then_some(())
        .ok_or(ErrorCode::TransactionalIdAuthorizationFailed)
}

/// `allowed` on the cluster, as CLUSTER_AUTHORIZATION_FAILED when not.
pub fn cluster(
    shard: &Shard,
    context: &RequestContext,
    operation: AclOperation,
) -> Result<(), ErrorCode> {
    allowed(
        shard,
        context,
        operation,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )
    .then_some(())
    .ok_or(ErrorCode::ClusterAuthorizationFailed)
}

/// Whether API `key` checks the ACLs itself (per resource, answering Kafka's
/// *_AUTHORIZATION_FAILED codes) or needs none (ApiVersions, the SASL requests and
/// DescribeCluster, as in Kafka). Every other API is served, with the authorizer on, only to
/// principals with ALTER on the cluster; the connection of anyone else is closed.
pub fn checks_own_acls(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::ApiVersions
            | ApiKey::SaslHandshake
            | ApiKey::SaslAuthenticate
            | ApiKey::DescribeCluster
            | ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::OffsetForLeaderEpoch
            | ApiKey::InitProducerId
            | ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::CreateAcls
            | ApiKey::DescribeAcls
            | ApiKey::DeleteAcls
    )
}
