//! The shell around KIP-848 consumer groups (`group::consumer`): it hands each
//! ConsumerGroupHeartbeat the topics image from the catalog, keeps classic and consumer
//! groups of one id apart (an empty group of the other kind is replaced, a non-empty one
//! refuses with Kafka's error), drives session timeouts from the group timer, and checks
//! member epochs on offset commits.
//!
//! Persistence: after a change the group's records (Kafka's consumer-group record types,
//! `group::consumer::records`) that differ from the last written ones, and tombstones for
//! keys that are gone, are appended to the group's `__consumer_offsets` partition; the
//! heartbeat is answered once they are synced (or with the write's error). The replay
//! (`replay`) restores groups from them on start and on a coordinator move.

use super::super::Shard;
use crate::group::GroupState;
use crate::group::consumer::TopicId;
use crate::group::consumer::{
    AssignorKind, CommitSource, ConsumerGroup, ConsumerGroupDescription, ConsumerGroupLimits,
    GroupRecords, HeartbeatInput, HeartbeatOutcome, TopicsImage,
};
use crate::metadata::group_config;
use crate::model::ErrorCode;
use crate::model::records::NewRecord;
use crate::shard::messages::GroupListing;
use std::collections::{BTreeMap, BTreeSet};

/// Records to append: key and value (`None`: tombstone).
type RecordChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What changed between the last written records and the group's records now.
fn changes(old: Option<&GroupRecords>, new: &GroupRecords) -> RecordChanges {
    let empty = GroupRecords::new();
    let old = old.unwrap_or(&empty);
    let mut out: RecordChanges = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect();
    out.extend(
        old.keys()
            .filter(|key| !new.contains_key(*key))
            .map(|key| (key.clone(), None)),
    );
    out
}

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
    /// The limits group `group_id` runs with: the broker's, with its session timeout and
    /// heartbeat interval overrides (GROUP configs, `metadata::group_config`) laid over them.
    /// Read on every heartbeat, so a change applies from each member's next heartbeat on.
    pub(super) fn consumer_limits_for(&self, group_id: &str) -> ConsumerGroupLimits {
        let catalog = self.catalog();
        let effective =
            group_config::effective(catalog.group_configs(group_id), &self.config.group);
        ConsumerGroupLimits {
            session_timeout_ms: effective.session_timeout_ms,
            heartbeat_interval_ms: effective.heartbeat_interval_ms,
            ..self.coordinator.consumer_limits.clone()
        }
    }

    /// The topics consumers may subscribe to (internal topics are left out, as Kafka's
    /// regex subscriptions do), with their partitions' replica racks where known: in cluster
    /// mode the racks of each partition's replica brokers; on a single broker every
    /// partition's one replica is here, so all carry this broker's `cluster.rack` if set
    /// (rack-aware assignment then has nothing to prefer).
    fn consumer_topics_image(&self) -> TopicsImage {
        let mut image = TopicsImage::new();
        for topic in self.catalog().topics() {
            if !topic.internal && !topic.name.starts_with("__") {
                image.insert(&topic.name, topic.id, topic.partitions);
            }
        }
        let view = crate::quorum::view::shard_view();
        let Some(view) = view else {
            if let Some(rack) = &self.config.cluster.rack {
                let topics: Vec<(TopicId, i32)> =
                    image.iter().map(|(_, t)| (t.id, t.partitions)).collect();
                for (id, partitions) in topics {
                    for partition in 0..partitions {
                        image.set_partition_racks(id, partition, [rack.clone()].into());
                    }
                }
            }
            return image;
        };
        let racks: BTreeMap<i32, &str> = view
            .brokers
            .iter()
            .filter_map(|b| b.rack.as_deref().map(|rack| (b.node_id, rack)))
            .collect();
        for topic in view.topics.topics.values() {
            for (partition, state) in (0i32..).zip(&topic.partitions) {
                let partition_racks: BTreeSet<String> = state
                    .replicas
                    .iter()
                    .filter_map(|node| racks.get(node).map(|rack| rack.to_string()))
                    .collect();
                image.set_partition_racks(topic.id, partition, partition_racks);
            }
        }
        image
    }

    /// The group's changed records since the last write, recorded as written. `None` when
    /// nothing changed.
    fn consumer_changes(&self, group_id: &str) -> Option<RecordChanges> {
        let coordinator = &self.coordinator;
        let now = coordinator
            .consumer_groups
            .borrow()
            .get(group_id)
            .map(ConsumerGroup::records)
            .unwrap_or_default();
        let mut persisted = coordinator.consumer_persisted.borrow_mut();
        let changed = changes(persisted.get(group_id), &now);
        if now.is_empty() {
            persisted.remove(group_id);
        } else {
            persisted.insert(group_id.to_string(), now);
        }
        (!changed.is_empty()).then_some(changed)
    }

    /// Appends `changed` to the group's partition and waits until it is synced. On failure
    /// the next write sends the group's full state again.
    async fn write_consumer_changes(
        &self,
        group_id: &str,
        changed: RecordChanges,
    ) -> Result<(), ErrorCode> {
        let records: Vec<NewRecord<'_>> = changed
            .iter()
            .map(|(key, value)| NewRecord {
                key: Some(key),
                value: value.as_deref(),
            })
            .collect();
        let written = self.append_offsets_records(group_id, &records).await;
        if let Err(error) = written {
            tracing::warn!(shard = %self.id, group = %group_id, ?error,
                "consumer group records not written");
            self.coordinator
                .consumer_persisted
                .borrow_mut()
                .remove(group_id);
        }
        written
    }

    pub(super) async fn consumer_heartbeat(
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
        let mut replaced_classic = false;
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
                replaced_classic = true;
            }
        }
        if let Some(refused) = self.consumer_group_count_refusal(group_id, &input.member_id) {
            return refused;
        }
        let image = self.consumer_topics_image();
        let member_id = input.member_id.clone();
        let limits = self.consumer_limits_for(group_id);
        let mut outcome = {
            let mut groups = coordinator.consumer_groups.borrow_mut();
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| ConsumerGroup::new(group_id, limits.clone()));
            group.set_limits(limits);
            let outcome = group.heartbeat(input, &image, super::monotonic_ms());
            if group.is_empty() && group.group_epoch() == 0 {
                // A refused first join leaves no group behind.
                groups.remove(group_id);
            }
            outcome
        };
        let mut changed = self.consumer_changes(group_id).unwrap_or_default();
        if replaced_classic && !changed.is_empty() {
            tracing::info!(shard = %self.id, group = %group_id,
                "empty classic group becomes a consumer group");
            changed.push((crate::group::records::group_key(group_id), None));
        }
        if !changed.is_empty()
            && let Err(error) = self.write_consumer_changes(group_id, changed).await
        {
            outcome = HeartbeatOutcome::error(error, "", &member_id);
        }
        outcome
    }

    /// A heartbeat that would create a consumer group beyond `group.consumer_groups_max` on
    /// this shard is refused with GROUP_MAX_SIZE_REACHED; existing groups are not affected.
    fn consumer_group_count_refusal(
        &self,
        group_id: &str,
        member_id: &str,
    ) -> Option<HeartbeatOutcome> {
        let groups = self.coordinator.consumer_groups.borrow();
        let groups_max = self.config.group.consumer_groups_max;
        if groups.contains_key(group_id) || groups.len() < groups_max {
            return None;
        }
        tracing::warn!(shard = %self.id, group = %group_id, groups_max,
            "consumer group refused: the shard holds group.consumer_groups_max groups");
        Some(HeartbeatOutcome::error(
            ErrorCode::GroupMaxSizeReached,
            &format!(
                "The coordinator already holds {groups_max} consumer groups \
                 (group.consumer_groups_max)."
            ),
            member_id,
        ))
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
    /// empty one is dropped, with tombstones for its records, so the classic group can take
    /// its place).
    pub(super) async fn classic_join_allowed(&self, group_id: &str) -> Result<(), ErrorCode> {
        match self
            .drop_empty_consumer_group(group_id, "empty consumer group becomes a classic group")
            .await
        {
            Err(ErrorCode::NonEmptyGroup) => Err(ErrorCode::InconsistentGroupProtocol),
            Err(error) => Err(error),
            Ok(_) => Ok(()),
        }
    }

    /// Drops the consumer group `group_id` if it has no members, and writes tombstones for
    /// its records (Kafka's `ConsumerGroup.validateDeleteGroup` and
    /// `createGroupTombstoneRecords`). `Ok(false)`: there is no such consumer group;
    /// `Err(NON_EMPTY_GROUP)`: it has members; other errors are the write's.
    pub(super) async fn drop_empty_consumer_group(
        &self,
        group_id: &str,
        why: &'static str,
    ) -> Result<bool, ErrorCode> {
        {
            let mut groups = self.coordinator.consumer_groups.borrow_mut();
            match groups.get(group_id) {
                Some(group) if !group.is_empty() => return Err(ErrorCode::NonEmptyGroup),
                Some(_) => {
                    groups.remove(group_id);
                }
                None => return Ok(false),
            }
        }
        tracing::info!(shard = %self.id, group = %group_id, "{why}");
        if let Some(tombstones) = self.consumer_changes(group_id) {
            self.write_consumer_changes(group_id, tombstones).await?;
        }
        Ok(true)
    }

    /// An offset commit to a consumer group: `Some(verdict)`, or `None` when `group_id` is
    /// no consumer group. The commit's generation field carries the member epoch.
    pub(super) fn validate_consumer_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        source: CommitSource,
    ) -> Option<ErrorCode> {
        let groups = self.coordinator.consumer_groups.borrow();
        let group = groups.get(group_id)?;
        Some(
            group
                .validate_offset_commit(member_id, member_epoch, source)
                .err()
                .unwrap_or(ErrorCode::None),
        )
    }

    /// An OffsetFetch (v9+ names the member) from a consumer group: `Some(error)` when the
    /// member or its epoch is refused; `None` when it may fetch or `group_id` is no consumer
    /// group (classic groups do not check fetches).
    pub(super) fn validate_consumer_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<ErrorCode> {
        let groups = self.coordinator.consumer_groups.borrow();
        groups
            .get(group_id)?
            .validate_offset_fetch(member_id, member_epoch)
            .err()
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

    /// Removes members whose session or revocation time ran out, and writes the groups
    /// that changed.
    pub(super) async fn tick_consumer_groups(&self, now_ms: u64) {
        let mut touched = Vec::new();
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
                touched.push(group.id().to_string());
            }
        }
        for group_id in touched {
            if let Some(changed) = self.consumer_changes(&group_id) {
                // Logged inside; the next change writes the full state again.
                let _ = self.write_consumer_changes(&group_id, changed).await;
            }
        }
    }
}
