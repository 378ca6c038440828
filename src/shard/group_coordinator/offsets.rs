//! Committed offsets on the coordinator shard: OffsetCommit and TxnOffsetCommit (validated
//! against the group, written to `__consumer_offsets`, applied once synced) and OffsetFetch.
//!
//! Invariant: a group partition's committed offset is the one written last to the log. Commits
//! of one client arrive in request order (the handler enqueues them in its first stage) and
//! are appended in that order, but their syncs may complete in any order, so a commit is
//! applied only if no commit written later to the log has been applied already.

use super::super::messages::*;
use super::super::{Shard, now_ms};
use super::OffsetKey;
use crate::group::Group;
use crate::group::consumer::CommitSource;
use crate::group::records::{self, CommittedOffset};
use crate::model::ErrorCode;
use crate::model::records::{BatchOrigin, NewRecord};
use std::rc::Rc;

impl Shard {
    pub(in crate::shard) async fn commit_offsets(
        self: &Rc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        api_version: i16,
        entries: Vec<OffsetCommitEntry>,
    ) -> Vec<ErrorCode> {
        let source = CommitSource::OffsetCommit { api_version };
        let verdict =
            self.validate_group_commit(group_id, member_id, instance_id, generation_id, source);
        if verdict.is_error() {
            return vec![verdict; entries.len()];
        }
        let (errors, accepted) = self.check_commit_entries(&entries);
        if accepted.is_empty() {
            return errors;
        }
        match self
            .write_commit_records(group_id, &accepted, BatchOrigin::NONE)
            .await
        {
            Ok(written_at) => {
                self.apply_commits(group_id, accepted, written_at);
                errors
            }
            Err(error) => errors
                .into_iter()
                .map(|e| if e.is_error() { e } else { error })
                .collect(),
        }
    }

    /// Makes synced commits visible, unless a commit written later to the log (at a higher
    /// offset than `written_at`) already set that partition's offset.
    fn apply_commits(
        &self,
        group_id: &str,
        accepted: Vec<(OffsetKey, CommittedOffset)>,
        written_at: i64,
    ) {
        let mut offsets = self.coordinator.offsets.borrow_mut();
        let mut positions = self.coordinator.offsets_written_at.borrow_mut();
        let group_offsets = offsets.entry(group_id.to_string()).or_default();
        let group_positions = positions.entry(group_id.to_string()).or_default();
        for (key, value) in accepted {
            if group_positions.get(&key).is_some_and(|&at| at > written_at) {
                continue;
            }
            group_positions.insert(key.clone(), written_at);
            group_offsets.insert(key, value);
        }
    }

    /// TxnOffsetCommit: validated like a commit when the member is named (v3+), written in
    /// a transactional batch, and held as pending until the transaction's marker.
    pub(in crate::shard) async fn txn_commit_offsets(
        self: &Rc<Self>,
        group_id: &str,
        origin: BatchOrigin,
        member: Option<(&str, Option<&str>, i32)>,
        entries: Vec<OffsetCommitEntry>,
    ) -> Vec<ErrorCode> {
        if group_id.is_empty() {
            return vec![ErrorCode::InvalidGroupId; entries.len()];
        }
        if let Some((member_id, instance_id, generation_id)) = member {
            let verdict = self.validate_group_commit(
                group_id,
                member_id,
                instance_id,
                generation_id,
                CommitSource::TxnOffsetCommit,
            );
            if verdict.is_error() {
                return vec![verdict; entries.len()];
            }
        } else if !self.coordinator.groups.borrow().contains_key(group_id) {
            let limits = self.coordinator.limits;
            self.coordinator
                .groups
                .borrow_mut()
                .insert(group_id.to_string(), Group::new(group_id, limits));
        }
        let (errors, accepted) = self.check_commit_entries(&entries);
        if accepted.is_empty() {
            return errors;
        }
        if let Err(error) = self.write_commit_records(group_id, &accepted, origin).await {
            return errors
                .into_iter()
                .map(|e| if e.is_error() { e } else { error })
                .collect();
        }
        let mut pending = self.coordinator.pending_txn_offsets.borrow_mut();
        pending
            .entry(origin.producer_id)
            .or_default()
            .entry(group_id.to_string())
            .or_default()
            .extend(accepted);
        errors
    }

    /// A transaction marker reached this shard's `__consumer_offsets` partition: the
    /// producer's pending offsets become committed (COMMIT) or are dropped (ABORT).
    pub(in crate::shard) fn resolve_txn_offsets(&self, producer_id: i64, commit: bool) {
        let Some(groups) = self
            .coordinator
            .pending_txn_offsets
            .borrow_mut()
            .remove(&producer_id)
        else {
            return;
        };
        if !commit {
            return;
        }
        let mut offsets = self.coordinator.offsets.borrow_mut();
        for (group, committed) in groups {
            offsets.entry(group).or_default().extend(committed);
        }
    }

    /// Partitions of `group_id` with transactional offsets not yet committed or aborted.
    pub(in crate::shard) fn unstable_partitions(&self, group_id: &str) -> Vec<OffsetKey> {
        self.coordinator
            .pending_txn_offsets
            .borrow()
            .values()
            .filter_map(|groups| groups.get(group_id))
            .flat_map(|offsets| offsets.keys().cloned())
            .collect()
    }

