//! The topics of the metadata image as a broker's shards need them: Metadata's topic part,
//! the leadership check on produce and fetch, and the local catalog's reconciliation (each
//! node creates the partitions of every cluster topic; only the leader serves them, its
//! replicas copy it: `shard::replicas`).
//!
//! Owns: `ClusterTopics`, a read-only table built from an applied image. May import:
//! `crate::cluster` (pure). No I/O.
//! Invariants: built only from an applied (committed) image, so every node that applied the
//! same index builds the same table; `applied_index` only grows on one node.

use crate::cluster::image::MetadataImage;
use crate::cluster::records::{ConfigResource, NodeId};
use crate::metadata::TopicId;
use std::collections::BTreeMap;

/// Every topic of the metadata image, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterTopics {
    /// The raft index of the last entry applied to the image this was built from (0: none).
    pub applied_index: u64,
    pub topics: BTreeMap<String, ClusterTopic>,
    /// Every producer id below this was handed out in a block of the metadata log.
    pub producer_id_bound: i64,
    /// The broker epoch of every registered broker (its current incarnation), by node id.
    pub broker_epochs: BTreeMap<NodeId, i64>,
    /// The cluster-wide dynamic broker defaults (IncrementalAlterConfigs on the default
    /// BROKER resource): what a topic without its own value takes, e.g. `min.insync.replicas`.
    pub default_configs: BTreeMap<String, String>,
    /// Every group's config overrides (GROUP resource), by group id.
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTopic {
    pub id: TopicId,
    /// Indexed by partition number (0..n).
    pub partitions: Vec<ClusterPartition>,
    /// Topic configs set in the metadata log (absent keys take the broker defaults).
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPartition {
    /// -1 when the partition has no leader (offline).
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// KIP-966 eligible leader replicas and the last-known ones (DescribeTopicPartitions).
    pub elr: Vec<NodeId>,
    pub last_known_elr: Vec<NodeId>,
    /// Replicas on brokers that are fenced or not registered.
    pub offline_replicas: Vec<NodeId>,
    /// A reassignment in progress (`cluster::reassignments`): replicas being added and
    /// removed; both empty otherwise.
    pub adding_replicas: Vec<NodeId>,
    pub removing_replicas: Vec<NodeId>,
}

impl ClusterTopics {
    pub fn from_image(image: &MetadataImage, applied_index: u64) -> ClusterTopics {
        let live = |node: &NodeId| image.broker(*node).is_some_and(|broker| !broker.fenced);
        let topics = image
            .topics()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|state| ClusterPartition {
                        leader: state.leader.unwrap_or(-1),
                        leader_epoch: state.leader_epoch,
                        partition_epoch: state.partition_epoch,
                        replicas: state.replicas.clone(),
                        isr: state.isr.clone(),
                        elr: state.elr.clone(),
                        last_known_elr: state.last_known_elr.clone(),
                        offline_replicas: state
                            .replicas
                            .iter()
                            .filter(|node| !live(node))
                            .copied()
                            .collect(),
                        adding_replicas: state.adding_replicas.clone(),
                        removing_replicas: state.removing_replicas.clone(),
                    })
                    .collect();
                let table = ClusterTopic {
                    id: topic.id,
                    partitions,
                    configs: topic.configs.clone(),
                };
                (topic.name.clone(), table)
            })
            .collect();
        ClusterTopics {
            applied_index,
            topics,
            producer_id_bound: image.next_producer_id(),
            broker_epochs: image
                .brokers()
                .map(|broker| (broker.node_id, broker.broker_epoch))
                .collect(),
            default_configs: image
                .broker_configs(&ConfigResource::BrokerDefault)
                .cloned()
                .unwrap_or_default(),
            group_configs: image
                .group_configs()
                .map(|(group, configs)| (group.to_string(), configs.clone()))
                .collect(),
        }
    }

    /// The live leader of `key`'s partition of the coordinator topic `topic`
    /// (`__consumer_offsets`, `__transaction_state`: Kafka's `abs(hashCode) % partitions`).
    /// `Err(true)`: the topic is not in the log yet; `Err(false)`: its partition has no leader.
    pub fn coordinator_leader(&self, topic: &str, key: &str) -> Result<NodeId, bool> {
        let table = self.topics.get(topic).ok_or(true)?;
        let count = i32::try_from(table.partitions.len()).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(false);
        }
        let index = crate::model::coordinator_partition(key, count);
        usize::try_from(index)
            .ok()
            .and_then(|index| table.partitions.get(index))
            .map(|partition| partition.leader)
            .filter(|leader| *leader >= 0)
            .ok_or(false)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&ClusterPartition> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }
}
