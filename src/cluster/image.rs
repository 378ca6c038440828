//! `MetadataImage`: the cluster state produced by applying metadata records in log order.
//!
//! Owns: brokers, topics, partitions, configs, the producer-id high mark, ACLs and SCRAM
//! credentials as the log describes them. May import: `super::records`, `crate::metadata`
//! (topic ids, topic-name rule). No I/O.
//! Invariants (checked by `apply`, which leaves the image unchanged when it refuses a record):
//! every partition's ISR and ELR are subsets of its replicas, disjoint from each other, with
//! no duplicates; its leader is in the ISR or absent; leader and partition epochs never go
//! back; partitions of a topic are numbered 0..n; topic names and ids are unique; broker
//! epochs only grow; producer-id blocks only move forward.
//! `from_snapshot(snapshot())` equals the image it was taken from.

use super::records::{
    AccessControlEntryRecord, BrokerFencingRecord, ConfigChangeRecord, ConfigResource,
    LeaderChange, Listener, MetadataRecord, NodeId, PartitionChangeRecord, PartitionRecord,
    ProducerIdsBlockRecord, RegisterBrokerRecord, TopicRecord, UserScramCredentialRecord, Uuid,
};
use crate::metadata::{TopicId, topic_id_hex, validate_topic_name};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ImageError {
    #[error("cluster id is already set to a different value")]
    ClusterIdMismatch,
    #[error("broker {0} is not registered")]
    UnknownBroker(NodeId),
    #[error("broker {node_id}: record epoch {record} is not the registered epoch {registered}")]
    StaleBrokerEpoch {
        node_id: NodeId,
        registered: i64,
        record: i64,
    },
    #[error("broker {node_id}: registration epoch {record} is not above {highest}")]
    BrokerEpochNotIncreasing {
        node_id: NodeId,
        highest: i64,
        record: i64,
    },
    #[error("topic name `{0}` is already in use")]
    DuplicateTopicName(String),
    #[error("topic id {0} is already in use")]
    DuplicateTopicId(String),
    #[error("invalid topic name `{0}`")]
    InvalidTopicName(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(String),
    #[error("unknown topic `{0}`")]
    UnknownTopicName(String),
    #[error("topic {topic}: partition {partition} is not the next partition ({expected})")]
    PartitionNotNext {
        topic: String,
        partition: i32,
        expected: i32,
    },
    #[error("topic {topic}: unknown partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic {topic} partition {partition}: {reason}")]
    InvalidPartition {
        topic: String,
        partition: i32,
        reason: &'static str,
    },
    #[error("producer-id block at {first} (size {size}) does not start at or after {next}")]
    ProducerIdsNotIncreasing { next: i64, first: i64, size: i64 },
    #[error("unknown ACL {0}")]
    UnknownAcl(String),
    #[error("unknown SCRAM credential for `{name}` mechanism {mechanism}")]
    UnknownScramCredential { name: String, mechanism: i8 },
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
}

/// A registered broker as the image knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub node_id: NodeId,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// One partition's replica set, ISR, leader and epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub elr: Vec<NodeId>,
    pub last_known_elr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455, `cluster::reassignments`): `replicas` is the
    /// target followed by the replicas to remove; `adding_replicas` are target replicas
    /// not in the original set, `removing_replicas` original ones not in the target. Both
    /// empty when none is in progress.
    pub adding_replicas: Vec<NodeId>,
    pub removing_replicas: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub id: TopicId,
    pub name: String,
    /// Indexed 0..n (checked on apply).
    pub partitions: Vec<PartitionState>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    cluster_id: Option<Uuid>,
    features: BTreeMap<String, i16>,
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    /// The highest broker epoch ever registered (brokers are never removed, so a snapshot
    /// restores it from the registrations).
    broker_epoch_highest: i64,
    /// Configs of every resource but topics (a topic's live in its `TopicImage`): brokers,
    /// the broker default, groups. A resource whose last config was deleted is dropped.
    broker_configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    topics: BTreeMap<TopicId, TopicImage>,
    topic_ids_by_name: BTreeMap<String, TopicId>,
    /// The last block handed out; producer ids below its end are never handed out again.
    last_producer_ids_block: Option<ProducerIdsBlockRecord>,
    acls: BTreeMap<Uuid, AccessControlEntryRecord>,
    scram_credentials: BTreeMap<(String, i8), UserScramCredentialRecord>,
}

impl MetadataImage {
    pub fn new() -> MetadataImage {
        MetadataImage::default()
    }

