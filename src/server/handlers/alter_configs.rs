//! AlterConfigs (key 33): replaces a topic's whole config set (the legacy, non-incremental
//! API). Broker configs are static in shardlog and cannot be altered.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{ControllerOp, Shard};
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
                    let outcome = shard
                        .controller_call(|reply| ControllerOp::AlterTopicConfigs {
                            topic: name.clone(),
                            configs,
                            validate_only: request.validate_only,
                            reply,
                        })
                        .await?;
                    (outcome.error, outcome.message)
                }
                RESOURCE_BROKER => (
                    ErrorCode::InvalidRequest,
                    Some("shardlog broker configs are static; edit the config file".to_string()),
                ),
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