    fn validate_group_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        source: CommitSource,
    ) -> ErrorCode {
        if group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        if let Some(verdict) =
            self.validate_consumer_commit(group_id, member_id, generation_id, source)
        {
            return verdict;
        }
        let mut groups = self.coordinator.groups.borrow_mut();
        match groups.get(group_id) {
            Some(group) => group.validate_commit(member_id, instance_id, generation_id),
            None if generation_id < 0 => {
                if !self.classic_group_fits(&groups, group_id) {
                    return ErrorCode::GroupMaxSizeReached;
                }
                let limits = self.coordinator.limits;
                groups.insert(group_id.to_string(), Group::new(group_id, limits));
                ErrorCode::None
            }
            None => ErrorCode::IllegalGeneration,
        }
    }

    /// Per-entry checks (known partition, metadata size); returns errors in order and the
    /// accepted offsets.
    fn check_commit_entries(
        &self,
        entries: &[OffsetCommitEntry],
    ) -> (Vec<ErrorCode>, Vec<(OffsetKey, CommittedOffset)>) {
        let catalog = self.catalog();
        let metadata_max = self.config.group.offset_metadata_bytes_max;
        let timestamp = now_ms();
        let mut errors = Vec::with_capacity(entries.len());
        let mut accepted = Vec::new();
        for entry in entries {
            let metadata = entry.metadata.clone().unwrap_or_default();
            let known = catalog
                .topic(&entry.topic)
                .is_some_and(|t| entry.partition >= 0 && entry.partition < t.partitions);
            let error = if !known {
                ErrorCode::UnknownTopicOrPartition
            } else if metadata.len() > metadata_max {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                ErrorCode::None
            };
            if !error.is_error() {
                accepted.push((
                    (entry.topic.clone(), entry.partition),
                    CommittedOffset {
                        offset: entry.offset,
                        leader_epoch: entry.leader_epoch,
                        metadata,
                        commit_timestamp_ms: timestamp,
                    },
                ));
            }
            errors.push(error);
        }
        (errors, accepted)
    }

    async fn write_commit_records(
        &self,
        group_id: &str,
        accepted: &[(OffsetKey, CommittedOffset)],
        origin: BatchOrigin,
    ) -> Result<i64, ErrorCode> {
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = accepted
            .iter()
            .map(|((topic, partition), value)| {
                (
                    records::commit_key(group_id, topic, *partition),
                    records::commit_value(value),
                )
            })
            .collect();
        let batch: Vec<NewRecord<'_>> = encoded
            .iter()
            .map(|(key, value)| NewRecord {
                key: Some(key),
                value: Some(value),
            })
            .collect();
        // Offsets expiry leaves a group with a commit in flight alone (Kafka skips offsets
        // with pending commits), so it never deletes what is being acknowledged.
        *self
            .coordinator
            .commits_in_flight
            .borrow_mut()
            .entry(group_id.to_string())
            .or_default() += 1;
        let written = self
            .append_offsets_records_from(group_id, &batch, origin)
            .await;
        let mut in_flight = self.coordinator.commits_in_flight.borrow_mut();
        if let Some(count) = in_flight.get_mut(group_id) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(group_id);
            }
        }
        written
    }

    /// After tombstones for `keys` of `group_id` were written at log offset `written_at`:
    /// forgets those keys, except where a commit written later to the log was applied
    /// meanwhile (it follows the tombstone in the log, so it stands), and records the
    /// tombstone's position so a commit written before it and applied later is not.
    pub(in crate::shard) fn apply_tombstones(
        &self,
        group_id: &str,
        keys: &[OffsetKey],
        written_at: i64,
    ) {
        let mut offsets = self.coordinator.offsets.borrow_mut();
        let mut positions = self.coordinator.offsets_written_at.borrow_mut();
        let group_positions = positions.entry(group_id.to_string()).or_default();
        if let Some(stored) = offsets.get_mut(group_id) {
            for key in keys {
                if group_positions.get(key).is_some_and(|&at| at > written_at) {
                    continue;
                }
                group_positions.insert(key.clone(), written_at);
                stored.remove(key);
            }
            if stored.is_empty() {
                offsets.remove(group_id);
            }
        }
    }

    pub(in crate::shard) fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<FetchedOffset> {
        let offsets = self.coordinator.offsets.borrow();
        let stored = offsets.get(group_id);
        let fetched =
            |(topic, partition): (String, i32), value: Option<&CommittedOffset>| FetchedOffset {
                topic,
                partition,
                offset: value.map_or(-1, |v| v.offset),
                leader_epoch: value.map_or(-1, |v| v.leader_epoch),
                metadata: value.map(|v| v.metadata.clone()).unwrap_or_default(),
                error: ErrorCode::None,
            };
        match partitions {
            Some(wanted) => wanted
                .into_iter()
                .map(|key| {
                    let value = stored.and_then(|s| s.get(&key));
                    fetched(key, value)
                })
                .collect(),
            None => stored
                .map(|s| {
                    s.iter()
                        .map(|(key, value)| fetched(key.clone(), Some(value)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
