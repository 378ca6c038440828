//! Topic-level configs with Kafka's names, types and validation. Values are kept as the
//! strings the client sent (as Kafka does) after validation; typed accessors read them.

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
}

const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];

pub const TOPIC_CONFIGS: &[ConfigSpec] = &[
    spec("cleanup.policy", ConfigKind::List(CLEANUP_POLICIES), false),
    spec(
        "compression.type",
        ConfigKind::Choice(COMPRESSION_TYPES),
        false,
    ),
    spec("delete.retention.ms", ConfigKind::Long { min: 0 }, false),
    spec("file.delete.delay.ms", ConfigKind::Long { min: 0 }, false),
    spec("flush.messages", ConfigKind::Long { min: 1 }, false),
    spec("flush.ms", ConfigKind::Long { min: 0 }, false),
    spec(
        "follower.replication.throttled.replicas",
        ConfigKind::Text,
        false,
    ),
    spec("index.interval.bytes", ConfigKind::Long { min: 0 }, true),
    spec(
        "leader.replication.throttled.replicas",
        ConfigKind::Text,
        false,
    ),
    spec("local.retention.bytes", ConfigKind::Long { min: -2 }, false),
    spec("local.retention.ms", ConfigKind::Long { min: -2 }, false),
    spec("max.compaction.lag.ms", ConfigKind::Long { min: 1 }, false),
    spec("max.message.bytes", ConfigKind::Long { min: 0 }, true),
    spec(
        "message.timestamp.after.max.ms",
        ConfigKind::Long { min: 0 },
        false,
    ),
    spec(
        "message.timestamp.before.max.ms",
        ConfigKind::Long { min: 0 },
        false,
    ),
    spec(
        "message.timestamp.difference.max.ms",
        ConfigKind::Long { min: 0 },
        false,
    ),
    spec(
        "message.timestamp.type",
        ConfigKind::Choice(TIMESTAMP_TYPES),
        true,
    ),
    spec("min.cleanable.dirty.ratio", ConfigKind::Double, false),
    spec("min.compaction.lag.ms", ConfigKind::Long { min: 0 }, false),
    spec("min.insync.replicas", ConfigKind::Long { min: 1 }, false),
    spec("preallocate", ConfigKind::Boolean, false),
    spec("remote.storage.enable", ConfigKind::Boolean, false),
    spec("retention.bytes", ConfigKind::Long { min: -1 }, true),
    spec("retention.ms", ConfigKind::Long { min: -1 }, true),
    spec("segment.bytes", ConfigKind::Long { min: 14 }, true),
    spec("segment.index.bytes", ConfigKind::Long { min: 4 }, false),
    spec("segment.jitter.ms", ConfigKind::Long { min: 0 }, false),
    spec("segment.ms", ConfigKind::Long { min: 1 }, true),
    spec("unclean.leader.election.enable", ConfigKind::Boolean, false),
];

const fn spec(name: &'static str, kind: ConfigKind, applied: bool) -> ConfigSpec {
    ConfigSpec {
        name,
        kind,
        applied,
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
