//! The active controller's decisions, as pure functions: `(image, request, now_ms)` → the
//! records to append to the metadata log, or a typed error that maps to Kafka's code.
//!
//! Owns: the settings and error type of every controller decision, broker registration and
//! fencing, which partitions a fencing or unfencing touches (the per-partition election is
//! `partition_changes`, KIP-966), each topic's election policy (`min.insync.replicas`,
//! unclean election), config changes, producer-id blocks. ElectLeaders and auto leader
//! rebalance are `leader_elections`, the AlterPartition decision is `isr_changes`,
//! CreateTopics, DeleteTopics, CreatePartitions and placement are `topic_changes`; those
//! import this module, not the reverse.
//! May import: `super::{records, image, partition_changes}`, `crate::metadata` (config
//! validation), `crate::model::ErrorCode`, `crate::config` (settings). No I/O, no clock reads.
//! Invariants: every record list a decision returns applies cleanly, in order, to the image it
//! was decided on; epochs in it only grow; producer-id blocks never overlap.
//! Broker heartbeat times are not metadata: `BrokerSessions` keeps them in the controller's
//! memory (as Kafka's `BrokerHeartbeatManager` does) and is rebuilt on controller failover.

use super::image::{MetadataImage, TopicImage};
use super::partition_changes::{Departure, change_record, elect_returning, without_all};
use super::records::{
    BrokerFencingRecord, ConfigChangeRecord, ConfigResource, Listener, MetadataRecord, NodeId,
    ProducerIdsBlockRecord, RegisterBrokerRecord, Uuid,
};
use crate::config::ClusterConfig;
use crate::metadata::group_config::check_entry;
use crate::metadata::topic_config::{TOPIC_CONFIGS, find_spec, validate_entry};
use crate::model::ErrorCode;
use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

/// Knobs of the controller's decisions, from the `[cluster]` config section
/// (`from_config`); the defaults equal the config's.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// A broker that has not heartbeated for this long is fenced (Kafka
    /// `broker.session.timeout.ms`). Default 9000.
    pub broker_session_timeout_ms: i64,
    /// Replication factor of CreateTopics with -1 (Kafka `default.replication.factor`). Default 1.
    pub default_replication_factor: i16,
    /// Partitions of CreateTopics with -1 (Kafka `num.partitions`). Default 1.
    pub default_partitions: i32,
    /// Largest partition count of a topic. Default 10000.
    pub partitions_max: i32,
    /// Producer ids per block handed to a broker. Default 1000.
    pub producer_id_block_size: i64,
    /// Kafka `min.insync.replicas` for topics that do not set it (nor the cluster-wide dynamic
    /// broker default): below this ISR size, replicas leaving the ISR stay eligible leaders
    /// (KIP-966 ELR). Default 1; not in `[cluster]` yet, so `from_config` keeps it.
    pub min_insync_replicas: usize,
    /// Kafka `unclean.leader.election.enable` for topics that do not set it (nor the
    /// cluster-wide dynamic broker default). Default false; not in `[cluster]` yet.
    pub unclean_leader_election: bool,
    /// Kafka `auto.leader.rebalance.enable`: the imbalance check moves leadership back to
    /// preferred replicas (`rebalance_leaders`). Default true.
    pub auto_leader_rebalance: bool,
    /// Interval of the imbalance check, ms (Kafka `leader.imbalance.check.interval.seconds`).
    /// Default 300000.
    pub leader_imbalance_check_interval_ms: i64,
    /// Kafka `leader.imbalance.per.broker.percentage`. Default 10.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl ControllerSettings {
    /// The settings of the `[cluster]` config section (validated by `Config::validate`).
    pub fn from_config(config: &ClusterConfig) -> Self {
        ControllerSettings {
            broker_session_timeout_ms: config.broker_session_timeout_ms,
            default_replication_factor: config.default_replication_factor,
            default_partitions: config.default_partitions,
            partitions_max: config.partitions_max,
            producer_id_block_size: config.producer_id_block_size,
            auto_leader_rebalance: config.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_ms: i64::try_from(
                config.leader_imbalance_check_interval_ms,
            )
            .unwrap_or(i64::MAX),
            leader_imbalance_per_broker_percentage: config.leader_imbalance_per_broker_percentage,
            ..ControllerSettings::default()
        }
    }
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            broker_session_timeout_ms: 9_000,
            default_replication_factor: 1,
            default_partitions: 1,
            partitions_max: 10_000,
            producer_id_block_size: 1_000,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ControllerError {
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(String),
    /// An AlterPartition refused by `partition_changes::alter_partition`, with Kafka's code.
    #[error("AlterPartition refused: {0:?}")]
    AlterPartitionRefused(ErrorCode),
    #[error("broker {node_id} is already registered by another live incarnation")]
    DuplicateBrokerRegistration { node_id: NodeId },
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(NodeId),
    #[error("broker {node_id}: epoch {requested} is not the registered epoch {registered}")]
    StaleBrokerEpoch {
        node_id: NodeId,
        registered: i64,
        requested: i64,
    },
    #[error("the cluster id of the request does not match this cluster's")]
    InconsistentClusterId,
    #[error("producer ids are exhausted")]
    ProducerIdsExhausted,
}

