//! Per-group config overrides (Kafka's `GroupConfig`, KIP-848): the GROUP config resource
//! (type 32) of IncrementalAlterConfigs / AlterConfigs / DescribeConfigs. A group may
//! override `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`; every other
//! value comes from the broker's `[group]` settings.
//!
//! Owns: the key names, their parsing and validation (Kafka's messages, INVALID_CONFIG), and
//! the effective values a consumer group runs with. May import: `crate::config`. Runs on:
//! any shard (pure functions). Invariants: a stored override set passed `validate` against
//! the broker config it was written under; a stored set the config no longer admits (its
//! bounds were narrowed since) is ignored as a whole: the group runs on the broker's values.

use crate::config::GroupConfig;
use std::collections::BTreeMap;
use thiserror::Error;

pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
/// The GROUP keys shardlog knows, in DescribeConfigs order.
pub const GROUP_CONFIG_NAMES: [&str; 2] =
    [CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS];
/// The broker setting each key falls back to (Kafka: `group.` + the key).
pub const BROKER_SYNONYMS: [&str; 2] = [
    "group.consumer.session.timeout.ms",
    "group.consumer.heartbeat.interval.ms",
];

/// Why an override set is refused; the messages are Kafka's (`GroupConfig.validate`,
/// `ConfigDef` parsing), each answered with INVALID_CONFIG.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GroupConfigError {
    #[error("Unknown group config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: Not a number of type INT")]
    NotAnInt { name: &'static str, value: String },
    #[error("Invalid value {value} for configuration {name}: Value must be at least 1")]
    BelowOne { name: &'static str, value: i32 },
    #[error("{name} must be greater than or equal to {bound}")]
    BelowMin {
        name: &'static str,
        bound: &'static str,
    },
    #[error("{name} must be less than or equal to {bound}")]
    AboveMax {
        name: &'static str,
        bound: &'static str,
    },
    #[error("consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms")]
    SessionNotAboveHeartbeat,
}

/// The values a consumer group runs with: its overrides, else the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveGroupConfig {
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: i32,
}

fn parse(
    overrides: &BTreeMap<String, String>,
    name: &'static str,
) -> Result<Option<i32>, GroupConfigError> {
    let Some(text) = overrides.get(name) else {
        return Ok(None);
    };
    let value: i32 = text
        .trim()
        .parse()
        .map_err(|_| GroupConfigError::NotAnInt {
            name,
            value: text.clone(),
        })?;
    if value < 1 {
        return Err(GroupConfigError::BelowOne { name, value });
    }
    Ok(Some(value))
}

