//! Broker-level configs as Kafka names them, each read from the one `Config`: what a
//! DescribeConfigs on the BROKER resource reports. Only keys the broker acts on are listed
//! (a key it ignores would tell tools something false); values use Kafka's forms
//! (`listeners` = `PLAINTEXT://host:port,SSL://host:port`).
//!
//! May import: `crate::config`, `topic_config`. No I/O.
//! Invariant: names are unique (checked by a test).

use super::topic_config::TOPIC_CONFIGS;
use crate::config::{Config, ServerConfig};

/// Kafka's ConfigType ids (DescribeConfigs v3+).
pub const TYPE_BOOLEAN: i8 = 1;
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;
pub const TYPE_SHORT: i8 = 4;
pub const TYPE_LONG: i8 = 5;
pub const TYPE_DOUBLE: i8 = 6;

/// One broker config: its value under `config` and under the built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSetting {
    pub name: &'static str,
    pub value: String,
    /// The value with shardlog's built-in defaults; a setting whose value differs was set
    /// in the config file, the environment or a flag (Kafka's STATIC_BROKER_CONFIG).
    pub default: String,
    pub config_type: i8,
    pub doc: &'static str,
}

impl BrokerSetting {
    pub fn is_static(&self) -> bool {
        self.value != self.default
    }
}

type Read = fn(&Config) -> String;

