//! Dynamic broker configs (Kafka's `DynamicBrokerConfig`, KIP-226): the broker settings an
//! AlterConfigs / IncrementalAlterConfigs on the BROKER resource may change without a
//! restart, stored in `<data_dir>/dynamic_broker_configs.json`. Two entities, as in Kafka:
//! this broker (resource name = its node id) and the cluster-wide default (resource name
//! ""); a per-broker value wins over the default, which wins over the config file.
//!
//! Owns: the set of dynamic keys and how each maps onto `Config`, validation of a change,
//! the file's format, load and atomic save. May import: `crate::config`, `broker_config`,
//! `topic_config` (validation), `catalog` (`write_atomically`). Runs on: the main thread at start-up (load) and the
//! controller shard's blocking pool (save): blocking `std::fs` calls never run on a shard.
//! Invariants: every stored key is dynamic (`is_dynamic`); the stored values, laid over the
//! static config, pass `Config::validate` (checked on every change; a value the static
//! config no longer admits is dropped at start-up with a warning, as Kafka ignores it).

use super::broker_config::broker_settings;
use super::catalog::write_atomically;
use super::topic_config::{ConfigSpec, TOPIC_CONFIGS, TopicConfigError, validate_entry};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const DYNAMIC_CONFIG_FILE: &str = "dynamic_broker_configs.json";

#[derive(Debug, Error)]
pub enum DynamicConfigError {
    /// Kafka's message (a Scala `Set`), INVALID_REQUEST.
    #[error("Cannot update these configs dynamically: Set({})", .0.join(", "))]
    NotDynamic(Vec<String>),
    #[error("Unknown broker config: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Which of the two dynamic entities a BROKER resource names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerEntity {
    /// Resource name = this broker's node id (DYNAMIC_BROKER_CONFIG).
    ThisBroker,
    /// Resource name "" (DYNAMIC_DEFAULT_BROKER_CONFIG).
    ClusterDefault,
}

/// What a broker config name is to an alter request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Dynamic,
    /// A broker config shardlog reports but reads only from the config file.
    StaticOnly,
    Unknown,
}

type Apply = fn(&mut Config, &str) -> Result<(), String>;

fn parse_long(value: &str, min: i64) -> Result<i64, String> {
    let parsed: i64 = value
        .trim()
        .parse()
        .map_err(|_| "Not a number of type LONG".to_string())?;
    if parsed < min {
        return Err(format!("Value must be at least {min}"));
    }
    Ok(parsed)
}

fn parse_unsigned(value: &str) -> Result<u64, String> {
    parse_long(value, 0).map(|v| v as u64)
}

fn parse_double(value: &str) -> Result<u64, String> {
    let parsed: f64 = value
        .trim()
        .parse()
        .map_err(|_| "Not a number of type DOUBLE".to_string())?;
    if !parsed.is_finite() || parsed < 0.0 {
        return Err("Value must be a finite number at least 0".to_string());
    }
    Ok(parsed.min(u64::MAX as f64) as u64)
}

/// The dynamic keys shardlog honours, each with how it lands in `Config`. All of them reach
/// the logs through `LogConfig` (`Shard::log_config_for`), so a change applies to every
/// open log without a restart; topics with their own override keep it.
pub const DYNAMIC_KEYS: &[(&str, Apply)] = &[
    ("message.max.bytes", |c, v| {
        c.storage.batch_bytes_max = parse_unsigned(v)?;
        Ok(())
    }),
    ("log.retention.ms", |c, v| {
        c.topic_defaults.retention_ms = parse_long(v, -1)?;
        Ok(())
    }),
    ("log.retention.bytes", |c, v| {
        c.topic_defaults.retention_bytes = parse_long(v, -1)?;
        Ok(())
    }),
    ("log.segment.bytes", |c, v| {
        c.storage.segment_bytes = parse_unsigned(v)?;
        Ok(())
    }),
    ("log.roll.ms", |c, v| {
        c.storage.segment_ms = parse_unsigned(v)?;
        Ok(())
    }),
    ("log.index.interval.bytes", |c, v| {
        c.storage.index_interval_bytes = parse_unsigned(v)?;
        Ok(())
    }),
    ("log.cleaner.io.max.bytes.per.second", |c, v| {
        c.storage.compaction_io_bytes_per_second = parse_double(v)?;
        Ok(())
    }),
    ("log.cleaner.dedupe.buffer.size", |c, v| {
        c.storage.compaction_map_bytes_max = parse_unsigned(v)?;
        Ok(())
    }),
    ("log.cleaner.backoff.ms", |c, v| {
        c.storage.compaction_check_interval_ms = parse_unsigned(v)?;
        Ok(())
    }),
    ("max.connections.per.ip", |c, v| {
        c.server.connections_per_ip_max = parse_unsigned(v)? as usize;
        Ok(())
    }),
];

