//! DescribeConfigs (key 32): every topic config with its value and source (the topic's own
//! setting, or the broker default it falls back to) and, on request, synonyms and docs.
//! Broker resources list every broker setting shardlog honours under Kafka's names and forms
//! (`metadata::broker_config`), with source and synonyms, plus `shardlog.shards` (read-only)
//! so tools can compute partition → shard placement.

use super::str_bytes;
use crate::config::Config;
use crate::metadata::TopicMeta;
use crate::metadata::broker_config::{TYPE_INT, broker_settings};
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
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

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
                    Some(topic) => Ok(topic_entries(
                        &shard.config,
                        topic,
                        request.include_synonyms,
                    )),
                    None => Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic {name} does not exist."),
                    )),
                },
                RESOURCE_BROKER
                    if name.is_empty() || name == shard.config.server.node_id.to_string() =>
                {
                    Ok(broker_entries(&shard, request.include_synonyms))
                }
                RESOURCE_BROKER => {
                    Err((ErrorCode::InvalidRequest, format!("Unknown broker {name}.")))
                }
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

fn topic_entries(
    config: &Config,
    topic: &TopicMeta,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .map(|spec: &ConfigSpec| {
            let default = (spec.default)(config);
            let own = topic.configs.get(spec.name);
            let (value, source) = match own {
                Some(value) => (value.clone(), SOURCE_TOPIC),
                None => (default.clone(), SOURCE_DEFAULT),
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
                    result
                        .synonyms
                        .push(synonym(broker_name, &default, SOURCE_DEFAULT));
                }
            }
            result
        })
        .collect()
}

/// The broker's settings (`metadata::broker_config`), each STATIC_BROKER_CONFIG when it
/// differs from shardlog's built-in default and DEFAULT_CONFIG otherwise; synonyms as Kafka
/// lists them: the static value first, then the default. Read-only: no dynamic broker configs.
fn broker_entries(shard: &Shard, include_synonyms: bool) -> Vec<DescribeConfigsResourceResult> {
    let mut entries: Vec<DescribeConfigsResourceResult> = broker_settings(&shard.config)
        .into_iter()
        .map(|setting| {
            let source = if setting.is_static() {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let mut result = entry(
                setting.name,
                &setting.value,
                source,
                setting.config_type,
                true,
                setting.doc,
            );
            if include_synonyms {
                if setting.is_static() {
                    let own = synonym(setting.name, &setting.value, SOURCE_STATIC_BROKER);
                    result.synonyms.push(own);
                }
                let default = synonym(setting.name, &setting.default, SOURCE_DEFAULT);
                result.synonyms.push(default);
            }
            result
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
