//! DescribeConfigs (key 32): every topic config with its value and source (the topic's own
//! setting, or the broker default it falls back to) and, on request, synonyms and docs.
//! Broker resources list every broker setting shardlog honours under Kafka's names and forms
//! (`metadata::broker_config`), with source (dynamic per-broker, dynamic cluster default,
//! static, default) and synonyms, plus `shardlog.shards` (read-only) so tools can compute
//! partition → shard placement; the resource "" lists the cluster-default dynamic configs.
//! GROUP resources list the group configs (`metadata::group_config`): the group's override
//! (GROUP_CONFIG) or the broker setting it falls back to, as Kafka's `ConfigHelper` does.

use super::str_bytes;
use crate::metadata::DynamicBrokerConfigs;
use crate::metadata::TopicMeta;
use crate::metadata::broker_config::{BrokerSetting, TYPE_INT, broker_settings};
use crate::metadata::dynamic_broker_config::is_dynamic;
use crate::metadata::group_config;
use crate::metadata::topic_config::{ConfigSpec, TOPIC_CONFIGS};
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsResponse, RequestKind};
use std::rc::Rc;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeConfigs(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let catalog = shard.catalog();
        let mut response = DescribeConfigsResponse::default();
        for resource in &request.resources {
            let name = resource.resource_name.to_string();
            let wanted: Option<Vec<String>> = resource
                .configuration_keys
                .as_ref()
                .map(|keys| keys.iter().map(|k| k.to_string()).collect());
            let mut result = DescribeConfigsResult::default();
            result.resource_type = resource.resource_type;
            result.resource_name = resource.resource_name.clone();
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match catalog.topic(&name) {
                    Some(topic) => Ok(topic_entries(&shard, topic, request.include_synonyms)),
                    None => Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic {name} does not exist."),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() => {
                    Ok(default_entity_entries(&shard, request.include_synonyms))
                }
                RESOURCE_BROKER if name == shard.config.server.node_id.to_string() => {
                    Ok(broker_entries(&shard, request.include_synonyms))
                }
                RESOURCE_BROKER => {
                    Err((ErrorCode::InvalidRequest, format!("Unknown broker {name}.")))
                }
                RESOURCE_GROUP => match group_config::check_group_name(&name) {
                    Ok(()) => Ok(group_entries(&shard, &name, request.include_synonyms)),
                    Err(message) => Err((ErrorCode::InvalidRequest, message)),
                },
                other => Err((
                    ErrorCode::InvalidRequest,
                    format!("Unsupported resource type {other}."),
                )),
            };
            match entries {
                Ok(mut entries) => {
                    if let Some(wanted) = &wanted {
                        entries.retain(|e| wanted.iter().any(|w| *w == e.name.as_str()));
                    }
                    if !request.include_documentation {
                        entries.iter_mut().for_each(|e| e.documentation = None);
                    }
                    result.configs = entries;
                }
                Err((error, message)) => {
                    result.error_code = error.code();
                    result.error_message = Some(str_bytes(&message));
                }
            }
            response.results.push(result);
        }
        context.respond(&response).map(Some)
    })
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    config_type: i8,
    read_only: bool,
    doc: &str,
) -> DescribeConfigsResourceResult {
    let mut entry = DescribeConfigsResourceResult::default();
    entry.name = str_bytes(name);
    entry.value = Some(str_bytes(value));
    entry.config_source = source;
    entry.config_type = config_type;
    entry.read_only = read_only;
    entry.documentation = Some(str_bytes(doc));
    entry
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    let mut synonym = DescribeConfigsSynonym::default();
    synonym.name = str_bytes(name);
    synonym.value = Some(str_bytes(value));
    synonym.source = source;
    synonym
}

/// A topic's configs: its own value (TOPIC_CONFIG), else the broker config it falls back
/// to with that one's source (dynamic per-broker, dynamic default, static or default, as
/// Kafka reports); synonyms: the topic's value, then the broker layers in that order.
fn topic_entries(
    shard: &Shard,
    topic: &TopicMeta,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = shard.dynamic_configs();
    let settings = broker_settings(&shard.config);
    TOPIC_CONFIGS
        .iter()
        .map(|spec: &ConfigSpec| {
            let setting = spec
                .broker_name
                .and_then(|name| settings.iter().find(|s| s.name == name));
            let broker_layers = match setting {
                Some(setting) => broker_layers(setting, &dynamic),
                None => vec![((spec.default)(&shard.config), SOURCE_DEFAULT)],
            };
            let own = topic.configs.get(spec.name);
            let (value, source) = match own {
                Some(value) => (value.clone(), SOURCE_TOPIC),
                None => broker_layers[0].clone(),
            };
            let mut result = entry(
                spec.name,
                &value,
                source,
                spec.kind.kafka_type(),
                false,
                spec.doc,
            );
            if include_synonyms {
                if let Some(value) = own {
                    result
                        .synonyms
                        .push(synonym(spec.name, value, SOURCE_TOPIC));
                }
                if let Some(broker_name) = spec.broker_name {
                    for (value, source) in &broker_layers {
                        result.synonyms.push(synonym(broker_name, value, *source));
                    }
                }
            }
            result
        })
        .collect()
}