/// (Kafka name, type, value reader, doc) for the broker settings `Config` holds directly.
const SETTINGS: &[(&str, i8, Read, &str)] = &[
    (
        "node.id",
        TYPE_INT,
        |c| c.server.node_id.to_string(),
        "this broker's id",
    ),
    (
        "broker.id",
        TYPE_INT,
        |c| c.server.node_id.to_string(),
        "this broker's id (node.id)",
    ),
    (
        "listeners",
        TYPE_STRING,
        |c| listeners(&c.server),
        "the Kafka listeners",
    ),
    (
        "advertised.listeners",
        TYPE_STRING,
        |c| advertised_listeners(&c.server),
        "the address Metadata gives clients, per listener",
    ),
    (
        "listener.security.protocol.map",
        TYPE_STRING,
        |c| listener_protocols(&c.server),
        "each listener's security protocol",
    ),
    (
        "log.dirs",
        TYPE_STRING,
        |c| c.storage.data_dir.display().to_string(),
        "data directory",
    ),
    (
        "num.partitions",
        TYPE_INT,
        |c| c.topic_defaults.num_partitions.to_string(),
        "partitions of auto-created topics and of CreateTopics with -1",
    ),
    (
        "auto.create.topics.enable",
        TYPE_BOOLEAN,
        |c| c.topic_defaults.auto_create_topics.to_string(),
        "create a topic on first Metadata/Produce for it",
    ),
    (
        "default.replication.factor",
        TYPE_INT,
        |_| "1".to_string(),
        "one replica per partition: CreateTopics with -1 gets 1, others are refused",
    ),
    (
        "min.insync.replicas",
        TYPE_INT,
        |_| "1".to_string(),
        "acks=all waits for the one replica's sync",
    ),
    (
        "message.max.bytes",
        TYPE_INT,
        |c| c.storage.batch_bytes_max.to_string(),
        "largest record batch accepted",
    ),
    (
        "log.retention.ms",
        TYPE_LONG,
        |c| c.topic_defaults.retention_ms.to_string(),
        "default retention.ms",
    ),
    (
        "log.retention.bytes",
        TYPE_LONG,
        |c| c.topic_defaults.retention_bytes.to_string(),
        "default retention.bytes",
    ),
    (
        "log.segment.bytes",
        TYPE_INT,
        |c| c.storage.segment_bytes.to_string(),
        "default segment.bytes",
    ),
    (
        "log.roll.ms",
        TYPE_LONG,
        |c| c.storage.segment_ms.to_string(),
        "default segment.ms",
    ),
    (
        "log.index.interval.bytes",
        TYPE_INT,
        |c| c.storage.index_interval_bytes.to_string(),
        "default index.interval.bytes",
    ),
    (
        "log.retention.check.interval.ms",
        TYPE_LONG,
        |c| c.storage.retention_check_interval_ms.to_string(),
        "how often retention runs",
    ),
    (
        "log.cleaner.backoff.ms",
        TYPE_LONG,
        |c| c.storage.compaction_check_interval_ms.to_string(),
        "how often compaction looks for work",
    ),
    (
        "log.cleaner.io.max.bytes.per.second",
        TYPE_DOUBLE,
        |c| format!("{:.1}", c.storage.compaction_io_bytes_per_second as f64),
        "compaction read+write bytes per second per shard",
    ),
    (
        "log.cleaner.dedupe.buffer.size",
        TYPE_LONG,
        |c| c.storage.compaction_map_bytes_max.to_string(),
        "key map memory of one compaction pass",
    ),
    (
        "log.flush.offset.checkpoint.interval.ms",
        TYPE_INT,
        |c| c.storage.recovery_point_checkpoint_interval_ms.to_string(),
        "recovery point checkpoint interval",
    ),
    (
        "socket.request.max.bytes",
        TYPE_INT,
        |c| c.server.request_bytes_max.to_string(),
        "largest request",
    ),
    (
        "max.connections.per.ip",
        TYPE_INT,
        |c| c.server.connections_per_ip_max.to_string(),
        "connections from one client address",
    ),
    (
        "connections.max.idle.ms",
        TYPE_LONG,
        |c| c.server.connections_max_idle_ms.to_string(),
        "idle connections are closed after this",
    ),
    (
        "offsets.topic.num.partitions",
        TYPE_INT,
        |c| c.group.offsets_topic_partitions.to_string(),
        "partitions of __consumer_offsets",
    ),
    (
        "offsets.commit.timeout.ms",
        TYPE_INT,
        |c| c.group.offsets_commit_timeout_ms.to_string(),
        "group coordinator writes wait this long for the ISR (cluster mode)",
    ),
    (
        "offsets.topic.replication.factor",
        TYPE_SHORT,
        |c| c.group.offsets_topic_replication_factor.to_string(),
        "replicas of each __consumer_offsets partition (cluster mode)",
    ),
    (
        "offsets.retention.minutes",
        TYPE_INT,
        |c| c.group.offsets_retention_minutes.to_string(),
        "committed offset retention of empty groups",
    ),
    (
        "offset.metadata.max.bytes",
        TYPE_INT,
        |c| c.group.offset_metadata_bytes_max.to_string(),
        "largest commit metadata",
    ),
    (
        "group.min.session.timeout.ms",
        TYPE_INT,
        |c| c.group.session_timeout_ms_min.to_string(),
        "smallest session timeout",
    ),
    (
        "group.max.session.timeout.ms",
        TYPE_INT,
        |c| c.group.session_timeout_ms_max.to_string(),
        "largest session timeout",
    ),
    (
        "group.initial.rebalance.delay.ms",
        TYPE_INT,
        |c| c.group.initial_rebalance_delay_ms.to_string(),
        "first rebalance delay of an empty group",
    ),
    (
        "group.max.size",
        TYPE_INT,
        |c| c.group.members_max.to_string(),
        "members per group",
    ),
    (
        "group.consumer.session.timeout.ms",
        TYPE_INT,
        |c| c.group.consumer_session_timeout_ms.to_string(),
        "consumer-protocol member session timeout",
    ),
    (
        "group.consumer.min.session.timeout.ms",
        TYPE_INT,
        |c| c.group.consumer_session_timeout_ms_min.to_string(),
        "smallest consumer-protocol session timeout",
    ),
    (
        "group.consumer.max.session.timeout.ms",
        TYPE_INT,
        |c| c.group.consumer_session_timeout_ms_max.to_string(),
        "largest consumer-protocol session timeout",
    ),
    (
        "group.consumer.heartbeat.interval.ms",
        TYPE_INT,
        |c| c.group.consumer_heartbeat_interval_ms.to_string(),
        "consumer-protocol heartbeat interval",
    ),
    (
        "group.consumer.min.heartbeat.interval.ms",
        TYPE_INT,
        |c| c.group.consumer_heartbeat_interval_ms_min.to_string(),
        "smallest consumer-protocol heartbeat interval",
    ),
    (
        "group.consumer.max.heartbeat.interval.ms",
        TYPE_INT,
        |c| c.group.consumer_heartbeat_interval_ms_max.to_string(),
        "largest consumer-protocol heartbeat interval",
    ),
    (
        "transaction.state.log.num.partitions",
        TYPE_INT,
        |c| c.transaction.state_topic_partitions.to_string(),
        "partitions of __transaction_state",
    ),
    (
        "transaction.max.timeout.ms",
        TYPE_INT,
        |c| c.transaction.timeout_ms_max.to_string(),
        "longest transaction timeout",
    ),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        TYPE_INT,
        |c| c.transaction.timeout_check_interval_ms.to_string(),
        "how often open transactions are checked for timeouts",
    ),
    (
        "transaction.state.log.replication.factor",
        TYPE_SHORT,
        |c| c.transaction.state_topic_replication_factor.to_string(),
        "replicas of each __transaction_state partition (cluster mode)",
    ),
];

