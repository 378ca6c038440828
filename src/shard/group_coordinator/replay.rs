//! Rebuilding groups and committed offsets from `__consumer_offsets`: a partition's records
//! are replayed into a `Replayed` (nothing shared changes meanwhile), which is then installed
//! in one step. Single-broker mode replays every owned partition at start; in cluster mode a
//! partition is replayed when this broker becomes its leader (`leadership`).

use super::GroupOffsets;
use crate::group::consumer::records as consumer_records;
use crate::group::consumer::{ConsumerGroup, GroupRecords};
use crate::group::records::{self, OffsetsRecord};
use crate::group::{Group, GroupSnapshot, OFFSETS_TOPIC};
use crate::model::records::{Record, control_record_commits};
use crate::model::{RecordBatchHeader, TopicPartition};
use crate::shard::Shard;
use crate::storage::PartitionLog;
use std::collections::HashMap;
use std::rc::Rc;

pub(super) use crate::shard::coordinator_leadership::ReplayEnd;

/// What replaying some `__consumer_offsets` partitions rebuilt, not yet installed.
#[derive(Default)]
pub(super) struct Replayed {
    offsets: HashMap<String, GroupOffsets>,
    /// Transactional offsets per producer id and group, waiting for their marker.
    pending_txn_offsets: HashMap<i64, HashMap<String, GroupOffsets>>,
    /// The last group metadata record of each group (`None`: a tombstone).
    snapshots: HashMap<String, Option<GroupSnapshot>>,
    /// The live records of each KIP-848 consumer group (tombstones remove keys).
    consumer_records: HashMap<String, GroupRecords>,
    records: usize,
}

impl Replayed {
    /// One batch: plain records apply now; a transactional batch's offsets wait for their
    /// producer's marker; a marker resolves them.
    fn batch(&mut self, header: &RecordBatchHeader, decoded: Vec<Record<'_>>) {
        self.records += decoded.len();
        let producer_id = header.producer_id.get();
        if header.is_control() {
            for record in decoded {
                if let Some(commit) = record.key.and_then(control_record_commits) {
                    self.resolve(producer_id, commit);
                }
            }
            return;
        }
        for record in decoded {
            let Some(key) = record.key else { continue };
            if let Some(group) = consumer_records::group_of(key) {
                if !header.is_transactional() {
                    let stored = self.consumer_records.entry(group).or_default();
                    match record.value {
                        Some(value) => stored.insert(key.to_vec(), value.to_vec()),
                        None => stored.remove(key),
                    };
                }
                continue;
            }
            match records::decode(key, record.value) {
                Ok(OffsetsRecord::Commit {
                    group,
                    topic,
                    partition,
                    value,
                }) if header.is_transactional() => {
                    if let Some(value) = value {
                        self.pending_txn_offsets
                            .entry(producer_id)
                            .or_default()
                            .entry(group)
                            .or_default()
                            .insert((topic, partition), value);
                    }
                }
                Ok(OffsetsRecord::Commit {
                    group,
                    topic,
                    partition,
                    value,
                }) => match value {
                    Some(value) => {
                        self.offsets
                            .entry(group)
                            .or_default()
                            .insert((topic, partition), value);
                    }
                    None => {
                        if let Some(stored) = self.offsets.get_mut(&group) {
                            stored.remove(&(topic, partition));
                            if stored.is_empty() {
                                self.offsets.remove(&group);
                            }
                        }
                    }
                },
                Ok(OffsetsRecord::Group { group, value }) if !header.is_transactional() => {
                    self.snapshots.insert(group, value);
                }
                Ok(OffsetsRecord::Group { .. }) => {}
                Err(error) => tracing::warn!(%error, "skipping unreadable group record"),
            }
        }
    }

    fn resolve(&mut self, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if commit {
            for (group, committed) in groups {
                self.offsets.entry(group).or_default().extend(committed);
            }
        }
    }
}

impl Shard {
    /// Rebuilds groups and committed offsets from this broker's own `__consumer_offsets`
    /// partitions on this shard (single-broker mode). Runs at start, before any group
    /// request is served. Partitions of the metadata log's `__consumer_offsets` (cluster
    /// mode) are loaded when this broker leads them, not here.
    pub(in crate::shard) async fn load_groups(self: &Rc<Self>) {
        let own_topic = self
            .catalog()
            .topic(OFFSETS_TOPIC)
            .is_some_and(|meta| !meta.cluster);
        // Cluster mode: groups live in the log's topic and load with leadership only.
        if !own_topic || self.config.cluster.cluster_mode() {
            return;
        }
        let partitions: Vec<(TopicPartition, Rc<PartitionLog>)> = self
            .owned_logs()
            .into_iter()
            .filter(|(tp, _)| tp.topic.as_str() == OFFSETS_TOPIC)
            .collect();
        let mut replayed = Replayed::default();
        for (partition, log) in partitions {
            // Single-broker start: what could be read is served, as before (the error is
            // logged).
            let _ = self
                .replay_offsets_partition(&partition, &log, ReplayEnd::HighWatermark, &mut replayed)
                .await;
        }
        self.install_replayed(replayed);
    }