impl ControllerError {
    /// The Kafka error code for this error (one mapping, used by every handler).
    pub fn error_code(&self) -> i16 {
        match self {
            ControllerError::InvalidReplicationFactor(_) => {
                ErrorCode::InvalidReplicationFactor.code()
            }
            ControllerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions.code(),
            ControllerError::InvalidReplicaAssignment(_) => {
                ErrorCode::InvalidReplicaAssignment.code()
            }
            ControllerError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists.code(),
            ControllerError::InvalidTopic(_) => ErrorCode::InvalidTopicException.code(),
            ControllerError::InvalidConfig(_) => ErrorCode::InvalidConfig.code(),
            ControllerError::InvalidRequest(_) => ErrorCode::InvalidRequest.code(),
            ControllerError::UnknownTopicOrPartition(_) => {
                ErrorCode::UnknownTopicOrPartition.code()
            }
            ControllerError::UnknownTopicId(_) => ErrorCode::UnknownTopicId.code(),
            ControllerError::AlterPartitionRefused(code) => code.code(),
            ControllerError::DuplicateBrokerRegistration { .. } => {
                ErrorCode::DuplicateBrokerRegistration.code()
            }
            ControllerError::BrokerIdNotRegistered(_) => ErrorCode::BrokerIdNotRegistered.code(),
            ControllerError::StaleBrokerEpoch { .. } => ErrorCode::StaleBrokerEpoch.code(),
            ControllerError::InconsistentClusterId => ErrorCode::InconsistentClusterId.code(),
            ControllerError::ProducerIdsExhausted => ErrorCode::UnknownServerError.code(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Broker sessions, registration, heartbeat, fencing
// ---------------------------------------------------------------------------------------

/// Last heartbeat time per broker, in the active controller's memory only.
#[derive(Debug, Clone, Default)]
pub struct BrokerSessions {
    last_heartbeat_ms: HashMap<NodeId, i64>,
}

impl BrokerSessions {
    /// A new active controller gives every registered broker a fresh session (Kafka does the
    /// same on failover), so nobody is fenced for the old controller's silence.
    pub fn activate(image: &MetadataImage, now_ms: i64) -> BrokerSessions {
        BrokerSessions {
            last_heartbeat_ms: image.brokers().map(|b| (b.node_id, now_ms)).collect(),
        }
    }

    /// Records a heartbeat (or a registration) of `node_id`.
    pub fn touch(&mut self, node_id: NodeId, now_ms: i64) {
        self.last_heartbeat_ms.insert(node_id, now_ms);
    }

    pub fn is_live(&self, node_id: NodeId, now_ms: i64, timeout_ms: i64) -> bool {
        self.last_heartbeat_ms
            .get(&node_id)
            .is_some_and(|last| now_ms.saturating_sub(*last) <= timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationRequest {
    pub cluster_id: Uuid,
    pub node_id: NodeId,
    pub incarnation_id: Uuid,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// The broker epoch the node's previous process had when it shut down cleanly (Kafka's
    /// `PreviousBrokerEpoch`, KIP-966), `None` if it did not (a crash, or a first start).
    pub previous_broker_epoch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationDecision {
    /// The epoch the broker must send with every heartbeat.
    pub broker_epoch: i64,
    pub records: Vec<MetadataRecord>,
}

/// RegisterBroker. A new incarnation gets a new epoch (above every epoch registered so far)
/// and starts fenced; its partitions lose it as leader and ISR member. Its departure is
/// clean only if the previous process shut down cleanly with the epoch registered now (the
/// request's `previous_broker_epoch`, KIP-966); otherwise it may have lost records it had
/// acknowledged to its leader, so it leaves the ELR too (`Departure::Unclean`). A different
/// incarnation claiming a node id whose session is still live is refused. A retry of the
/// same registration is a no-op.
pub fn register_broker(
    image: &MetadataImage,
    sessions: &BrokerSessions,
    settings: &ControllerSettings,
    request: &BrokerRegistrationRequest,
    now_ms: i64,
) -> Result<BrokerRegistrationDecision, ControllerError> {
    if image.cluster_id() != Some(request.cluster_id) {
        return Err(ControllerError::InconsistentClusterId);
    }
    if request.node_id < 0 {
        return Err(ControllerError::InvalidRequest("negative node id".into()));
    }
    let existing = image.broker(request.node_id);
    if let Some(existing) = existing {
        let same_incarnation = existing.incarnation_id == request.incarnation_id;
        if same_incarnation
            && existing.listeners == request.listeners
            && existing.rack == request.rack
        {
            return Ok(BrokerRegistrationDecision {
                broker_epoch: existing.broker_epoch,
                records: Vec::new(),
            });
        }
        let live = sessions.is_live(request.node_id, now_ms, settings.broker_session_timeout_ms);
        if !same_incarnation && live && !existing.fenced {
            return Err(ControllerError::DuplicateBrokerRegistration {
                node_id: request.node_id,
            });
        }
    }
    let broker_epoch = image.broker_epoch_highest() + 1;
    let mut records = vec![MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        node_id: request.node_id,
        incarnation_id: request.incarnation_id,
        broker_epoch,
        listeners: request.listeners.clone(),
        rack: request.rack.clone(),
        fenced: true,
    })];
    if let Some(existing) = existing {
        let departure = if request.previous_broker_epoch == Some(existing.broker_epoch) {
            Departure::Clean
        } else {
            Departure::Unclean
        };
        records.extend(departures(image, settings, &[request.node_id], departure));
    }
    Ok(BrokerRegistrationDecision {
        broker_epoch,
        records,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHeartbeatRequest {
    pub node_id: NodeId,
    pub broker_epoch: i64,
    /// The broker has applied the metadata log up to its registration (Kafka: caught up).
    pub caught_up: bool,
    /// The broker asks to stay fenced.
    pub want_fence: bool,
}

/// BrokerHeartbeat: a caught-up fenced broker that does not ask to stay fenced is unfenced,
/// and leads offline partitions whose ISR (or, ISR empty, ELR) names it; an unfenced broker
/// asking to be fenced (controlled shutdown) leaves its partitions cleanly. The caller
/// touches the broker's session when this returns `Ok`.
pub fn broker_heartbeat(
    image: &MetadataImage,
    settings: &ControllerSettings,
    request: &BrokerHeartbeatRequest,
    _now_ms: i64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let broker = image
        .broker(request.node_id)
        .ok_or(ControllerError::BrokerIdNotRegistered(request.node_id))?;
    if broker.broker_epoch != request.broker_epoch {
        return Err(ControllerError::StaleBrokerEpoch {
            node_id: request.node_id,
            registered: broker.broker_epoch,
            requested: request.broker_epoch,
        });
    }
    let fencing = BrokerFencingRecord {
        node_id: request.node_id,
        broker_epoch: request.broker_epoch,
    };
    if broker.fenced && request.caught_up && !request.want_fence {
        let mut records = vec![MetadataRecord::UnfenceBroker(fencing)];
        records.extend(returning(image, settings, request.node_id));
        return Ok(records);
    }
    if !broker.fenced && request.want_fence {
        let mut records = vec![MetadataRecord::FenceBroker(fencing)];
        records.extend(departures(
            image,
            settings,
            &[request.node_id],
            Departure::Clean,
        ));
        return Ok(records);
    }
    Ok(Vec::new())
}

/// Session timeouts: every unfenced broker whose session expired is fenced and leaves the ISR
/// and leadership of its partitions. Called on the controller's tick.
pub fn fence_expired_brokers(
    image: &MetadataImage,
    sessions: &BrokerSessions,
    settings: &ControllerSettings,
    now_ms: i64,
) -> Vec<MetadataRecord> {
    let expired: Vec<NodeId> = image
        .unfenced_brokers()
        .filter(|b| !sessions.is_live(b.node_id, now_ms, settings.broker_session_timeout_ms))
        .map(|b| b.node_id)
        .collect();
    let mut fenced = Vec::new();
    let mut records = Vec::new();
    for node_id in expired {
        let Some(broker) = image.broker(node_id) else {
            continue;
        };
        records.push(MetadataRecord::FenceBroker(BrokerFencingRecord {
            node_id,
            broker_epoch: broker.broker_epoch,
        }));
        fenced.push(node_id);
    }
    records.extend(departures(image, settings, &fenced, Departure::Clean));
    records
}

/// `min.insync.replicas` and `unclean.leader.election.enable` of one topic: its own config,
/// else the cluster-wide dynamic broker default, else the settings.
pub(super) struct ElectionPolicy {
    pub(super) min_insync_replicas: usize,
    pub(super) unclean_allowed: bool,
}

impl ElectionPolicy {
    pub(super) fn of(
        image: &MetadataImage,
        topic: &TopicImage,
        settings: &ControllerSettings,
    ) -> Self {
        let defaults = image.broker_configs(&ConfigResource::BrokerDefault);
        let lookup = |name: &str| {
            topic
                .configs
                .get(name)
                .or_else(|| defaults.and_then(|configs| configs.get(name)))
                .map(|value| value.trim())
        };
        let min_insync_replicas = lookup("min.insync.replicas")
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(settings.min_insync_replicas);
        let unclean_allowed = match lookup("unclean.leader.election.enable") {
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if value.eq_ignore_ascii_case("false") => false,
            _ => settings.unclean_leader_election,
        };
        ElectionPolicy {
            min_insync_replicas,
            unclean_allowed,
        }
    }
}

/// Partition changes for the `gone` brokers leaving every ISR (and ELR, if unclean) they are
/// in, with one election per partition that lost its leader (`partition_changes::without_all`).
/// A broker is usable as leader if it is registered, unfenced and not gone.
fn departures(
    image: &MetadataImage,
    settings: &ControllerSettings,
    gone: &[NodeId],
    departure: Departure,
) -> Vec<MetadataRecord> {
    let usable = |node: NodeId| image.broker(node).is_some_and(|broker| !broker.fenced);
    let mut records = Vec::new();
    for topic in image.topics() {
        let policy = ElectionPolicy::of(image, topic, settings);
        for (index, state) in topic.partitions.iter().enumerate() {
            let next = without_all(
                state,
                gone,
                departure,
                policy.min_insync_replicas,
                &usable,
                policy.unclean_allowed,
            );
            if let Some(next) = next {
                records.push(change_record(topic.id, index as i32, state, &next));
            }
        }
    }
    records
}

/// Partition changes for `node_id` being unfenced: its offline partitions elect a leader
/// (`partition_changes::elect_returning`), counting it usable already.
fn returning(
    image: &MetadataImage,
    settings: &ControllerSettings,
    node_id: NodeId,
) -> Vec<MetadataRecord> {
    let usable =
        |node: NodeId| node == node_id || image.broker(node).is_some_and(|broker| !broker.fenced);
    let mut records = Vec::new();
    for topic in image.topics() {
        let policy = ElectionPolicy::of(image, topic, settings);
        for (index, state) in topic.partitions.iter().enumerate() {
            if !state.replicas.contains(&node_id) {
                continue;
            }
            if let Some(next) = elect_returning(state, &usable, policy.unclean_allowed) {
                records.push(change_record(topic.id, index as i32, state, &next));
            }
        }
    }
    records
}

// ---------------------------------------------------------------------------------------
// Producer ids
// ---------------------------------------------------------------------------------------

/// AllocateProducerIds: the next block after every block ever handed out. The image keeps the
/// last block in snapshots, so ids are never reused across snapshot and replay.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    settings: &ControllerSettings,
    node_id: NodeId,
    broker_epoch: i64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let broker = image
        .broker(node_id)
        .ok_or(ControllerError::BrokerIdNotRegistered(node_id))?;
    if broker.broker_epoch != broker_epoch {
        return Err(ControllerError::StaleBrokerEpoch {
            node_id,
            registered: broker.broker_epoch,
            requested: broker_epoch,
        });
    }
    let first_producer_id = image.next_producer_id();
    let size = settings.producer_id_block_size.max(1);
    if first_producer_id.checked_add(size).is_none() {
        return Err(ControllerError::ProducerIdsExhausted);
    }
    Ok(vec![MetadataRecord::ProducerIdsBlock(
        ProducerIdsBlockRecord {
            node_id,
            broker_epoch,
            first_producer_id,
            size,
        },
    )])
}

// ---------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------

/// One entry of an IncrementalAlterConfigs request: set (`value` present) or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAlteration {
    pub name: String,
    pub value: Option<String>,
}

/// IncrementalAlterConfigs (SET and DELETE) for one resource. Topic configs are checked
/// against the topic-config table; broker configs may set the broker-level synonym of a topic
/// config (`log.retention.ms`, ...) with the same value rules; group configs need a known key
/// and a positive INT (`metadata::group_config`). Anything else is INVALID_CONFIG.
pub fn alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    alterations: &[ConfigAlteration],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match resource {
        ConfigResource::Topic(name) => {
            if image.topic_by_name(name).is_none() {
                return Err(ControllerError::UnknownTopicOrPartition(name.clone()));
            }
        }
        ConfigResource::Broker(node_id) => {
            if image.broker(*node_id).is_none() {
                return Err(ControllerError::BrokerIdNotRegistered(*node_id));
            }
        }
        ConfigResource::BrokerDefault => {}
        ConfigResource::Group(group) => {
            if group.is_empty() {
                return Err(ControllerError::InvalidRequest(
                    "Group name must not be empty".to_string(),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for alteration in alterations {
        if !seen.insert(alteration.name.as_str()) {
            return Err(ControllerError::InvalidRequest(format!(
                "config `{}` is altered twice",
                alteration.name
            )));
        }
        if matches!(resource, ConfigResource::Group(_)) {
            // Keys and types only: the bounds are the coordinator's broker config, checked
            // by the broker that forwarded the change (and again where a group reads them).
            check_entry(&alteration.name, alteration.value.as_deref())
                .map_err(|error| ControllerError::InvalidConfig(error.to_string()))?;
            continue;
        }
        let topic_name = match resource {
            ConfigResource::Topic(_) => Some(alteration.name.as_str()),
            _ => TOPIC_CONFIGS
                .iter()
                .find(|spec| spec.broker_name == Some(alteration.name.as_str()))
                .map(|spec| spec.name),
        };
        let Some(topic_name) = topic_name else {
            return Err(ControllerError::InvalidConfig(format!(
                "unknown broker config `{}`",
                alteration.name
            )));
        };
        let checked = alteration.value.as_deref().map_or_else(
            || find_spec(topic_name).map(|_| ()).ok_or(()),
            |value| validate_entry(topic_name, value).map_err(|_| ()),
        );
        if checked.is_err() {
            return Err(ControllerError::InvalidConfig(format!(
                "invalid config `{}`",
                alteration.name
            )));
        }
    }
    Ok(alterations
        .iter()
        .map(|alteration| {
            MetadataRecord::ConfigChange(ConfigChangeRecord {
                resource: resource.clone(),
                name: alteration.name.clone(),
                value: alteration.value.clone(),
            })
        })
        .collect())
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