    pub fn cluster_id(&self) -> Option<Uuid> {
        self.cluster_id
    }
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }
    pub fn broker(&self, node_id: NodeId) -> Option<&BrokerRegistration> {
        self.brokers.get(&node_id)
    }
    /// Registered, unfenced brokers: the ones that may lead or be placed on.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|broker| !broker.fenced)
    }
    pub fn broker_epoch_highest(&self) -> i64 {
        self.broker_epoch_highest
    }
    pub fn broker_configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(resource)
    }
    /// Every group with config overrides (GROUP resource) and its overrides.
    pub fn group_configs(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, String>)> {
        self.broker_configs
            .iter()
            .filter_map(|(resource, configs)| match resource {
                ConfigResource::Group(group) => Some((group.as_str(), configs)),
                _ => None,
            })
    }
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }
    pub fn topic(&self, id: &TopicId) -> Option<&TopicImage> {
        self.topics.get(id)
    }
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics.get(id))
    }
    pub fn partition(&self, id: &TopicId, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(id)?.partitions.get(index)
    }
    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.last_producer_ids_block
            .map_or(0, |block| block.first_producer_id + block.size)
    }
    pub fn acls(&self) -> impl Iterator<Item = &AccessControlEntryRecord> {
        self.acls.values()
    }
    pub fn scram_credentials(&self) -> impl Iterator<Item = &UserScramCredentialRecord> {
        self.scram_credentials.values()
    }

    /// Applies one record. On error the image is unchanged: a committed record that does not
    /// apply is a bug or corruption, and the caller must stop rather than diverge.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::ClusterId(id) => match self.cluster_id {
                Some(current) if current != *id => return Err(ImageError::ClusterIdMismatch),
                _ => self.cluster_id = Some(*id),
            },
            MetadataRecord::FeatureLevel { name, level } => {
                self.features.insert(name.clone(), *level);
            }
            MetadataRecord::RegisterBroker(record) => self.register_broker(record)?,
            MetadataRecord::FenceBroker(record) => self.set_fenced(record, true)?,
            MetadataRecord::UnfenceBroker(record) => self.set_fenced(record, false)?,
            MetadataRecord::Topic(record) => self.add_topic(record)?,
            MetadataRecord::Partition(record) => self.add_partition(record)?,
            MetadataRecord::PartitionChange(record) => self.change_partition(record)?,
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or_else(|| ImageError::UnknownTopicId(topic_id_hex(topic_id)))?;
                self.topic_ids_by_name.remove(&topic.name);
            }
            MetadataRecord::ConfigChange(record) => self.change_config(record)?,
            MetadataRecord::ProducerIdsBlock(record) => {
                let next = self.next_producer_id();
                let fits = record.size > 0
                    && record.first_producer_id >= next
                    && record.first_producer_id.checked_add(record.size).is_some();
                if !fits {
                    return Err(ImageError::ProducerIdsNotIncreasing {
                        next,
                        first: record.first_producer_id,
                        size: record.size,
                    });
                }
                self.last_producer_ids_block = Some(*record);
            }
            MetadataRecord::AccessControlEntry(record) => {
                self.acls.insert(record.id, record.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                self.acls
                    .remove(id)
                    .ok_or_else(|| ImageError::UnknownAcl(topic_id_hex(id)))?;
            }
            MetadataRecord::UserScramCredential(record) => {
                let key = (record.name.clone(), record.mechanism);
                self.scram_credentials.insert(key, record.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                self.scram_credentials
                    .remove(&(name.clone(), *mechanism))
                    .ok_or_else(|| ImageError::UnknownScramCredential {
                        name: name.clone(),
                        mechanism: *mechanism,
                    })?;
            }
        }
        Ok(())
    }

    /// Applies records in order, stopping at the first that does not apply.
    pub fn apply_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<(), ImageError> {
        records
            .into_iter()
            .try_for_each(|record| self.apply(record))
    }

    /// The records that rebuild this image from empty, in an order that applies.
    pub fn snapshot(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        records.extend(self.cluster_id.map(MetadataRecord::ClusterId));
        records.extend(
            self.features
                .iter()
                .map(|(name, level)| MetadataRecord::FeatureLevel {
                    name: name.clone(),
                    level: *level,
                }),
        );
        // In epoch order: registrations apply only with growing epochs.
        let mut brokers: Vec<_> = self.brokers.values().collect();
        brokers.sort_by_key(|broker| broker.broker_epoch);
        records.extend(brokers.into_iter().map(|broker| {
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                node_id: broker.node_id,
                incarnation_id: broker.incarnation_id,
                broker_epoch: broker.broker_epoch,
                listeners: broker.listeners.clone(),
                rack: broker.rack.clone(),
                fenced: broker.fenced,
            })
        }));
        for (resource, configs) in &self.broker_configs {
            records.extend(config_records(resource, configs));
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic(TopicRecord {
                topic_id: topic.id,
                name: topic.name.clone(),
            }));
            records.extend(topic.partitions.iter().enumerate().map(|(index, state)| {
                MetadataRecord::Partition(PartitionRecord {
                    topic_id: topic.id,
                    partition: index as i32,
                    replicas: state.replicas.clone(),
                    isr: state.isr.clone(),
                    elr: state.elr.clone(),
                    last_known_elr: state.last_known_elr.clone(),
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                    partition_epoch: state.partition_epoch,
                    adding_replicas: state.adding_replicas.clone(),
                    removing_replicas: state.removing_replicas.clone(),
                })
            }));
            let resource = ConfigResource::Topic(topic.name.clone());
            records.extend(config_records(&resource, &topic.configs));
        }
        records.extend(
            self.last_producer_ids_block
                .map(MetadataRecord::ProducerIdsBlock),
        );
        records.extend(
            self.acls
                .values()
                .cloned()
                .map(MetadataRecord::AccessControlEntry),
        );
        records.extend(
            self.scram_credentials
                .values()
                .cloned()
                .map(MetadataRecord::UserScramCredential),
        );
        records
    }

    /// Rebuilds an image from `snapshot()` output.
    pub fn from_snapshot(records: &[MetadataRecord]) -> Result<MetadataImage, ImageError> {
        let mut image = MetadataImage::new();
        image.apply_all(records)?;
        Ok(image)
    }

    fn register_broker(&mut self, record: &RegisterBrokerRecord) -> Result<(), ImageError> {
        if record.node_id < 0 {
            return Err(ImageError::InvalidRecord("a node id is not negative"));
        }
        if record.broker_epoch <= self.broker_epoch_highest {
            return Err(ImageError::BrokerEpochNotIncreasing {
                node_id: record.node_id,
                highest: self.broker_epoch_highest,
                record: record.broker_epoch,
            });
        }
        self.broker_epoch_highest = record.broker_epoch;
        self.brokers.insert(
            record.node_id,
            BrokerRegistration {
                node_id: record.node_id,
                incarnation_id: record.incarnation_id,
                broker_epoch: record.broker_epoch,
                listeners: record.listeners.clone(),
                rack: record.rack.clone(),
                fenced: record.fenced,
            },
        );
        Ok(())
    }

    fn set_fenced(&mut self, record: &BrokerFencingRecord, fenced: bool) -> Result<(), ImageError> {
        let broker = self
            .brokers
            .get_mut(&record.node_id)
            .ok_or(ImageError::UnknownBroker(record.node_id))?;
        if broker.broker_epoch != record.broker_epoch {
            return Err(ImageError::StaleBrokerEpoch {
                node_id: record.node_id,
                registered: broker.broker_epoch,
                record: record.broker_epoch,
            });
        }
        broker.fenced = fenced;
        Ok(())
    }

    fn add_topic(&mut self, record: &TopicRecord) -> Result<(), ImageError> {
        if validate_topic_name(&record.name).is_err() {
            return Err(ImageError::InvalidTopicName(record.name.clone()));
        }
        if self.topic_ids_by_name.contains_key(&record.name) {
            return Err(ImageError::DuplicateTopicName(record.name.clone()));
        }
        if self.topics.contains_key(&record.topic_id) || record.topic_id == [0; 16] {
            return Err(ImageError::DuplicateTopicId(topic_id_hex(&record.topic_id)));
        }
        self.topic_ids_by_name
            .insert(record.name.clone(), record.topic_id);
        self.topics.insert(
            record.topic_id,
            TopicImage {
                id: record.topic_id,
                name: record.name.clone(),
                partitions: Vec::new(),
                configs: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn topic_mut(&mut self, id: &TopicId) -> Result<&mut TopicImage, ImageError> {
        self.topics
            .get_mut(id)
            .ok_or_else(|| ImageError::UnknownTopicId(topic_id_hex(id)))
    }

    fn add_partition(&mut self, record: &PartitionRecord) -> Result<(), ImageError> {
        let topic = self.topic_mut(&record.topic_id)?;
        let expected = topic.partitions.len() as i32;
        if record.partition != expected {
            return Err(ImageError::PartitionNotNext {
                topic: topic.name.clone(),
                partition: record.partition,
                expected,
            });
        }
        let state = PartitionState {
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
            elr: record.elr.clone(),
            last_known_elr: record.last_known_elr.clone(),
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            adding_replicas: record.adding_replicas.clone(),
            removing_replicas: record.removing_replicas.clone(),
        };
        check_partition(&state).map_err(|reason| ImageError::InvalidPartition {
            topic: topic.name.clone(),
            partition: record.partition,
            reason,
        })?;
        topic.partitions.push(state);
        Ok(())
    }

    fn change_partition(&mut self, record: &PartitionChangeRecord) -> Result<(), ImageError> {
        let topic = self.topic_mut(&record.topic_id)?;
        let invalid = |reason| ImageError::InvalidPartition {
            topic: topic.name.clone(),
            partition: record.partition,
            reason,
        };
        let current = usize::try_from(record.partition)
            .ok()
            .and_then(|index| topic.partitions.get(index))
            .ok_or_else(|| ImageError::UnknownPartition {
                topic: topic.name.clone(),
                partition: record.partition,
            })?;
        let mut next = current.clone();
        next.leader = match record.leader {
            LeaderChange::Unchanged => current.leader,
            LeaderChange::None => None,
            LeaderChange::To(node) => Some(node),
        };
        let replace = |field: &mut Vec<NodeId>, value: &Option<Vec<NodeId>>| {
            if let Some(value) = value {
                field.clone_from(value);
            }
        };
        replace(&mut next.replicas, &record.replicas);
        replace(&mut next.isr, &record.isr);
        replace(&mut next.elr, &record.elr);
        replace(&mut next.last_known_elr, &record.last_known_elr);
        replace(&mut next.adding_replicas, &record.adding_replicas);
        replace(&mut next.removing_replicas, &record.removing_replicas);
        next.leader_epoch = record.leader_epoch;
        next.partition_epoch = record.partition_epoch;
        if next.partition_epoch <= current.partition_epoch {
            return Err(invalid("partition epoch must grow with every change"));
        }
        if next.leader_epoch < current.leader_epoch {
            return Err(invalid("leader epoch went back"));
        }
        if next.leader != current.leader && next.leader_epoch == current.leader_epoch {
            return Err(invalid("a leader change must bump the leader epoch"));
        }
        check_partition(&next).map_err(invalid)?;
        let index = record.partition as usize;
        topic.partitions[index] = next;
        Ok(())
    }

    fn change_config(&mut self, record: &ConfigChangeRecord) -> Result<(), ImageError> {
        let configs = match &record.resource {
            ConfigResource::Topic(name) => {
                let id = *self
                    .topic_ids_by_name
                    .get(name)
                    .ok_or_else(|| ImageError::UnknownTopicName(name.clone()))?;
                &mut self.topic_mut(&id)?.configs
            }
            resource => self.broker_configs.entry(resource.clone()).or_default(),
        };
        match &record.value {
            Some(value) => {
                configs.insert(record.name.clone(), value.clone());
            }
            None => {
                configs.remove(&record.name);
            }
        }
        if !matches!(record.resource, ConfigResource::Topic(_)) {
            self.broker_configs.retain(|_, configs| !configs.is_empty());
        }
        Ok(())
    }
}

fn config_records<'a>(
    resource: &'a ConfigResource,
    configs: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = MetadataRecord> + 'a {
    configs.iter().map(move |(name, value)| {
        MetadataRecord::ConfigChange(ConfigChangeRecord {
            resource: resource.clone(),
            name: name.clone(),
            value: Some(value.clone()),
        })
    })
}

fn unique(nodes: &[NodeId]) -> bool {
    nodes.iter().collect::<BTreeSet<_>>().len() == nodes.len()
}

/// The structural invariants of one partition.
pub fn check_partition(state: &PartitionState) -> Result<(), &'static str> {
    let replicas: BTreeSet<_> = state.replicas.iter().collect();
    if state.replicas.is_empty() || replicas.len() != state.replicas.len() {
        return Err("replicas must be a non-empty list without duplicates");
    }
    if state.replicas.iter().any(|node| *node < 0) {
        return Err("a replica is a non-negative node id");
    }
    let subset = |nodes: &[NodeId]| unique(nodes) && nodes.iter().all(|n| replicas.contains(n));
    if !subset(&state.isr) {
        return Err("the ISR must be a subset of the replicas without duplicates");
    }
    if !subset(&state.elr) || !subset(&state.last_known_elr) {
        return Err("the ELR must be a subset of the replicas without duplicates");
    }
    if state.elr.iter().any(|node| state.isr.contains(node)) {
        return Err("a replica cannot be in both the ISR and the ELR");
    }
    if !subset(&state.adding_replicas) || !subset(&state.removing_replicas) {
        return Err("adding and removing replicas must be subsets of the replicas");
    }
    if state
        .adding_replicas
        .iter()
        .any(|node| state.removing_replicas.contains(node))
    {
        return Err("a replica cannot be both added and removed");
    }
    if let Some(leader) = state.leader
        && !state.isr.contains(&leader)
    {
        return Err("the leader must be in the ISR");
    }
    if state.leader_epoch < 0 || state.partition_epoch < 0 {
        return Err("epochs are not negative");
    }
    Ok(())
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
