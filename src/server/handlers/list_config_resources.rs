//! ListConfigResources (key 74, KIP-1142, Kafka 4.1): the resources DescribeConfigs can
//! describe. v1 lists, per asked resource type, topics (TOPIC, every topic in the catalog)
//! this broker (BROKER, its node id) and the groups with config overrides (GROUP); an empty
//! type list means every supported type. shardlog keeps no client-metrics or broker-logger
//! configs, so those types list nothing; a type Kafka does not define is INVALID_REQUEST.
//! v0 (Kafka 3.7's ListClientMetricsResources) lists client-metrics resources only: none.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::str_bytes;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesResponse, RequestKind};
use std::rc::Rc;

const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
/// The types an empty request lists, in Kafka's order.
const SUPPORTED_TYPES: &[i8] = &[
    RESOURCE_TOPIC,
    RESOURCE_BROKER,
    RESOURCE_BROKER_LOGGER,
    RESOURCE_CLIENT_METRICS,
    RESOURCE_GROUP,
];

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::ListConfigResources(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = ListConfigResourcesResponse::default();
        if context.version == 0 {
            return context.respond(&response).map(Some);
        }
        let types: &[i8] = if request.resource_types.is_empty() {
            SUPPORTED_TYPES
        } else {
            &request.resource_types
        };
        if types.iter().any(|t| !SUPPORTED_TYPES.contains(t)) {
            response.error_code = ErrorCode::InvalidRequest.code();
            return context.respond(&response).map(Some);
        }
        let catalog = shard.catalog();
        for resource_type in types {
            match *resource_type {
                RESOURCE_TOPIC => {
                    for topic in catalog.topics() {
                        response
                            .config_resources
                            .push(resource(&topic.name, RESOURCE_TOPIC));
                    }
                }
                RESOURCE_BROKER => {
                    let node_id = shard.config.server.node_id.to_string();
                    response
                        .config_resources
                        .push(resource(&node_id, RESOURCE_BROKER));
                }
                RESOURCE_GROUP => {
                    for group in catalog.groups_with_configs() {
                        response
                            .config_resources
                            .push(resource(group, RESOURCE_GROUP));
                    }
                }
                _ => {}
            }
        }
        context.respond(&response).map(Some)
    })
}

fn resource(name: &str, resource_type: i8) -> ConfigResource {
    let mut resource = ConfigResource::default();
    resource.resource_name = str_bytes(name);
    resource.resource_type = resource_type;
    resource
}