    /// Replays one partition into `replayed`, from its log start to `end`. A read that
    /// fails (or a batch whose header does not parse) stops it with `Err`: the replay is
    /// incomplete.
    pub(super) async fn replay_offsets_partition(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        end: ReplayEnd,
        replayed: &mut Replayed,
    ) -> Result<(), ()> {
        let before = replayed.records;
        self.replay_coordinator_log(partition, log, end, |header, decoded| {
            replayed.batch(header, decoded)
        })
        .await?;
        let records = replayed.records - before;
        tracing::debug!(shard = %self.id, %partition, records, "group log replayed");
        Ok(())
    }

    /// Makes replayed groups and offsets current. The groups they belong to must have no
    /// state here (a start, or a partition unloaded before it was loaded again).
    pub(super) fn install_replayed(&self, replayed: Replayed) {
        let coordinator = &self.coordinator;
        {
            let mut pending = coordinator.pending_txn_offsets.borrow_mut();
            for (producer_id, groups) in replayed.pending_txn_offsets {
                let entry = pending.entry(producer_id).or_default();
                for (group, offsets) in groups {
                    entry.entry(group).or_default().extend(offsets);
                }
            }
        }
        let mut offsets = coordinator.offsets.borrow_mut();
        for (group, committed) in replayed.offsets {
            offsets.entry(group).or_default().extend(committed);
        }
        let now = super::monotonic_ms();
        let limits = coordinator.limits;
        let consumer_groups = self.install_consumer_groups(replayed.consumer_records, now);
        let mut groups = coordinator.groups.borrow_mut();
        for (group_id, snapshot) in replayed.snapshots {
            if consumer_groups.contains(&group_id) {
                continue;
            }
            match snapshot {
                Some(snapshot) => {
                    groups.insert(group_id, Group::restore(&snapshot, limits, now));
                }
                None => {
                    groups.remove(&group_id);
                }
            }
        }
        for group_id in offsets.keys() {
            if consumer_groups.contains(group_id) {
                continue;
            }
            groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id, limits));
        }
    }
}

impl Shard {
    /// Restores the consumer groups a replay found; returns their ids.
    fn install_consumer_groups(
        &self,
        replayed: HashMap<String, GroupRecords>,
        now_ms: u64,
    ) -> std::collections::HashSet<String> {
        let coordinator = &self.coordinator;
        let mut installed = std::collections::HashSet::new();
        let mut groups = coordinator.consumer_groups.borrow_mut();
        let mut persisted = coordinator.consumer_persisted.borrow_mut();
        for (group_id, stored) in replayed {
            if stored.is_empty() {
                continue;
            }
            let limits = self.consumer_limits_for(&group_id);
            match ConsumerGroup::restore(&group_id, &stored, limits, now_ms) {
                Ok(group) => {
                    tracing::info!(shard = %self.id, group = %group_id,
                        members = group.member_count(), epoch = group.group_epoch(),
                        "consumer group restored");
                    coordinator.groups.borrow_mut().remove(&group_id);
                    groups.insert(group_id.clone(), group);
                    persisted.insert(group_id.clone(), stored);
                    installed.insert(group_id);
                }
                Err(error) => {
                    tracing::warn!(shard = %self.id, group = %group_id, %error,
                        "consumer group records unreadable; group dropped");
                }
            }
        }
        installed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::CommittedOffset;
    use crate::model::records::{
        BatchOrigin, NewRecord, encode_batch_from, encode_control_batch, read_records,
    };

    const PRODUCER: i64 = 7;

    fn committed(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
        }
    }

    /// Feeds one encoded batch to `replayed` as the replay does.
    fn feed(replayed: &mut Replayed, batch: &[u8]) {
        let header = RecordBatchHeader::view(batch).expect("a batch header");
        replayed.batch(header, read_records(batch).expect("readable records"));
    }

    fn commit(group: &str, partition: i32, offset: Option<i64>, origin: BatchOrigin) -> Vec<u8> {
        let key = records::commit_key(group, "orders", partition);
        let value = offset.map(|offset| records::commit_value(&committed(offset)));
        let record = NewRecord {
            key: Some(&key),
            value: value.as_deref(),
        };
        encode_batch_from(&[record], 1, origin)
    }

