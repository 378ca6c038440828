//! What goes in and out of the consumer-group state machine: limits, the topics image the
//! shell hands in, heartbeat inputs and outcomes, and descriptions for admin APIs.

use super::assignor::AssignorKind;
use crate::model::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

/// A topic's id, as Kafka's ConsumerGroupHeartbeat names topics (same bytes as the catalog's).
pub type TopicId = [u8; 16];

/// Partitions by topic id: a member's assignment or target.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The racks holding a replica of each partition (rack-aware assignment); a partition
/// missing here has no known rack.
pub type PartitionRacks = BTreeMap<(TopicId, i32), BTreeSet<String>>;

/// Kafka's member epoch sentinels in ConsumerGroupHeartbeat.
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// The number of partitions in an assignment.
pub fn assignment_size(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

/// Whether every partition of `part` is in `whole`.
pub fn is_subset(part: &Assignment, whole: &Assignment) -> bool {
    part.iter()
        .all(|(topic, partitions)| match whole.get(topic) {
            Some(owned) => partitions.is_subset(owned),
            None => partitions.is_empty(),
        })
}

/// Drops topics with no partitions, so equal assignments compare equal.
pub fn normalized(mut assignment: Assignment) -> Assignment {
    assignment.retain(|_, partitions| !partitions.is_empty());
    assignment
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupLimits {
    /// Broker `group.consumer.session.timeout.ms`: a member silent this long is removed.
    pub session_timeout_ms: u64,
    /// Broker `group.consumer.heartbeat.interval.ms`, told to members in every response.
    pub heartbeat_interval_ms: i32,
    /// Broker `group.consumer.max.size`: members per group.
    pub members_max: usize,
    /// Broker `group.consumer.assignors`: the server-side assignors, the first is the default.
    pub assignors: Vec<AssignorKind>,
    /// Longest `subscribed_topic_regex` accepted (a bound on the compiled automaton).
    pub regex_len_max: usize,
}

/// One topic as the group sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicImage {
    pub id: TopicId,
    pub partitions: i32,
}

/// The topics that exist, by name: the shell builds it from its catalog for each call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsImage {
    topics: BTreeMap<String, TopicImage>,
    racks: PartitionRacks,
}

impl TopicsImage {
    pub fn new() -> TopicsImage {
        TopicsImage::default()
    }

    pub fn insert(&mut self, name: &str, id: TopicId, partitions: i32) {
        self.topics
            .insert(name.to_string(), TopicImage { id, partitions });
    }

    /// Records the racks of a partition's replicas (none known: not called).
    pub fn set_partition_racks(&mut self, id: TopicId, partition: i32, racks: BTreeSet<String>) {
        if !racks.is_empty() {
            self.racks.insert((id, partition), racks);
        }
    }

    /// The known racks of the partitions of `topics`.
    pub fn racks_of(&self, topics: &BTreeSet<TopicId>) -> PartitionRacks {
        self.racks
            .iter()
            .filter(|((id, _), _)| topics.contains(id))
            .map(|(key, racks)| (*key, racks.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<TopicImage> {
        self.topics.get(name).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TopicImage)> {
        self.topics.iter()
    }

    /// The name of the topic with this id.
    pub fn name_of(&self, id: &TopicId) -> Option<&str> {
        self.topics
            .iter()
            .find(|(_, topic)| &topic.id == id)
            .map(|(name, _)| name.as_str())
    }
}

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// The member has its target assignment at the target epoch.
    Stable,
    /// The member must revoke partitions before it gets anything new.
    UnrevokedPartitions,
    /// Partitions of its target are still held by other members.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn kafka_name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// The group's state as DescribeGroups / ListGroups / ConsumerGroupDescribe report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// One ConsumerGroupHeartbeat, decoded. `None` fields mean "unchanged since the last one".
#[derive(Debug, Clone, Default)]
pub struct HeartbeatInput {
    /// Never empty: v1 clients generate it, for v0 the shell fills a fresh one on join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `Some("")` clears the regex.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now (None: unchanged since the last heartbeat).
    pub owned_partitions: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub error: ErrorCode,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the request was a full one.
    pub assignment: Option<Assignment>,
}

impl HeartbeatOutcome {
    pub fn error(error: ErrorCode, message: &str, member_id: &str) -> HeartbeatOutcome {
        HeartbeatOutcome {
            error,
            error_message: (!message.is_empty()).then(|| message.to_string()),
            member_id: member_id.to_string(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// Which request commits offsets to a consumer group: Kafka checks the OffsetCommit version
/// (a consumer-protocol member must use v9+, where the generation field carries its member
/// epoch) but not TxnOffsetCommit's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitSource {
    OffsetCommit { api_version: i16 },
    TxnOffsetCommit,
}

/// The first OffsetCommit version a consumer-protocol member may use.
pub const OFFSET_COMMIT_CONSUMER_PROTOCOL_VERSION_MIN: i16 = 9;

/// A member removed by the coordinator (session or revocation timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedMember {
    pub member_id: String,
    pub reason: &'static str,
}

/// A member for ConsumerGroupDescribe / DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub state: MemberState,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}
