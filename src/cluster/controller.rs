//! The active controller's decisions, as pure functions: `(image, request, now_ms)` → the
//! records to append to the metadata log, or a typed error that maps to Kafka's code.
//!
//! Owns: placement, broker registration and fencing, which partitions a fencing or unfencing
//! touches (the per-partition election is `partition_changes`, KIP-966), each topic's
//! election policy (`min.insync.replicas`, unclean election), producer-id blocks;
//! ElectLeaders and auto leader rebalance are `leader_elections` (re-exported here), the
//! AlterPartition decision is `isr_changes` (which imports this module, not the reverse).
//! May import: `super::{records, image, partition_changes, leader_elections}`,
//! `crate::metadata` (name and config validation), `crate::model::ErrorCode`, `crate::config`
//! (settings). No I/O, no clock reads.
//! Invariants: every record list a decision returns applies cleanly, in order, to the image it
//! was decided on; epochs in it only grow; producer-id blocks never overlap.
//! Broker heartbeat times are not metadata: `BrokerSessions` keeps them in the controller's
//! memory (as Kafka's `BrokerHeartbeatManager` does) and is rebuilt on controller failover.

use super::image::{MetadataImage, TopicImage};
pub use super::leader_elections::{
    ElectLeadersDecision, ElectionResult, ElectionType, elect_leaders, rebalance_leaders,
};
use super::partition_changes::{Departure, change_record, elect_returning, without_all};
use super::records::{
    BrokerFencingRecord, ConfigChangeRecord, ConfigResource, Listener, MetadataRecord, NodeId,
    PartitionRecord, ProducerIdsBlockRecord, RegisterBrokerRecord, TopicRecord, Uuid,
};
use crate::config::ClusterConfig;
use crate::metadata::topic_config::{TOPIC_CONFIGS, find_spec, validate_all, validate_entry};
use crate::metadata::{TopicId, validate_topic_name};
use crate::model::ErrorCode;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationDecision {
    /// The epoch the broker must send with every heartbeat.
    pub broker_epoch: i64,
    pub records: Vec<MetadataRecord>,
}

/// RegisterBroker. A new incarnation gets a new epoch (above every epoch registered so far)
/// and starts fenced; its partitions lose it as leader and ISR member as if it had been fenced
/// (a `Departure::Clean`: the registration does not say whether the old process shut down
/// cleanly, see docs/cluster.md). A different incarnation claiming a
/// node id whose session is still live is refused. A retry of the same registration is a no-op.
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
    if existing.is_some() {
        records.extend(departures(
            image,
            settings,
            &[request.node_id],
            Departure::Clean,
        ));
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

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;

/// Records that set each config of a new topic.
fn topic_config_records(name: &str, configs: &BTreeMap<String, String>) -> Vec<MetadataRecord> {
    configs
        .iter()
        .map(|(key, value)| {
            MetadataRecord::ConfigChange(ConfigChangeRecord {
                resource: ConfigResource::Topic(name.to_string()),
                name: key.clone(),
                value: Some(value.clone()),
            })
        })
        .collect()
}

fn new_partition_record(
    topic_id: TopicId,
    partition: i32,
    replicas: Vec<NodeId>,
    image: &MetadataImage,
) -> MetadataRecord {
    let isr: Vec<NodeId> = replicas
        .iter()
        .copied()
        .filter(|node| image.broker(*node).is_some_and(|b| !b.fenced))
        .collect();
    let leader = isr.first().copied();
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas,
        isr,
        elr: Vec::new(),
        last_known_elr: Vec::new(),
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

fn topic_record(topic_id: TopicId, name: &str) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        topic_id,
        name: name.to_string(),
    })
}

fn validate_new_topic_name(image: &MetadataImage, name: &str) -> Result<(), ControllerError> {
    validate_topic_name(name).map_err(|e| ControllerError::InvalidTopic(e.to_string()))?;
    if image.topic_by_name(name).is_some() {
        return Err(ControllerError::TopicAlreadyExists(name.to_string()));
    }
    Ok(())
}

fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    validate_all(configs).map_err(|e| ControllerError::InvalidConfig(e.to_string()))
}

// ---------------------------------------------------------------------------------------
// Topics: create, delete, add partitions; placement
// ---------------------------------------------------------------------------------------

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicRequest {
    pub name: String,
    /// A fresh random id chosen by the caller (decisions draw no randomness).
    pub topic_id: TopicId,
    /// -1: `default_partitions`.
    pub num_partitions: i32,
    /// -1: `default_replication_factor`.
    pub replication_factor: i16,
    /// Explicit placement: partition index → replicas (first is the preferred leader).
    pub assignments: BTreeMap<i32, Vec<NodeId>>,
    pub configs: BTreeMap<String, String>,
}

/// Replica and leader counts per unfenced broker, updated as partitions are placed so the
/// topics of one request balance against each other too.
struct Placement {
    /// (rack, node) of every unfenced broker; brokers without a rack share one group.
    brokers: Vec<(Option<String>, NodeId)>,
    replicas: BTreeMap<NodeId, usize>,
    leaders: BTreeMap<NodeId, usize>,
}

impl Placement {
    fn new(image: &MetadataImage) -> Placement {
        let brokers: Vec<_> = image
            .unfenced_brokers()
            .map(|b| (b.rack.clone(), b.node_id))
            .collect();
        let mut replicas: BTreeMap<NodeId, usize> = brokers.iter().map(|b| (b.1, 0)).collect();
        let mut leaders = replicas.clone();
        for state in image.topics().flat_map(|t| t.partitions.iter()) {
            for node in &state.replicas {
                replicas.entry(*node).and_modify(|count| *count += 1);
            }
            if let Some(leader) = state.leader {
                leaders.entry(leader).and_modify(|count| *count += 1);
            }
        }
        Placement {
            brokers,
            replicas,
            leaders,
        }
    }

    /// One partition's replicas: the leader is the broker leading the fewest partitions; each
    /// follower comes from the rack holding the fewest replicas of this partition so far, and
    /// within it the broker holding the fewest replicas overall (ties: lowest node id).
    fn place(&mut self, replication_factor: usize) -> Vec<NodeId> {
        assert!(
            replication_factor <= self.brokers.len(),
            "placement past live brokers"
        );
        let mut chosen: Vec<NodeId> = Vec::with_capacity(replication_factor);
        let mut rack_use: BTreeMap<Option<String>, usize> = BTreeMap::new();
        for slot in 0..replication_factor {
            let best = self
                .brokers
                .iter()
                .filter(|(_, node)| !chosen.contains(node))
                .min_by_key(|(rack, node)| {
                    let leaders = if slot == 0 { self.leaders[node] } else { 0 };
                    let rack_count = rack_use.get(rack).copied().unwrap_or(0);
                    (leaders, rack_count, self.replicas[node], *node)
                })
                .cloned();
            let Some((rack, node)) = best else { break };
            *rack_use.entry(rack).or_default() += 1;
            chosen.push(node);
        }
        for node in &chosen {
            *self.replicas.entry(*node).or_default() += 1;
        }
        if let Some(leader) = chosen.first() {
            *self.leaders.entry(*leader).or_default() += 1;
        }
        chosen
    }
}

/// CreateTopics: the records for each topic, or its error (Kafka answers per topic). Topics
/// named twice in one request are refused with INVALID_REQUEST, as Kafka does.
pub fn create_topics(
    image: &MetadataImage,
    settings: &ControllerSettings,
    requests: &[CreateTopicRequest],
) -> Vec<Result<Vec<MetadataRecord>, ControllerError>> {
    let mut placement = Placement::new(image);
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids: BTreeMap<TopicId, usize> = BTreeMap::new();
    for request in requests {
        *names.entry(request.name.as_str()).or_default() += 1;
        *ids.entry(request.topic_id).or_default() += 1;
    }
    requests
        .iter()
        .map(|request| {
            if names[request.name.as_str()] > 1 {
                return Err(ControllerError::InvalidRequest(format!(
                    "topic '{}' appears more than once in the request",
                    request.name
                )));
            }
            if ids[&request.topic_id] > 1 {
                return Err(ControllerError::InvalidRequest("topic id reused".into()));
            }
            create_topic(image, settings, &mut placement, request)
        })
        .collect()
}

