//! DescribeConfigs (key 32): every topic config with its value and source (the topic's own
//! setting, or the broker default it falls back to) and, on request, synonyms and docs.
//! Broker resources list the broker's static settings under Kafka names, plus
//! `shardlog.shards` (read-only) so tools can compute partition → shard placement.

use super::str_bytes;
use crate::config::Config;
use crate::metadata::TopicMeta;
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
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_BOOLEAN: i8 = 1;

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
                    Ok(broker_entries(&shard))
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

fn broker_entries(shard: &Shard) -> Vec<DescribeConfigsResourceResult> {
    let c = &shard.config;
    let settings: Vec<(&str, String, i8, &str)> = vec![
        (
            "node.id",
            c.server.node_id.to_string(),
            TYPE_INT,
            "this broker's id",
        ),
        (
            "broker.id",
            c.server.node_id.to_string(),
            TYPE_INT,
            "this broker's id",
        ),
        (
            "listeners",
            c.server.listen.clone(),
            TYPE_STRING,
            "Kafka listener",
        ),
        (
            "log.dirs",
            c.storage.data_dir.display().to_string(),
            TYPE_STRING,
            "data directory",
        ),
        (
            "num.partitions",
            c.topic_defaults.num_partitions.to_string(),
            TYPE_INT,
            "partitions of auto-created topics",
        ),
        (
            "auto.create.topics.enable",
            c.topic_defaults.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "auto-create topics",
        ),
        (
            "default.replication.factor",
            "1".to_string(),
            TYPE_INT,
            "single broker",
        ),
        (
            "log.retention.ms",
            c.topic_defaults.retention_ms.to_string(),
            TYPE_LONG,
            "default retention.ms",
        ),
        (
            "log.retention.bytes",
            c.topic_defaults.retention_bytes.to_string(),
            TYPE_LONG,
            "default retention.bytes",
        ),
        (
            "log.segment.bytes",
            c.storage.segment_bytes.to_string(),
            TYPE_INT,
            "default segment.bytes",
        ),
        (
            "log.roll.ms",
            c.storage.segment_ms.to_string(),
            TYPE_LONG,
            "default segment.ms",
        ),
        (
            "log.index.interval.bytes",
            c.storage.index_interval_bytes.to_string(),
            TYPE_INT,
            "default index.interval.bytes",
        ),
        (
            "message.max.bytes",
            c.storage.batch_bytes_max.to_string(),
            TYPE_INT,
            "default max.message.bytes",
        ),
        (
            "socket.request.max.bytes",
            c.server.request_bytes_max.to_string(),
            TYPE_INT,
            "largest request",
        ),
        (
            "offsets.topic.num.partitions",
            c.group.offsets_topic_partitions.to_string(),
            TYPE_INT,
            "partitions of __consumer_offsets",
        ),
        (
            "group.min.session.timeout.ms",
            c.group.session_timeout_ms_min.to_string(),
            TYPE_INT,
            "smallest session timeout",
        ),
        (
            "group.max.session.timeout.ms",
            c.group.session_timeout_ms_max.to_string(),
            TYPE_INT,
            "largest session timeout",
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group.initial_rebalance_delay_ms.to_string(),
            TYPE_INT,
            "first rebalance delay",
        ),
        (
            "group.max.size",
            c.group.members_max.to_string(),
            TYPE_INT,
            "members per group",
        ),
        (
            "offset.metadata.max.bytes",
            c.group.offset_metadata_bytes_max.to_string(),
            TYPE_INT,
            "largest commit metadata",
        ),
        (
            "offsets.retention.minutes",
            c.group.offsets_retention_minutes.to_string(),
            TYPE_INT,
            "committed offset retention",
        ),
        (
            "shardlog.shards",
            shard.shard_count.to_string(),
            TYPE_INT,
            "shard count: partition p of topic t lives on shard (fnv1a(t) + p) mod shards",
        ),
    ];
    settings
        .into_iter()
        .map(|(name, value, config_type, doc)| {
            entry(name, &value, SOURCE_STATIC_BROKER, config_type, true, doc)
        })
        .collect()
}