fn bounded(
    value: i64,
    name: &'static str,
    (min, min_name): (i64, &'static str),
    (max, max_name): (i64, &'static str),
) -> Result<(), GroupConfigError> {
    if value < min {
        return Err(GroupConfigError::BelowMin {
            name,
            bound: min_name,
        });
    }
    if value > max {
        return Err(GroupConfigError::AboveMax {
            name,
            bound: max_name,
        });
    }
    Ok(())
}

/// Checks one override on its own: a known key with a positive INT value (`None`: a delete,
/// which only needs a known key). The bounds depend on the broker reading it (`validate`).
pub fn check_entry(name: &str, value: Option<&str>) -> Result<(), GroupConfigError> {
    let Some(&known) = GROUP_CONFIG_NAMES.iter().find(|known| **known == name) else {
        return Err(GroupConfigError::Unknown(name.to_string()));
    };
    if let Some(value) = value {
        let single = BTreeMap::from([(known.to_string(), value.to_string())]);
        parse(&single, known)?;
    }
    Ok(())
}

/// Checks a group's whole override set (after the request's operations) against the
/// broker's bounds, in Kafka's order: names, types, heartbeat bounds, session bounds, then
/// session > heartbeat (a key not overridden counts with the broker's value).
pub fn validate(
    overrides: &BTreeMap<String, String>,
    broker: &GroupConfig,
) -> Result<EffectiveGroupConfig, GroupConfigError> {
    if let Some(unknown) = overrides
        .keys()
        .find(|name| !GROUP_CONFIG_NAMES.contains(&name.as_str()))
    {
        return Err(GroupConfigError::Unknown(unknown.clone()));
    }
    let session = parse(overrides, CONSUMER_SESSION_TIMEOUT_MS)?;
    let heartbeat = parse(overrides, CONSUMER_HEARTBEAT_INTERVAL_MS)?;
    let heartbeat_ms = heartbeat.unwrap_or(broker.consumer_heartbeat_interval_ms);
    let session_ms = session.map_or(broker.consumer_session_timeout_ms, |ms| ms as u64);
    bounded(
        i64::from(heartbeat_ms),
        CONSUMER_HEARTBEAT_INTERVAL_MS,
        (
            i64::from(broker.consumer_heartbeat_interval_ms_min),
            "group.consumer.min.heartbeat.interval.ms",
        ),
        (
            i64::from(broker.consumer_heartbeat_interval_ms_max),
            "group.consumer.max.heartbeat.interval.ms",
        ),
    )?;
    let as_i64 = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
    bounded(
        as_i64(session_ms),
        CONSUMER_SESSION_TIMEOUT_MS,
        (
            as_i64(broker.consumer_session_timeout_ms_min),
            "group.consumer.min.session.timeout.ms",
        ),
        (
            as_i64(broker.consumer_session_timeout_ms_max),
            "group.consumer.max.session.timeout.ms",
        ),
    )?;
    if session_ms <= heartbeat_ms as u64 {
        return Err(GroupConfigError::SessionNotAboveHeartbeat);
    }
    Ok(EffectiveGroupConfig {
        session_timeout_ms: session_ms,
        heartbeat_interval_ms: heartbeat_ms,
    })
}

/// The values a group with `overrides` (`None`: none) runs with. A set the broker config no
/// longer admits (its bounds were narrowed since it was stored) counts as no override.
pub fn effective(
    overrides: Option<&BTreeMap<String, String>>,
    broker: &GroupConfig,
) -> EffectiveGroupConfig {
    let defaults = EffectiveGroupConfig {
        session_timeout_ms: broker.consumer_session_timeout_ms,
        heartbeat_interval_ms: broker.consumer_heartbeat_interval_ms,
    };
    overrides.map_or(defaults, |overrides| {
        validate(overrides, broker).unwrap_or(defaults)
    })
}

/// Kafka's empty-name refusal for a GROUP resource (INVALID_REQUEST).
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Group name must not be empty".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_entry_needs_a_known_key_and_a_positive_int() {
        assert_eq!(
            check_entry(CONSUMER_SESSION_TIMEOUT_MS, Some("50000")),
            Ok(())
        );
        assert_eq!(check_entry(CONSUMER_HEARTBEAT_INTERVAL_MS, None), Ok(()));
        assert_eq!(
            check_entry("consumer.max.size", None),
            Err(GroupConfigError::Unknown("consumer.max.size".into()))
        );
        assert!(matches!(
            check_entry(CONSUMER_HEARTBEAT_INTERVAL_MS, Some("soon")),
            Err(GroupConfigError::NotAnInt { .. })
        ));
        assert!(matches!(
            check_entry(CONSUMER_HEARTBEAT_INTERVAL_MS, Some("0")),
            Err(GroupConfigError::BelowOne { .. })
        ));
    }

    #[test]
    fn overrides_within_the_broker_bounds_are_effective() {
        let broker = GroupConfig::default();
        let overrides = set(&[
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "6000"),
            (CONSUMER_SESSION_TIMEOUT_MS, "50000"),
        ]);
        let expected = EffectiveGroupConfig {
            session_timeout_ms: 50_000,
            heartbeat_interval_ms: 6_000,
        };
        assert_eq!(validate(&overrides, &broker), Ok(expected));
        assert_eq!(effective(Some(&overrides), &broker), expected);
        let only_heartbeat = set(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "15000")]);
        assert_eq!(
            effective(Some(&only_heartbeat), &broker),
            EffectiveGroupConfig {
                session_timeout_ms: broker.consumer_session_timeout_ms,
                heartbeat_interval_ms: 15_000,
            }
        );
        assert_eq!(
            effective(None, &broker).heartbeat_interval_ms,
            broker.consumer_heartbeat_interval_ms
        );
    }

    #[test]
    fn refusals_carry_kafkas_messages() {
        let broker = GroupConfig::default();
        let refused = |pairs: &[(&str, &str)]| {
            validate(&set(pairs), &broker)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            refused(&[("consumer.max.size", "3")]),
            "Unknown group config name: consumer.max.size"
        );
        assert_eq!(
            refused(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "soon")]),
            "Invalid value soon for configuration consumer.heartbeat.interval.ms: \
             Not a number of type INT"
        );
        assert_eq!(
            refused(&[(CONSUMER_SESSION_TIMEOUT_MS, "0")]),
            "Invalid value 0 for configuration consumer.session.timeout.ms: \
             Value must be at least 1"
        );
        assert_eq!(
            refused(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "4999")]),
            "consumer.heartbeat.interval.ms must be greater than or equal to \
             group.consumer.min.heartbeat.interval.ms"
        );
        assert_eq!(
            refused(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "15001")]),
            "consumer.heartbeat.interval.ms must be less than or equal to \
             group.consumer.max.heartbeat.interval.ms"
        );
        assert_eq!(
            refused(&[(CONSUMER_SESSION_TIMEOUT_MS, "44999")]),
            "consumer.session.timeout.ms must be greater than or equal to \
             group.consumer.min.session.timeout.ms"
        );
        assert_eq!(
            refused(&[(CONSUMER_SESSION_TIMEOUT_MS, "60001")]),
            "consumer.session.timeout.ms must be less than or equal to \
             group.consumer.max.session.timeout.ms"
        );
    }

    #[test]
    fn the_session_must_exceed_the_heartbeat_with_broker_values_filling_in() {
        let broker = GroupConfig {
            consumer_session_timeout_ms_min: 1_000,
            consumer_heartbeat_interval_ms_max: 600_000,
            ..GroupConfig::default()
        };
        assert_eq!(
            validate(&set(&[(CONSUMER_SESSION_TIMEOUT_MS, "5000")]), &broker),
            Err(GroupConfigError::SessionNotAboveHeartbeat)
        );
        assert_eq!(
            validate(&set(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "45000")]), &broker),
            Err(GroupConfigError::SessionNotAboveHeartbeat)
        );
        assert!(validate(&set(&[(CONSUMER_SESSION_TIMEOUT_MS, "5001")]), &broker).is_ok());
    }

    #[test]
    fn a_stored_set_the_broker_no_longer_admits_falls_back_to_the_broker_values() {
        let stored = set(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "6000")]);
        let narrowed = GroupConfig {
            consumer_heartbeat_interval_ms_max: 5_000,
            ..GroupConfig::default()
        };
        assert_eq!(
            effective(Some(&stored), &narrowed).heartbeat_interval_ms,
            5_000
        );
        assert!(check_group_name("").is_err());
        assert!(check_group_name("g").is_ok());
    }
}
