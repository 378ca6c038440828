//! The active controller's topic decisions: CreateTopics, DeleteTopics and CreatePartitions,
//! with the placement of new partitions' replicas. Pure functions of the image.
//!
//! Owns: the checks of these requests (names, configs, partition counts, replication
//! factors, manual assignments, names or ids given twice) and placement (replicas spread
//! over racks, leaders and replicas balanced over unfenced brokers). May import:
//! `super::{image, records, controller}` (settings and the error type), `crate::metadata`
//! (name and config validation). No I/O, no clock, no randomness: topic ids come with the
//! request. Runs wherever the active controller runs.
//! Invariants: every record list a decision returns applies cleanly, in order, to the image
//! it was decided on; placement names only unfenced brokers, none twice in a partition.

use super::controller::{ControllerError, ControllerSettings};
use super::image::MetadataImage;
use super::records::{
    ConfigChangeRecord, ConfigResource, MetadataRecord, NodeId, PartitionRecord, TopicRecord,
};
use crate::metadata::topic_config::validate_all;
use crate::metadata::{TopicId, validate_topic_name};
use std::collections::{BTreeMap, BTreeSet};

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
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
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

#[cfg(test)]
#[path = "topic_changes_tests.rs"]
mod tests;