/// Sets the broker default of topic config `topic_name`, validated as that topic config.
fn topic_default(config: &mut Config, topic_name: &str, value: &str) -> Result<(), String> {
    validate_entry(topic_name, value).map_err(|error| match error {
        TopicConfigError::InvalidValue { reason, .. } => reason.to_string(),
        other => other.to_string(),
    })?;
    config
        .topic_defaults
        .configs
        .insert(topic_name.to_string(), value.trim().to_string());
    Ok(())
}

/// The topic config whose broker default `name` is (Kafka's `DynamicLogConfig` keys shardlog
/// applies: `log.cleanup.policy`, `compression.type`, ...), unless `DYNAMIC_KEYS` maps `name`
/// onto a `Config` field of its own. The same set `broker_settings` reports.
fn topic_default_spec(name: &str) -> Option<&'static ConfigSpec> {
    TOPIC_CONFIGS
        .iter()
        .find(|spec| spec.applied && spec.broker_name == Some(name))
}

/// Applies dynamic key `name` = `value` to `config`; `None` if `name` is not dynamic.
fn apply_dynamic(config: &mut Config, name: &str, value: &str) -> Option<Result<(), String>> {
    if let Some((_, apply)) = DYNAMIC_KEYS.iter().find(|(key, _)| *key == name) {
        return Some(apply(config, value));
    }
    topic_default_spec(name).map(|spec| topic_default(config, spec.name, value))
}

pub fn is_dynamic(name: &str) -> bool {
    DYNAMIC_KEYS.iter().any(|(key, _)| *key == name) || topic_default_spec(name).is_some()
}

pub fn key_kind(name: &str) -> KeyKind {
    if is_dynamic(name) {
        return KeyKind::Dynamic;
    }
    let reported = name == "shardlog.shards"
        || broker_settings(&Config::default())
            .iter()
            .any(|s| s.name == name);
    if reported {
        KeyKind::StaticOnly
    } else {
        KeyKind::Unknown
    }
}