fn create_topic(
    image: &MetadataImage,
    settings: &ControllerSettings,
    placement: &mut Placement,
    request: &CreateTopicRequest,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    validate_new_topic_name(image, &request.name)?;
    if request.topic_id == [0; 16] || image.topic(&request.topic_id).is_some() {
        return Err(ControllerError::InvalidRequest(
            "topic id is zero or in use".into(),
        ));
    }
    validate_configs(&request.configs)?;
    let assignments = if request.assignments.is_empty() {
        place_new_topic(placement, settings, request)?
    } else {
        if request.num_partitions != -1 || request.replication_factor != -1 {
            return Err(ControllerError::InvalidRequest(
                "both num_partitions or replication_factor and replica_assignment were set".into(),
            ));
        }
        validate_assignments(image, settings, &request.assignments, 0)?
    };
    let mut records = vec![topic_record(request.topic_id, &request.name)];
    for (index, replicas) in assignments.into_iter().enumerate() {
        records.push(new_partition_record(
            request.topic_id,
            index as i32,
            replicas,
            image,
        ));
    }
    records.extend(topic_config_records(&request.name, &request.configs));
    Ok(records)
}

fn place_new_topic(
    placement: &mut Placement,
    settings: &ControllerSettings,
    request: &CreateTopicRequest,
) -> Result<Vec<Vec<NodeId>>, ControllerError> {
    let partitions = match request.num_partitions {
        -1 => settings.default_partitions,
        count => count,
    };
    check_partition_count(partitions, settings)?;
    let replication_factor = match request.replication_factor {
        -1 => settings.default_replication_factor,
        factor => factor,
    };
    check_replication_factor(replication_factor, placement.brokers.len())?;
    Ok((0..partitions)
        .map(|_| placement.place(replication_factor as usize))
        .collect())
}

fn check_partition_count(
    partitions: i32,
    settings: &ControllerSettings,
) -> Result<(), ControllerError> {
    if partitions <= 0 {
        return Err(ControllerError::InvalidPartitions(
            "number of partitions must be larger than 0".into(),
        ));
    }
    if partitions > settings.partitions_max {
        return Err(ControllerError::InvalidPartitions(format!(
            "number of partitions {partitions} exceeds the limit {}",
            settings.partitions_max
        )));
    }
    Ok(())
}

fn check_replication_factor(factor: i16, unfenced: usize) -> Result<(), ControllerError> {
    if factor <= 0 {
        return Err(ControllerError::InvalidReplicationFactor(
            "replication factor must be larger than 0".into(),
        ));
    }
    if factor as usize > unfenced {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "unable to replicate the partition {factor} time(s): the target replication \
             factor of {factor} cannot be reached because only {unfenced} broker(s) are \
             registered and unfenced"
        )));
    }
    Ok(())
}

