//! AlterConfigs (key 33): replaces a topic's whole config set, or one dynamic broker-config
//! entity's (the legacy, non-incremental API). BROKER resources name this broker's node id
//! (per-broker configs) or "" (the cluster-wide default); see
//! `metadata::dynamic_broker_config` for the keys that can change. GROUP resources replace a
//! group's config overrides (`metadata::group_config`).

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::str_bytes;
use crate::metadata::BrokerEntity;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{BrokerConfigUpdate, ControllerOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsResponse, RequestKind};
use std::collections::BTreeMap;
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::AlterConfigs(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = AlterConfigsResponse::default();
        for resource in &request.resources {
            let name = resource.resource_name.to_string();
            let configs: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let (error, message) = match resource.resource_type {
                RESOURCE_TOPIC => {
                    let change = super::incremental_alter_configs::TopicConfigChange {
                        configs,
                        touched: None,
                    };
                    super::incremental_alter_configs::alter_topic(
                        &shard,
                        &name,
                        change,
                        request.validate_only,
                    )
                    .await?
                }
                RESOURCE_BROKER => match broker_entity(&shard, &name) {
                    Ok(entity) => {
                        let update: BrokerConfigUpdate = Box::new(move |_| Ok(configs));
                        alter_broker_configs(&shard, entity, update, request.validate_only).await?
                    }
                    Err(message) => (ErrorCode::InvalidRequest, Some(message)),
                },
                RESOURCE_GROUP => {
                    let update: BrokerConfigUpdate = Box::new(move |_| Ok(configs));
                    alter_group_configs(&shard, &name, update, request.validate_only).await?
                }
                other => (
                    ErrorCode::InvalidRequest,
                    Some(format!("Unsupported resource type {other}.")),
                ),
            };
            let mut result = AlterConfigsResourceResponse::default();
            result.resource_type = resource.resource_type;
            result.resource_name = resource.resource_name.clone();
            result.error_code = error.code();
            result.error_message = message.as_deref().map(str_bytes);
            response.responses.push(result);
        }
        context.respond(&response).map(Some)
    })
}

/// The dynamic-config entity a BROKER resource name stands for: this broker's node id or ""
/// (the cluster default); any other name is refused with Kafka's message.
pub fn broker_entity(shard: &Shard, name: &str) -> Result<BrokerEntity, String> {
    if name.is_empty() {
        return Ok(BrokerEntity::ClusterDefault);
    }
    let node_id = shard.config.server.node_id;
    match name.parse::<i32>() {
        Ok(id) if id == node_id => Ok(BrokerEntity::ThisBroker),
        Ok(_) => Err(format!(
            "Unexpected broker id, expected {node_id} or empty string, but received {name}"
        )),
        Err(_) => Err(format!("Broker id must be an integer, but it is: {name}")),
    }
}

/// Changes `entity`'s dynamic configs through the controller (`update` runs there under its
/// lock; the result is validated, persisted and applied on every shard before it answers).
pub async fn alter_broker_configs(
    shard: &Rc<Shard>,
    entity: BrokerEntity,
    update: BrokerConfigUpdate,
    validate_only: bool,
) -> Result<(ErrorCode, Option<String>), HandlerError> {
    let outcome = shard
        .controller_call(|reply| ControllerOp::AlterBrokerConfigs {
            entity,
            update,
            validate_only,
            reply,
        })
        .await?;
    Ok(outcome)
}

/// Changes group `name`'s config overrides through the controller (`update` runs there
/// under its lock; the result is validated, saved in the catalog and broadcast before it
/// answers). An empty name is INVALID_REQUEST, as in Kafka. In cluster mode the overrides
/// live in the metadata log: the change goes to the active controller
/// (`cluster_forward::alter_group_configs`).
pub async fn alter_group_configs(
    shard: &Rc<Shard>,
    name: &str,
    update: BrokerConfigUpdate,
    validate_only: bool,
) -> Result<(ErrorCode, Option<String>), HandlerError> {
    if let Err(message) = crate::metadata::group_config::check_group_name(name) {
        return Ok((ErrorCode::InvalidRequest, Some(message)));
    }
    if shard.config.cluster.controller_quorum.is_some() {
        let outcome =
            super::cluster_forward::alter_group_configs(shard, name, update, validate_only).await;
        return Ok(outcome);
    }
    let outcome = shard
        .controller_call(|reply| ControllerOp::AlterGroupConfigs {
            group: name.to_string(),
            update,
            validate_only,
            reply,
        })
        .await?;
    Ok(outcome)
}
