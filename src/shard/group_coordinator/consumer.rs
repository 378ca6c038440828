//! The shell around KIP-848 consumer groups (`group::consumer`): it hands each
//! ConsumerGroupHeartbeat the topics image from the catalog, keeps classic and consumer
//! groups of one id apart (an empty group of the other kind is replaced, a non-empty one
//! refuses with Kafka's error), drives session timeouts from the group timer, and checks
//! member epochs on offset commits.
//!
//! Not yet: the groups are not written to `__consumer_offsets` (a restart or coordinator
//! move drops them; members are then fenced with UNKNOWN_MEMBER_ID and rejoin).

use super::super::Shard;
use crate::group::GroupState;
use crate::group::consumer::{
    AssignorKind, ConsumerGroup, ConsumerGroupDescription, ConsumerGroupLimits, HeartbeatInput,
    HeartbeatOutcome, TopicsImage,
};
use crate::model::ErrorCode;
use crate::shard::messages::GroupListing;

/// Longest `subscribed_topic_regex` accepted, bytes.
const REGEX_LEN_MAX: usize = 1_000;

pub(super) fn limits(config: &crate::config::GroupConfig) -> ConsumerGroupLimits {
    ConsumerGroupLimits {
        session_timeout_ms: config.consumer_session_timeout_ms,
        heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
        members_max: config.consumer_members_max,
        assignors: config
            .consumer_assignors
            .iter()
            .filter_map(|name| AssignorKind::from_name(name))
            .collect(),
        regex_len_max: REGEX_LEN_MAX,
    }
}

impl Shard {
    /// The topics consumers may subscribe to (internal topics are left out, as Kafka's
    /// regex subscriptions do).
    fn consumer_topics_image(&self) -> TopicsImage {
        let mut image = TopicsImage::new();
        for topic in self.catalog().topics() {
            if !topic.internal && !topic.name.starts_with("__") {
                image.insert(&topic.name, topic.id, topic.partitions);
            }
        }
        image
    }

    pub(super) fn consumer_heartbeat(
        &self,
        group_id: &str,
        input: HeartbeatInput,
    ) -> HeartbeatOutcome {
        if group_id.is_empty() {
            return HeartbeatOutcome::error(
                ErrorCode::InvalidRequest,
                "GroupId can't be empty.",
                &input.member_id,
            );
        }
        let coordinator = &self.coordinator;
        {
            let mut classic = coordinator.groups.borrow_mut();
            if let Some(group) = classic.get(group_id) {
                if !matches!(group.state(), GroupState::Empty | GroupState::Dead) {
                    // Kafka without online migration: a live classic group is not a
                    // consumer group.
                    return HeartbeatOutcome::error(
                        ErrorCode::GroupIdNotFound,
                        &format!("Group {group_id} is not a consumer group."),
                        &input.member_id,
                    );
                }
                classic.remove(group_id);
                tracing::info!(shard = %self.id, group = %group_id,
                    "empty classic group becomes a consumer group");
            }
        }
        let image = self.consumer_topics_image();
        let mut groups = coordinator.consumer_groups.borrow_mut();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id, coordinator.consumer_limits.clone()));
        let outcome = group.heartbeat(input, &image, super::monotonic_ms());
        if group.is_empty() && group.group_epoch() == 0 {
            // A refused first join leaves no group behind.
            groups.remove(group_id);
        }
        outcome
    }

    pub(super) fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, ErrorCode> {
        self.coordinator
            .consumer_groups
            .borrow()
            .get(group_id)
            .map(ConsumerGroup::describe)
            .ok_or(ErrorCode::GroupIdNotFound)
    }

    /// A JoinGroup for `group_id`: Err when a non-empty consumer group holds the id (an
    /// empty one is dropped so the classic group can take its place).
    pub(super) fn classic_join_allowed(&self, group_id: &str) -> Result<(), ErrorCode> {
        let mut groups = self.coordinator.consumer_groups.borrow_mut();
        match groups.get(group_id) {
            Some(group) if !group.is_empty() => Err(ErrorCode::InconsistentGroupProtocol),
            Some(_) => {
                groups.remove(group_id);
                tracing::info!(shard = %self.id, group = %group_id,
                    "empty consumer group becomes a classic group");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// An offset commit to a consumer group: `Some(verdict)`, or `None` when `group_id` is
    /// no consumer group. The classic commit's generation carries the member epoch.
    pub(super) fn validate_consumer_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Option<ErrorCode> {
        let groups = self.coordinator.consumer_groups.borrow();
        let group = groups.get(group_id)?;
        Some(
            group
                .validate_offset_commit(member_id, member_epoch)
                .err()
                .unwrap_or(ErrorCode::None),
        )
    }

    pub(super) fn list_consumer_groups(&self) -> Vec<GroupListing> {
        self.coordinator
            .consumer_groups
            .borrow()
            .values()
            .map(|group| GroupListing {
                group_id: group.id().to_string(),
                protocol_type: "consumer".to_string(),
                state: group.state().kafka_name(),
                group_type: "consumer",
            })
            .collect()
    }

    /// Removes members whose session or revocation time ran out.
    pub(super) fn tick_consumer_groups(&self, now_ms: u64) {
        for group in self.coordinator.consumer_groups.borrow_mut().values_mut() {
            if group
                .next_deadline_ms()
                .is_some_and(|deadline| deadline <= now_ms)
            {
                for fenced in group.tick(now_ms) {
                    tracing::info!(shard = %self.id, group = %group.id(),
                        member = %fenced.member_id, reason = fenced.reason,
                        "consumer group member fenced");
                }
            }
        }
    }
}