/// `listeners` in Kafka's form: `NAME://HOST:PORT,...` as bound.
pub fn listeners(server: &ServerConfig) -> String {
    server
        .listeners()
        .unwrap_or_default()
        .iter()
        .map(|listener| format!("{}://{}", listener.name, listener.bind))
        .collect::<Vec<_>>()
        .join(",")
}

/// `advertised.listeners` in Kafka's form: the `NAME://HOST:PORT,...` Metadata tells clients.
pub fn advertised_listeners(server: &ServerConfig) -> String {
    server
        .listeners()
        .unwrap_or_default()
        .iter()
        .map(|listener| {
            let (host, port) = (&listener.advertised_host, listener.advertised_port);
            if host.contains(':') {
                format!("{}://[{host}]:{port}", listener.name)
            } else {
                format!("{}://{host}:{port}", listener.name)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `listener.security.protocol.map` in Kafka's form: `NAME:PROTOCOL,...` of every listener.
pub fn listener_protocols(server: &ServerConfig) -> String {
    server
        .listeners()
        .unwrap_or_default()
        .iter()
        .map(|listener| format!("{}:{}", listener.name, listener.protocol.name()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Host and port clients that came in on the listener `listener_name` should connect to:
/// its advertised address, else its listen address with a wildcard host as `localhost`.
/// An unknown name (never the case for a connection's own listener) gets the first
/// listener's.
pub fn advertised_address(server: &ServerConfig, listener_name: &str) -> (String, i32) {
    let listeners = server.listeners().unwrap_or_default();
    listeners
        .iter()
        .find(|listener| listener.name == listener_name)
        .or(listeners.first())
        .map(|listener| {
            (
                listener.advertised_host.clone(),
                i32::from(listener.advertised_port),
            )
        })
        .unwrap_or_else(|| ("localhost".to_string(), 9092))
}

/// Every broker config the broker honours: the settings above, then the broker defaults of
/// the topic configs shardlog applies (`log.cleanup.policy`, `compression.type`, ...).
pub fn broker_settings(config: &Config) -> Vec<BrokerSetting> {
    let defaults = Config::default();
    let mut settings: Vec<BrokerSetting> = SETTINGS
        .iter()
        .map(|(name, config_type, read, doc)| BrokerSetting {
            name,
            value: read(config),
            default: read(&defaults),
            config_type: *config_type,
            doc,
        })
        .collect();
    for spec in TOPIC_CONFIGS.iter().filter(|spec| spec.applied) {
        let Some(name) = spec.broker_name else {
            continue;
        };
        if settings.iter().any(|s| s.name == name) {
            continue;
        }
        let value = |config: &Config| {
            config
                .topic_defaults
                .configs
                .get(spec.name)
                .cloned()
                .unwrap_or_else(|| (spec.default)(config))
        };
        settings.push(BrokerSetting {
            name,
            value: value(config),
            default: value(&defaults),
            config_type: spec.kind.kafka_type(),
            doc: spec.doc,
        });
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn find<'a>(settings: &'a [BrokerSetting], name: &str) -> &'a BrokerSetting {
        settings.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn names_are_unique() {
        let settings = broker_settings(&Config::default());
        let names: BTreeSet<_> = settings.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), settings.len());
    }

    #[test]
    fn defaults_are_default_sourced_and_set_values_static() {
        let mut config = Config::default();
        config.storage.batch_bytes_max = 2_000_000;
        config.server.listen = "0.0.0.0:19092".to_string();
        let settings = broker_settings(&config);
        let max = find(&settings, "message.max.bytes");
        assert_eq!((max.value.as_str(), max.is_static()), ("2000000", true));
        let partitions = find(&settings, "num.partitions");
        assert_eq!(
            (partitions.value.as_str(), partitions.is_static()),
            ("1", false)
        );
        assert_eq!(
            find(&settings, "listeners").value,
            "PLAINTEXT://0.0.0.0:19092"
        );
        assert_eq!(
            find(&settings, "advertised.listeners").value,
            "PLAINTEXT://localhost:19092"
        );
        assert_eq!(find(&settings, "log.cleanup.policy").value, "delete");
    }

    #[test]
    fn ignored_topic_configs_have_no_broker_key() {
        let settings = broker_settings(&Config::default());
        for ignored in [
            "log.flush.interval.ms",
            "log.preallocate",
            "log.roll.jitter.ms",
        ] {
            assert!(settings.iter().all(|s| s.name != ignored), "{ignored}");
        }
    }
}