/// A group's configs: its override (GROUP_CONFIG), else the broker setting it falls back to
/// (`group.` + the name) with that one's source; synonyms: the override, then the broker
/// layers. Any group id may be described, one without overrides shows the broker's values.
fn group_entries(
    shard: &Shard,
    group_id: &str,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let catalog = shard.catalog();
    let overrides = catalog.group_configs(group_id);
    let dynamic = shard.dynamic_configs();
    let settings = broker_settings(&shard.config);
    group_config::GROUP_CONFIG_NAMES
        .iter()
        .zip(group_config::BROKER_SYNONYMS)
        .filter_map(|(name, broker_name)| {
            let setting = settings.iter().find(|s| s.name == broker_name)?;
            let layers = broker_layers(setting, &dynamic);
            let own = overrides.and_then(|o| o.get(*name));
            let (value, source) = match own {
                Some(value) => (value.clone(), SOURCE_GROUP),
                None => layers[0].clone(),
            };
            let mut result = entry(name, &value, source, TYPE_INT, false, setting.doc);
            if include_synonyms {
                if let Some(value) = own {
                    result.synonyms.push(synonym(name, value, SOURCE_GROUP));
                }
                for (value, source) in &layers {
                    result.synonyms.push(synonym(broker_name, value, *source));
                }
            }
            Some(result)
        })
        .collect()
}

/// The values a broker setting has, highest precedence first, each with its source:
/// per-broker dynamic, cluster-default dynamic, static (when it differs from the built-in
/// default), built-in default. Never empty.
fn broker_layers(setting: &BrokerSetting, dynamic: &DynamicBrokerConfigs) -> Vec<(String, i8)> {
    let mut layers = Vec::with_capacity(4);
    if let Some(value) = dynamic.broker.get(setting.name) {
        layers.push((value.clone(), SOURCE_DYNAMIC_BROKER));
    }
    if let Some(value) = dynamic.cluster_default.get(setting.name) {
        layers.push((value.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER));
    }
    if setting.is_static() {
        layers.push((setting.value.clone(), SOURCE_STATIC_BROKER));
    }
    layers.push((setting.default.clone(), SOURCE_DEFAULT));
    layers
}

/// One broker setting's entry: the value and source of its first (highest-precedence)
/// layer, and every layer as a synonym when asked.
fn layered_entry(
    setting: &BrokerSetting,
    layers: &[(String, i8)],
    read_only: bool,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let (value, source) = &layers[0];
    let mut result = entry(
        setting.name,
        value,
        *source,
        setting.config_type,
        read_only,
        setting.doc,
    );
    if include_synonyms {
        result.synonyms = layers
            .iter()
            .map(|(value, source)| synonym(setting.name, value, *source))
            .collect();
    }
    result
}

/// The cluster-wide default entity (resource name ""): as in Kafka, only the configs set
/// dynamically for it, each DYNAMIC_DEFAULT_BROKER_CONFIG.
fn default_entity_entries(
    shard: &Shard,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = shard.dynamic_configs();
    broker_settings(&shard.config)
        .into_iter()
        .filter(|setting| dynamic.cluster_default.contains_key(setting.name))
        .map(|setting| {
            let layers = broker_layers(&setting, &dynamic);
            let layers: Vec<_> = layers
                .into_iter()
                .filter(|(_, source)| *source != SOURCE_DYNAMIC_BROKER)
                .collect();
            layered_entry(&setting, &layers, false, include_synonyms)
        })
        .collect()
}

/// The broker's settings (`metadata::broker_config`) as Kafka's `DynamicBrokerConfig`
/// reports them: the value and source of the first that is set of this broker's dynamic
/// value (DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default
/// (DYNAMIC_DEFAULT_BROKER_CONFIG), the config file (STATIC_BROKER_CONFIG: it differs from
/// the built-in default) and the built-in default (DEFAULT_CONFIG); synonyms list them all
/// in that order. Dynamic keys are not read-only.
fn broker_entries(shard: &Shard, include_synonyms: bool) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = shard.dynamic_configs();
    let mut entries: Vec<DescribeConfigsResourceResult> = broker_settings(&shard.config)
        .into_iter()
        .map(|setting| {
            let layers = broker_layers(&setting, &dynamic);
            layered_entry(
                &setting,
                &layers,
                !is_dynamic(setting.name),
                include_synonyms,
            )
        })
        .collect();
    let shards_source = if shard.config.shard.shards == 0 {
        SOURCE_DEFAULT
    } else {
        SOURCE_STATIC_BROKER
    };
    entries.push(entry(
        "shardlog.shards",
        &shard.shard_count.to_string(),
        shards_source,
        TYPE_INT,
        true,
        "shard count: partition p of topic t lives on shard (fnv1a(t) + p) mod shards",
    ));
    entries
}
