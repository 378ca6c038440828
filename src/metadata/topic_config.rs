//! Topic-level configs with Kafka's names, types, defaults (derived from the broker `Config`),
//! broker synonyms and validation. Values are kept as the
//! strings the client sent (as Kafka does) after validation; typed accessors read them.

use crate::config::Config;
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicConfigError {
    #[error("unknown topic config `{name}`")]
    Unknown { name: String },
    #[error("invalid value `{value}` for topic config `{name}`: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// A signed integer >= the given minimum.
    Long {
        min: i64,
    },
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// A comma-separated subset of a list of words (cleanup.policy).
    List(&'static [&'static str]),
    Boolean,
    Double,
    /// Free text (e.g. replica lists for throttling).
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct ConfigSpec {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// Whether shardlog acts on it today (others are stored and described only).
    pub applied: bool,
    /// The broker-level config this topic config falls back to (a DescribeConfigs synonym).
    pub broker_name: Option<&'static str>,
    /// The value when neither the topic nor the broker config sets it.
    pub default: fn(&Config) -> String,
    pub doc: &'static str,
}

const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
const LONG_MAX: fn(&Config) -> String = |_| i64::MAX.to_string();

macro_rules! spec {
    ($name:expr, $kind:expr, $applied:expr, $broker:expr, $default:expr, $doc:expr) => {
        ConfigSpec {
            name: $name,
            kind: $kind,
            applied: $applied,
            broker_name: $broker,
            default: $default,
            doc: $doc,
        }
    };
}

pub const TOPIC_CONFIGS: &[ConfigSpec] = &[
    spec!(
        "cleanup.policy",
        ConfigKind::List(CLEANUP_POLICIES),
        true,
        Some("log.cleanup.policy"),
        |_| "delete".into(),
        "delete old segments, compact by key, or both"
    ),
    spec!(
        "compression.type",
        ConfigKind::Choice(COMPRESSION_TYPES),
        true,
        Some("compression.type"),
        |_| "producer".into(),
        "final compression of the topic's batches"
    ),
    spec!(
        "delete.retention.ms",
        ConfigKind::Long { min: 0 },
        true,
        Some("log.cleaner.delete.retention.ms"),
        |_| "86400000".into(),
        "how long tombstones are kept on compacted topics"
    ),
    spec!(
        "file.delete.delay.ms",
        ConfigKind::Long { min: 0 },
        false,
        Some("log.segment.delete.delay.ms"),
        |_| "60000".into(),
        "delay before a deleted segment file is removed"
    ),
    spec!(
        "flush.messages",
        ConfigKind::Long { min: 1 },
        false,
        Some("log.flush.interval.messages"),
        LONG_MAX,
        "messages between forced flushes (shardlog: see sync_policy)"
    ),
    spec!(
        "flush.ms",
        ConfigKind::Long { min: 0 },
        false,
        Some("log.flush.interval.ms"),
        LONG_MAX,
        "time between forced flushes (shardlog: see sync_policy)"
    ),
    spec!(
        "follower.replication.throttled.replicas",
        ConfigKind::Text,
        false,
        None,
        |_| String::new(),
        "replicas throttled on followers"
    ),
    spec!(
        "index.interval.bytes",
        ConfigKind::Long { min: 0 },
        true,
        Some("log.index.interval.bytes"),
        |c| c.storage.index_interval_bytes.to_string(),
        "bytes between offset-index entries"
    ),
    spec!(
        "leader.replication.throttled.replicas",
        ConfigKind::Text,
        false,
        None,
        |_| String::new(),
        "replicas throttled on leaders"
    ),
    spec!(
        "local.retention.bytes",
        ConfigKind::Long { min: -2 },
        false,
        Some("log.local.retention.bytes"),
        |_| "-2".into(),
        "tiered storage: local retention size"
    ),
    spec!(
        "local.retention.ms",
        ConfigKind::Long { min: -2 },
        false,
        Some("log.local.retention.ms"),
        |_| "-2".into(),
        "tiered storage: local retention time"
    ),
    spec!(
        "max.compaction.lag.ms",
        ConfigKind::Long { min: 1 },
        true,
        Some("log.cleaner.max.compaction.lag.ms"),
        LONG_MAX,
        "longest a record stays uncompacted"
    ),
    spec!(
        "max.message.bytes",
        ConfigKind::Long { min: 0 },
        true,
        Some("message.max.bytes"),
        |c| c.storage.batch_bytes_max.to_string(),
        "largest record batch accepted"
    ),
    spec!(
        "message.timestamp.after.max.ms",
        ConfigKind::Long { min: 0 },
        false,
        Some("log.message.timestamp.after.max.ms"),
        LONG_MAX,
        "largest allowed timestamp in the future"
    ),
    spec!(
        "message.timestamp.before.max.ms",
        ConfigKind::Long { min: 0 },
        false,
        Some("log.message.timestamp.before.max.ms"),
        LONG_MAX,
        "largest allowed timestamp in the past"
    ),
    spec!(
        "message.timestamp.difference.max.ms",
        ConfigKind::Long { min: 0 },
        false,
        Some("log.message.timestamp.difference.max.ms"),
        LONG_MAX,
        "deprecated timestamp difference bound"
    ),
    spec!(
        "message.timestamp.type",
        ConfigKind::Choice(TIMESTAMP_TYPES),
        true,
        Some("log.message.timestamp.type"),
        |_| "CreateTime".into(),
        "CreateTime keeps producer timestamps; LogAppendTime stamps the broker clock"
    ),
    spec!(
        "min.cleanable.dirty.ratio",
        ConfigKind::Double,
        true,
        Some("log.cleaner.min.cleanable.ratio"),
        |_| "0.5".into(),
        "dirty ratio that triggers compaction"
    ),
    spec!(
        "min.compaction.lag.ms",
        ConfigKind::Long { min: 0 },
        true,
        Some("log.cleaner.min.compaction.lag.ms"),
        |_| "0".into(),
        "shortest time a record stays uncompacted"
    ),
    spec!(
        "min.insync.replicas",
        ConfigKind::Long { min: 1 },
        false,
        Some("min.insync.replicas"),
        |_| "1".into(),
        "replicas that must ack acks=all writes (single broker: 1)"
    ),
    spec!(
        "preallocate",
        ConfigKind::Boolean,
        false,
        Some("log.preallocate"),
        |_| "false".into(),
        "preallocate segment files"
    ),
    spec!(
        "remote.storage.enable",
        ConfigKind::Boolean,
        false,
        None,
        |_| "false".into(),
        "tiered storage"
    ),
    spec!(
        "retention.bytes",
        ConfigKind::Long { min: -1 },
        true,
        Some("log.retention.bytes"),
        |c| c.topic_defaults.retention_bytes.to_string(),
        "largest partition size before old segments are deleted (-1: no limit)"
    ),
    spec!(
        "retention.ms",
        ConfigKind::Long { min: -1 },
        true,
        Some("log.retention.ms"),
        |c| c.topic_defaults.retention_ms.to_string(),
        "age after which segments are deleted (-1: forever)"
    ),
    spec!(
        "segment.bytes",
        ConfigKind::Long { min: 14 },
        true,
        Some("log.segment.bytes"),
        |c| c.storage.segment_bytes.to_string(),
        "segment size that triggers a roll"
    ),
    spec!(
        "segment.index.bytes",
        ConfigKind::Long { min: 4 },
        false,
        Some("log.index.size.max.bytes"),
        |_| "10485760".into(),
        "largest offset-index file"
    ),
    spec!(
        "segment.jitter.ms",
        ConfigKind::Long { min: 0 },
        false,
        Some("log.roll.jitter.ms"),
        |_| "0".into(),
        "random jitter subtracted from segment.ms"
    ),
    spec!(
        "segment.ms",
        ConfigKind::Long { min: 1 },
        true,
        Some("log.roll.ms"),
        |c| c.storage.segment_ms.to_string(),
        "segment age that triggers a roll"
    ),
    spec!(
        "unclean.leader.election.enable",
        ConfigKind::Boolean,
        false,
        Some("unclean.leader.election.enable"),
        |_| "false".into(),
        "allow out-of-sync leaders"
    ),
];