/// Kafka's checks of a manual assignment: partitions numbered `first..first+n` without gaps,
/// each replica list non-empty, without duplicates, of one length, naming registered brokers,
/// at least one of them unfenced.
fn validate_assignments(
    image: &MetadataImage,
    settings: &ControllerSettings,
    assignments: &BTreeMap<i32, Vec<NodeId>>,
    first: i32,
) -> Result<Vec<Vec<NodeId>>, ControllerError> {
    let invalid = |text: String| Err(ControllerError::InvalidReplicaAssignment(text));
    let expected = (first..).take(assignments.len());
    if !assignments.keys().copied().eq(expected) {
        return invalid(format!(
            "partitions should be a consecutive integer sequence starting at {first}"
        ));
    }
    check_partition_count(first.saturating_add(assignments.len() as i32), settings)?;
    let width = assignments.values().next().map_or(0, Vec::len);
    for (partition, replicas) in assignments {
        if replicas.is_empty() {
            return invalid(format!("partition {partition} has an empty replica list"));
        }
        if replicas.len() != width {
            return invalid("all partitions must have the same number of replicas".into());
        }
        if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
            return invalid(format!("partition {partition} names a broker twice"));
        }
        if let Some(node) = replicas.iter().find(|node| image.broker(**node).is_none()) {
            return invalid(format!(
                "the manual partition assignment includes broker {node}, but no such broker is \
                 registered"
            ));
        }
        if replicas
            .iter()
            .all(|node| image.broker(*node).is_some_and(|b| b.fenced))
        {
            return invalid(format!(
                "all brokers in the manual assignment of partition {partition} are fenced"
            ));
        }
    }
    Ok(assignments.values().cloned().collect())
}

/// DeleteTopics by name: one RemoveTopic record each, or UNKNOWN_TOPIC_OR_PARTITION.
pub fn delete_topics(
    image: &MetadataImage,
    names: &[String],
) -> Vec<Result<Vec<MetadataRecord>, ControllerError>> {
    let mut seen = BTreeSet::new();
    names
        .iter()
        .map(|name| {
            if !seen.insert(name.as_str()) {
                return Err(ControllerError::InvalidRequest(format!(
                    "topic '{name}' appears more than once in the request"
                )));
            }
            let topic = image
                .topic_by_name(name)
                .ok_or_else(|| ControllerError::UnknownTopicOrPartition(name.clone()))?;
            Ok(vec![MetadataRecord::RemoveTopic { topic_id: topic.id }])
        })
        .collect()
}

/// One topic of a CreatePartitions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePartitionsRequest {
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Replicas of each new partition, in order (empty: place them like CreateTopics does).
    pub assignments: Vec<Vec<NodeId>>,
}

/// CreatePartitions: new partitions get the replication factor of partition 0. A count not
/// above the current one is INVALID_PARTITIONS, as in Kafka.
pub fn create_partitions(
    image: &MetadataImage,
    settings: &ControllerSettings,
    request: &CreatePartitionsRequest,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topic_by_name(&request.name)
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(request.name.clone()))?;
    let current = topic.partitions.len() as i32;
    if request.count <= current {
        return Err(ControllerError::InvalidPartitions(format!(
            "topic currently has {current} partitions, which is higher than or equal to the \
             requested {}",
            request.count
        )));
    }
    check_partition_count(request.count, settings)?;
    let added = (request.count - current) as usize;
    let assignments = if request.assignments.is_empty() {
        let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let mut placement = Placement::new(image);
        check_replication_factor(
            i16::try_from(factor).unwrap_or(i16::MAX),
            placement.brokers.len(),
        )?;
        (0..added).map(|_| placement.place(factor)).collect()
    } else {
        if request.assignments.len() != added {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "{} replica lists given for {added} new partitions",
                request.assignments.len()
            )));
        }
        let numbered = (current..)
            .zip(request.assignments.iter().cloned())
            .collect();
        validate_assignments(image, settings, &numbered, current)?
    };
    Ok(assignments
        .into_iter()
        .zip(current..)
        .map(|(replicas, partition)| new_partition_record(topic.id, partition, replicas, image))
        .collect())
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
/// config (`log.retention.ms`, ...) with the same value rules. Anything else is INVALID_CONFIG.
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
    }
    let mut seen = BTreeSet::new();
    for alteration in alterations {
        if !seen.insert(alteration.name.as_str()) {
            return Err(ControllerError::InvalidRequest(format!(
                "config `{}` is altered twice",
                alteration.name
            )));
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