    fn transactional() -> BatchOrigin {
        BatchOrigin {
            producer_id: PRODUCER,
            producer_epoch: 0,
            base_sequence: -1,
            transactional: true,
            control: false,
        }
    }

    fn offset_of(replayed: &Replayed, group: &str, partition: i32) -> Option<i64> {
        replayed
            .offsets
            .get(group)
            .and_then(|offsets| offsets.get(&("orders".to_string(), partition)))
            .map(|value| value.offset)
    }

    #[test]
    fn the_last_commit_wins_and_a_tombstone_removes_it() {
        let mut replayed = Replayed::default();
        feed(&mut replayed, &commit("g", 0, Some(5), BatchOrigin::NONE));
        feed(&mut replayed, &commit("g", 0, Some(9), BatchOrigin::NONE));
        feed(&mut replayed, &commit("g", 1, Some(3), BatchOrigin::NONE));
        assert_eq!(offset_of(&replayed, "g", 0), Some(9));
        feed(&mut replayed, &commit("g", 0, None, BatchOrigin::NONE));
        assert_eq!(offset_of(&replayed, "g", 0), None);
        assert_eq!(offset_of(&replayed, "g", 1), Some(3));
        feed(&mut replayed, &commit("g", 1, None, BatchOrigin::NONE));
        assert!(
            !replayed.offsets.contains_key("g"),
            "an emptied group is dropped"
        );
        assert_eq!(replayed.records, 5);
    }

    #[test]
    fn transactional_offsets_wait_for_their_marker() {
        let mut replayed = Replayed::default();
        feed(&mut replayed, &commit("g", 0, Some(4), BatchOrigin::NONE));
        feed(&mut replayed, &commit("g", 0, Some(8), transactional()));
        assert_eq!(
            offset_of(&replayed, "g", 0),
            Some(4),
            "pending until the marker"
        );
        assert!(replayed.pending_txn_offsets.contains_key(&PRODUCER));
        feed(
            &mut replayed,
            &encode_control_batch(PRODUCER, 0, true, 0, 1),
        );
        assert_eq!(offset_of(&replayed, "g", 0), Some(8), "COMMIT applies them");
        assert!(replayed.pending_txn_offsets.is_empty());
        feed(&mut replayed, &commit("g", 0, Some(12), transactional()));
        feed(
            &mut replayed,
            &encode_control_batch(PRODUCER, 0, false, 0, 1),
        );
        assert_eq!(offset_of(&replayed, "g", 0), Some(8), "ABORT drops them");
        assert!(replayed.pending_txn_offsets.is_empty());
        // A transaction still open at the end stays pending (its marker comes later).
        feed(&mut replayed, &commit("g", 1, Some(2), transactional()));
        assert!(replayed.pending_txn_offsets.contains_key(&PRODUCER));
        assert_eq!(offset_of(&replayed, "g", 1), None);
    }

    #[test]
    fn a_group_metadata_tombstone_is_replayed_as_none() {
        let mut replayed = Replayed::default();
        let key = records::group_key("g");
        let tombstone = NewRecord {
            key: Some(&key),
            value: None,
        };
        feed(
            &mut replayed,
            &encode_batch_from(&[tombstone], 1, BatchOrigin::NONE),
        );
        assert!(matches!(replayed.snapshots.get("g"), Some(None)));
    }

    #[test]
    fn consumer_group_records_replay_with_tombstones() {
        let (metadata_key, metadata) = consumer_records::metadata("cg", 3);
        let (target_key, target) = consumer_records::target_metadata("cg", 3);
        let batch = |records: &[(&[u8], Option<&[u8]>)]| {
            let records: Vec<NewRecord<'_>> = records
                .iter()
                .map(|(key, value)| NewRecord {
                    key: Some(key),
                    value: *value,
                })
                .collect();
            encode_batch_from(&records, 1, BatchOrigin::NONE)
        };
        let mut replayed = Replayed::default();
        feed(
            &mut replayed,
            &batch(&[
                (&metadata_key, Some(&metadata)),
                (&target_key, Some(&target)),
            ]),
        );
        // A classic commit of the same group still lands in the offsets.
        feed(&mut replayed, &commit("cg", 0, Some(9), BatchOrigin::NONE));
        feed(&mut replayed, &batch(&[(&target_key, None)]));
        let stored = &replayed.consumer_records["cg"];
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[&metadata_key], metadata);
        assert_eq!(offset_of(&replayed, "cg", 0), Some(9));
        assert!(replayed.snapshots.is_empty());
    }
}
