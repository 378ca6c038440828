//! The active controller's leader elections on request and on schedule: Kafka ElectLeaders
//! (API 43, PREFERRED and UNCLEAN) and auto leader rebalance
//! (`auto.leader.rebalance.enable`). Pure functions of the image; they read `controller`'s
//! settings (`controller` does not import this module).
//!
//! Owns: which partitions an ElectLeaders request or an imbalance check touches, and each
//! partition's outcome code (the per-partition rules are `partition_changes::elect_preferred`
//! and `elect_unclean`). May import: `super::{image, records, partition_changes, controller}`,
//! `crate::model::ErrorCode`. No I/O, no clock. Runs wherever the active controller runs.
//! Invariants: the records returned apply, in order, to the image they were decided on (at
//! most one change per partition); a preferred election changes the leader only, to a
//! registered, unfenced ISR member; every requested partition gets exactly one result.

use super::controller::ControllerSettings;
use super::image::{MetadataImage, PartitionState};
use super::partition_changes::{change_record, elect_preferred, elect_unclean};
use super::records::{MetadataRecord, NodeId};
use crate::model::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka ElectLeaders' `election_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// 0: the first replica leads again if it is live and in the ISR.
    Preferred,
    /// 1: a partition without a leader elects one, unclean if it must.
    Unclean,
}

impl ElectionType {
    /// Kafka's number of the election type; `None` for an unknown one.
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// One partition's outcome of an ElectLeaders request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    /// Kafka error code, 0 = the election took place.
    pub error_code: i16,
}

/// The records of an ElectLeaders request (one raft entry) and its per-partition results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElectLeadersDecision {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<ElectionResult>,
}

/// ElectLeaders (Kafka API 43). `partitions`: topic → partition ids; `None` means every
/// partition, and then (as in Kafka's controller) partitions that need no election are left
/// out of the results. A partition named twice is decided once. Unknown topics and partitions
/// get UNKNOWN_TOPIC_OR_PARTITION; the rest `partition_changes::elect_preferred` or
/// `elect_unclean`'s code, a replica usable when registered and unfenced.
pub fn elect_leaders(
    image: &MetadataImage,
    election_type: ElectionType,
    partitions: Option<&BTreeMap<String, BTreeSet<i32>>>,
) -> ElectLeadersDecision {
    let usable = |node: NodeId| image.broker(node).is_some_and(|broker| !broker.fenced);
    let elect = |state: &PartitionState| match election_type {
        ElectionType::Preferred => elect_preferred(state, &usable),
        ElectionType::Unclean => elect_unclean(state, &usable),
    };
    let mut decision = ElectLeadersDecision::default();
    let mut decide = |topic: &str, partition: i32, all: bool| {
        let found = image.topic_by_name(topic).and_then(|topic| {
            let state = image.partition(&topic.id, partition)?;
            Some((topic.id, state))
        });
        let error = match found {
            None => ErrorCode::UnknownTopicOrPartition,
            Some((topic_id, state)) => match elect(state) {
                Ok(next) => {
                    let record = change_record(topic_id, partition, state, &next);
                    decision.records.push(record);
                    ErrorCode::None
                }
                Err(code) => code,
            },
        };
        if !(all && error == ErrorCode::ElectionNotNeeded) {
            decision.results.push(ElectionResult {
                topic: topic.to_string(),
                partition,
                error_code: error.code(),
            });
        }
    };
    match partitions {
        Some(partitions) => {
            for (topic, ids) in partitions {
                ids.iter()
                    .for_each(|partition| decide(topic, *partition, false));
            }
        }
        None => {
            for topic in image.topics() {
                for partition in 0..topic.partitions.len() as i32 {
                    decide(&topic.name, partition, true);
                }
            }
        }
    }
    decision
}

/// Auto leader rebalance, on the active controller's schedule: for each broker, the share of
/// the partitions it is the preferred replica of that another broker leads (or nobody). Above
/// `leader_imbalance_per_broker_percentage` (strictly, as Kafka), those partitions whose
/// preferred replica is usable and in the ISR get it back as leader. Nothing when
/// `auto_leader_rebalance` is off.
pub fn rebalance_leaders(
    image: &MetadataImage,
    settings: &ControllerSettings,
) -> Vec<MetadataRecord> {
    if !settings.auto_leader_rebalance {
        return Vec::new();
    }
    let mut preferred: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut displaced: BTreeMap<NodeId, u64> = BTreeMap::new();
    for topic in image.topics() {
        for state in &topic.partitions {
            let Some(&first) = state.replicas.first() else {
                continue;
            };
            *preferred.entry(first).or_default() += 1;
            if state.leader != Some(first) {
                *displaced.entry(first).or_default() += 1;
            }
        }
    }
    let percentage = u64::from(settings.leader_imbalance_per_broker_percentage);
    let imbalanced: BTreeSet<NodeId> = displaced
        .iter()
        .filter(|(node, count)| {
            *count * 100 > percentage * preferred.get(node).copied().unwrap_or(0)
        })
        .map(|(node, _)| *node)
        .collect();
    if imbalanced.is_empty() {
        return Vec::new();
    }
    let usable = |node: NodeId| image.broker(node).is_some_and(|broker| !broker.fenced);
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, state) in topic.partitions.iter().enumerate() {
            let wanted = state
                .replicas
                .first()
                .is_some_and(|n| imbalanced.contains(n));
            if !wanted {
                continue;
            }
            if let Ok(next) = elect_preferred(state, &usable) {
                records.push(change_record(topic.id, index as i32, state, &next));
            }
        }
    }
    records
}

#[cfg(test)]
#[path = "leader_elections_tests.rs"]
mod tests;