impl ConfigKind {
    /// Kafka's DescribeConfigs config type: BOOLEAN 1, STRING 2, LONG 5, DOUBLE 6, LIST 7.
    pub fn kafka_type(self) -> i8 {
        match self {
            ConfigKind::Boolean => 1,
            ConfigKind::Choice(_) | ConfigKind::Text => 2,
            ConfigKind::Long { .. } => 5,
            ConfigKind::Double => 6,
            ConfigKind::List(_) => 7,
        }
    }
}

pub fn find_spec(name: &str) -> Option<&'static ConfigSpec> {
    TOPIC_CONFIGS.iter().find(|spec| spec.name == name)
}

/// Validates one config entry.
pub fn validate_entry(name: &str, value: &str) -> Result<(), TopicConfigError> {
    let spec = find_spec(name).ok_or_else(|| TopicConfigError::Unknown {
        name: name.to_string(),
    })?;
    let invalid = |reason| TopicConfigError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        reason,
    };
    match spec.kind {
        ConfigKind::Long { min } => match value.trim().parse::<i64>() {
            Ok(parsed) if parsed >= min => Ok(()),
            Ok(_) => Err(invalid("below the minimum")),
            Err(_) => Err(invalid("not an integer")),
        },
        ConfigKind::Choice(words) => {
            if words.contains(&value.trim()) {
                Ok(())
            } else {
                Err(invalid("not one of the allowed values"))
            }
        }
        ConfigKind::List(words) => {
            let all_known = value
                .split(',')
                .map(str::trim)
                .all(|word| words.contains(&word));
            if all_known && !value.trim().is_empty() {
                Ok(())
            } else {
                Err(invalid("not a list of allowed values"))
            }
        }
        ConfigKind::Boolean => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(invalid("not a boolean")),
        },
        ConfigKind::Double => value
            .trim()
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| invalid("not a number")),
        ConfigKind::Text => Ok(()),
    }
}

/// Validates a whole set of configs.
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), TopicConfigError> {
    configs
        .iter()
        .try_for_each(|(name, value)| validate_entry(name, value))
}

/// Reads a validated integer config, if set.
pub fn long_value(configs: &BTreeMap<String, String>, name: &str) -> Option<i64> {
    configs.get(name).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_kafka_config_values() {
        assert!(validate_entry("retention.ms", "-1").is_ok());
        assert!(validate_entry("retention.ms", "-2").is_err());
        assert!(validate_entry("retention.ms", "soon").is_err());
        assert!(validate_entry("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_entry("cleanup.policy", "shred").is_err());
        assert!(validate_entry("message.timestamp.type", "LogAppendTime").is_ok());
        assert_eq!(
            validate_entry("no.such.config", "1"),
            Err(TopicConfigError::Unknown {
                name: "no.such.config".to_string()
            })
        );
    }
}
