//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on individual topic
//! or dynamic broker configs (BROKER resource: node id or "" for the cluster default) or a
//! group's config overrides (GROUP resource, single-broker mode); the result is validated
//! and applied as a whole by the controller.

use super::alter_configs::{alter_broker_configs, alter_group_configs, broker_entity};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::str_bytes;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{BrokerConfigUpdate, ControllerOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsResponse, RequestKind};
use std::collections::BTreeMap;
use std::rc::Rc;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Applies the operations to `configs`; an unknown operation is an error message.
pub fn apply_operations(
    configs: &mut BTreeMap<String, String>,
    operations: &[AlterableConfig],
) -> Result<(), String> {
    for operation in operations {
        let name = operation.name.to_string();
        let value = operation.value.as_ref().map(|v| v.to_string());
        match operation.config_operation {
            OP_SET => {
                configs.insert(name, value.unwrap_or_default());
            }
            OP_DELETE => {
                configs.remove(&name);
            }
            OP_APPEND | OP_SUBTRACT => {
                let mut items: Vec<String> = configs
                    .get(&name)
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if operation.config_operation == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name, items.join(","));
            }
            other => return Err(format!("Unknown config operation {other}.")),
        }
    }
    Ok(())
}

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::IncrementalAlterConfigs(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = IncrementalAlterConfigsResponse::default();
        for resource in &request.resources {
            let name = resource.resource_name.to_string();
            let (error, message) = match resource.resource_type {
                // A metadata-log topic's configs are the log's (this broker's copy may lag).
                RESOURCE_TOPIC => match super::cluster_forward::cluster_topic_configs(&name)
                    .or_else(|| shard.catalog().topic(&name).map(|t| t.configs.clone()))
                {
                    None => (
                        ErrorCode::UnknownTopicOrPartition,
                        Some(format!("Topic {name} does not exist.")),
                    ),
                    Some(mut configs) => match apply_operations(&mut configs, &resource.configs) {
                        Err(message) => (ErrorCode::InvalidRequest, Some(message)),
                        Ok(()) => {
                            // Only the keys the request names change (others' concurrent
                            // changes stay).
                            let touched: Vec<String> = resource
                                .configs
                                .iter()
                                .map(|c| c.name.to_string())
                                .collect();
                            let change = TopicConfigChange {
                                configs,
                                touched: Some(touched),
                            };
                            alter_topic(&shard, &name, change, request.validate_only).await?
                        }
                    },
                },
                RESOURCE_BROKER => match broker_entity(&shard, &name) {
                    Err(message) => (ErrorCode::InvalidRequest, Some(message)),
                    Ok(entity) => {
                        let operations = resource.configs.clone();
                        let update: BrokerConfigUpdate = Box::new(move |current| {
                            let mut configs = current.clone();
                            apply_operations(&mut configs, &operations).map(|()| configs)
                        });
                        alter_broker_configs(&shard, entity, update, request.validate_only).await?
                    }
                },
                RESOURCE_GROUP => {
                    let operations = resource.configs.clone();
                    let update: BrokerConfigUpdate = Box::new(move |current| {
                        let mut configs = current.clone();
                        apply_operations(&mut configs, &operations).map(|()| configs)
                    });
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

/// A topic's new configs, and which keys the request named (`None`: every key, a full
/// replacement as AlterConfigs makes).
pub(super) struct TopicConfigChange {
    pub configs: BTreeMap<String, String>,
    pub touched: Option<Vec<String>>,
}

/// Changes a topic's configs: through the active controller for a topic of the cluster's
/// metadata log (only the touched keys), else by this broker's catalog controller.
pub(super) async fn alter_topic(
    shard: &Rc<Shard>,
    name: &str,
    change: TopicConfigChange,
    validate_only: bool,
) -> Result<(ErrorCode, Option<String>), HandlerError> {
    if let Some(answer) =
        super::cluster_forward::alter_topic_configs(shard, name, &change, validate_only).await
    {
        return Ok(answer);
    }
    let outcome = shard
        .controller_call(|reply| ControllerOp::AlterTopicConfigs {
            topic: name.to_string(),
            configs: change.configs,
            validate_only,
            reply,
        })
        .await?;
    Ok((outcome.error, outcome.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
        let mut config = AlterableConfig::default();
        config.name = StrBytes::from_string(name.to_string());
        config.config_operation = operation;
        config.value = value.map(|v| StrBytes::from_string(v.to_string()));
        config
    }

    #[test]
    fn set_delete_append_subtract() {
        let mut configs = BTreeMap::new();
        apply_operations(&mut configs, &[op("retention.ms", OP_SET, Some("1000"))]).unwrap();
        apply_operations(
            &mut configs,
            &[op("cleanup.policy", OP_APPEND, Some("delete"))],
        )
        .unwrap();
        apply_operations(
            &mut configs,
            &[op("cleanup.policy", OP_APPEND, Some("compact"))],
        )
        .unwrap();
        assert_eq!(configs["cleanup.policy"], "delete,compact");
        apply_operations(
            &mut configs,
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        )
        .unwrap();
        assert_eq!(configs["cleanup.policy"], "compact");
        apply_operations(&mut configs, &[op("retention.ms", OP_DELETE, None)]).unwrap();
        assert!(!configs.contains_key("retention.ms"));
        assert!(apply_operations(&mut configs, &[op("x", 9, None)]).is_err());
    }
}