/// The stored dynamic configs of both entities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBrokerConfigs {
    /// Set on this broker (resource name = node id).
    pub broker: BTreeMap<String, String>,
    /// The cluster-wide default entity (resource name "").
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicBrokerConfigs {
    pub fn entity(&self, entity: BrokerEntity) -> &BTreeMap<String, String> {
        match entity {
            BrokerEntity::ThisBroker => &self.broker,
            BrokerEntity::ClusterDefault => &self.cluster_default,
        }
    }

    /// The effective config: `base` with the cluster defaults, then this broker's values
    /// laid over it. Values were validated when stored (see `with_entity`, `load_valid`).
    pub fn effective(&self, base: &Config) -> Config {
        self.overlay(base).unwrap_or_else(|_| base.clone())
    }

    fn overlay(&self, base: &Config) -> Result<Config, DynamicConfigError> {
        let mut config = base.clone();
        for entries in [&self.cluster_default, &self.broker] {
            for (name, value) in entries {
                let Some(applied) = apply_dynamic(&mut config, name, value) else {
                    return Err(DynamicConfigError::Unknown(name.clone()));
                };
                applied.map_err(|reason| DynamicConfigError::InvalidValue {
                    name: name.clone(),
                    value: value.clone(),
                    reason,
                })?;
            }
        }
        config.validate().map_err(|error| {
            let (name, value) = invalid_entry(self, base).unwrap_or_default();
            DynamicConfigError::InvalidValue {
                name,
                value,
                reason: error.to_string(),
            }
        })?;
        Ok(config)
    }

    /// These configs with `entity`'s set replaced by `configs`, if every key is dynamic and
    /// the result is a valid config over `base`.
    pub fn with_entity(
        &self,
        entity: BrokerEntity,
        configs: BTreeMap<String, String>,
        base: &Config,
    ) -> Result<DynamicBrokerConfigs, DynamicConfigError> {
        let not_dynamic: Vec<String> = configs
            .keys()
            .filter(|name| key_kind(name) == KeyKind::StaticOnly)
            .cloned()
            .collect();
        if !not_dynamic.is_empty() {
            return Err(DynamicConfigError::NotDynamic(not_dynamic));
        }
        if let Some(name) = configs.keys().find(|n| key_kind(n) == KeyKind::Unknown) {
            return Err(DynamicConfigError::Unknown(name.clone()));
        }
        for (name, value) in &configs {
            if let Some(applied) = apply_dynamic(&mut base.clone(), name, value) {
                applied.map_err(|reason| DynamicConfigError::InvalidValue {
                    name: name.clone(),
                    value: value.clone(),
                    reason,
                })?;
            }
        }
        let mut next = self.clone();
        match entity {
            BrokerEntity::ThisBroker => next.broker = configs,
            BrokerEntity::ClusterDefault => next.cluster_default = configs,
        }
        next.overlay(base)?;
        Ok(next)
    }

    /// Reads `<data_dir>/dynamic_broker_configs.json`; empty if there is none.
    pub fn load(data_dir: &Path) -> Result<DynamicBrokerConfigs, DynamicConfigError> {
        let path = data_dir.join(DYNAMIC_CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(DynamicConfigError::Io { path, source }),
        };
        serde_json::from_str(&text).map_err(|e| DynamicConfigError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// `load`, then drops (with a warning) every entry that is not a dynamic key or that
    /// `base` no longer admits, so a changed config file cannot stop start-up.
    pub fn load_valid(data_dir: &Path, base: &Config) -> Result<Self, DynamicConfigError> {
        let mut loaded = Self::load(data_dir)?;
        while let Err(error) = loaded.overlay(base) {
            let Some((name, _)) = invalid_entry(&loaded, base) else {
                tracing::warn!(%error, "dynamic broker configs ignored");
                return Ok(Self::default());
            };
            tracing::warn!(config = %name, %error, "dynamic broker config ignored");
            loaded.broker.remove(&name);
            loaded.cluster_default.remove(&name);
        }
        Ok(loaded)
    }

    /// Atomically replaces the file (temp file, fsync, rename, directory fsync).
    pub fn save(&self, data_dir: &Path) -> Result<(), DynamicConfigError> {
        let path = data_dir.join(DYNAMIC_CONFIG_FILE);
        let text = serde_json::to_vec_pretty(self).map_err(|e| DynamicConfigError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, &text).map_err(|source| DynamicConfigError::Io { path, source })
    }
}

/// The first stored entry whose value alone makes the config over `base` invalid.
fn invalid_entry(configs: &DynamicBrokerConfigs, base: &Config) -> Option<(String, String)> {
    for entries in [&configs.cluster_default, &configs.broker] {
        for (name, value) in entries {
            let mut config = base.clone();
            let applied = apply_dynamic(&mut config, name, value);
            if !matches!(applied, Some(Ok(()))) || config.validate().is_err() {
                return Some((name.clone(), value.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn broker_value_wins_over_default_over_static() {
        let base = Config::default();
        let configs = DynamicBrokerConfigs::default()
            .with_entity(
                BrokerEntity::ClusterDefault,
                map(&[("message.max.bytes", "4096"), ("log.retention.ms", "1000")]),
                &base,
            )
            .unwrap()
            .with_entity(
                BrokerEntity::ThisBroker,
                map(&[("message.max.bytes", "8192")]),
                &base,
            )
            .unwrap();
        let effective = configs.effective(&base);
        assert_eq!(effective.storage.batch_bytes_max, 8192);
        assert_eq!(effective.topic_defaults.retention_ms, 1000);
        assert_eq!(effective.storage.segment_bytes, base.storage.segment_bytes);
    }

    #[test]
    fn static_unknown_and_bad_values_are_refused() {
        let base = Config::default();
        let none = DynamicBrokerConfigs::default();
        let change = |entries| none.with_entity(BrokerEntity::ThisBroker, map(entries), &base);
        let error = change(&[("listeners", "PLAINTEXT://x:1"), ("log.dirs", "/x")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot update these configs dynamically: Set(listeners, log.dirs)"
        );
        assert!(matches!(
            change(&[("no.such.config", "1")]),
            Err(DynamicConfigError::Unknown(_))
        ));
        let error = change(&[("message.max.bytes", "abc")]).unwrap_err();
        assert!(matches!(error, DynamicConfigError::InvalidValue { .. }));
        assert!(error.to_string().contains("message.max.bytes"), "{error}");
        // Out of the static config's range (storage.batch_bytes_max >= 1 KiB).
        assert!(change(&[("message.max.bytes", "10")]).is_err());
        assert!(change(&[("log.retention.ms", "-2")]).is_err());
        assert!(change(&[("max.connections.per.ip", "0")]).is_err());
    }

    #[test]
    fn save_load_roundtrip_and_invalid_entries_dropped() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let base = Config::default();
        assert_eq!(
            DynamicBrokerConfigs::load(dir.path()).unwrap(),
            DynamicBrokerConfigs::default()
        );
        let configs = DynamicBrokerConfigs {
            broker: map(&[("message.max.bytes", "4096")]),
            cluster_default: map(&[("log.segment.bytes", "1048576")]),
        };
        configs.save(dir.path()).unwrap();
        assert_eq!(DynamicBrokerConfigs::load(dir.path()).unwrap(), configs);
        let stale = DynamicBrokerConfigs {
            broker: map(&[("message.max.bytes", "1"), ("log.roll.ms", "5000")]),
            cluster_default: map(&[("listeners", "x")]),
        };
        stale.save(dir.path()).unwrap();
        let loaded = DynamicBrokerConfigs::load_valid(dir.path(), &base).unwrap();
        assert_eq!(loaded.broker, map(&[("log.roll.ms", "5000")]));
        assert!(loaded.cluster_default.is_empty());
        std::fs::write(dir.path().join(DYNAMIC_CONFIG_FILE), b"{").unwrap();
        assert!(matches!(
            DynamicBrokerConfigs::load(dir.path()),
            Err(DynamicConfigError::Corrupt { .. })
        ));
    }

    #[test]
    fn topic_defaults_are_validated_as_their_topic_config() {
        let base = Config::default();
        let configs = DynamicBrokerConfigs::default()
            .with_entity(
                BrokerEntity::ClusterDefault,
                map(&[
                    ("log.cleanup.policy", "compact,delete"),
                    ("log.cleaner.min.cleanable.ratio", "0.2"),
                ]),
                &base,
            )
            .unwrap();
        let effective = configs.effective(&base);
        assert_eq!(
            effective.topic_defaults.configs,
            map(&[
                ("cleanup.policy", "compact,delete"),
                ("min.cleanable.dirty.ratio", "0.2"),
            ])
        );
        assert!(base.topic_defaults.configs.is_empty());
        let none = DynamicBrokerConfigs::default();
        for (name, value) in [
            ("log.cleanup.policy", "shred"),
            ("compression.type", "brotli"),
            ("log.cleaner.delete.retention.ms", "-1"),
            ("log.message.timestamp.type", "Now"),
        ] {
            let error = none
                .with_entity(BrokerEntity::ThisBroker, map(&[(name, value)]), &base)
                .unwrap_err();
            assert!(
                matches!(error, DynamicConfigError::InvalidValue { .. }),
                "{name}={value}: {error}"
            );
        }
    }

    #[test]
    fn every_dynamic_key_is_a_reported_broker_setting() {
        let names: Vec<_> = broker_settings(&Config::default())
            .iter()
            .map(|s| s.name)
            .collect();
        for (key, _) in DYNAMIC_KEYS {
            assert!(names.contains(key), "{key}");
        }
        // The broker defaults of applied topic configs are dynamic too (Kafka's
        // DynamicLogConfig keys); a key that is neither is not.
        for key in [
            "log.cleanup.policy",
            "compression.type",
            "log.cleaner.delete.retention.ms",
            "log.cleaner.min.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
            "log.cleaner.min.cleanable.ratio",
            "log.message.timestamp.type",
        ] {
            assert!(is_dynamic(key) && names.contains(&key), "{key}");
        }
        assert!(!is_dynamic("log.flush.interval.ms"));
        assert!(!is_dynamic("num.io.threads"));
    }
}
