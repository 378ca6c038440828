//! Cluster mode: what the group coordinator and the transaction coordinator share as they
//! follow the leadership of their topic's partitions (`__consumer_offsets`,
//! `__transaction_state`, both topics of the metadata log): which partitions a shard loads
//! or serves, under which leader role, and how a coordinator writes to a partition it leads.
//!
//! Owns: `Served`, `ServedPartitions` (per coordinator, per shard) and the coordinator
//! append (`append_as_coordinator`). May import: `super::replicas`, `crate::storage`.
//! Runs on: the shard owning the partitions.
//! Invariants: a partition is `Served` only under the leader role (generation) this shard
//! holds for it; a coordinator write completes only once every ISR member has it (the high
//! watermark passed it), as Kafka's coordinators append with acks=all.

use super::Shard;
use crate::model::records::{Record, read_records};
use crate::model::{ErrorCode, Offset, RecordBatchHeader, TopicPartition};
use crate::storage::{PartitionLog, ReadLimits};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// How often a shard compares its leader roles with the partitions its coordinators serve.
pub(super) const LEADERSHIP_POLL: Duration = Duration::from_millis(50);

/// Bytes read per call while a coordinator replays its partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// How far a coordinator's replay reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ReplayEnd {
    /// Up to the high watermark (single-broker start: what was acknowledged).
    HighWatermark,
    /// Up to the log end (a new leader: its log is the partition's from now on, and
    /// followers truncate to it).
    LogEnd,
}

/// A coordinator topic's partition this shard leads, under the leader role `generation`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Served {
    Loading { generation: u64 },
    Serving { generation: u64 },
}

impl Served {
    pub(super) fn generation(self) -> u64 {
        match self {
            Served::Loading { generation } | Served::Serving { generation } => generation,
        }
    }
}

/// The partitions of one coordinator topic that a shard loads or serves, by number.
#[derive(Default)]
pub(super) struct ServedPartitions {
    partitions: RefCell<HashMap<i32, Served>>,
}

/// One leadership round's work for a coordinator: partitions to unload, then partitions to
/// load (already marked `Loading`).
pub(super) struct LeadershipChanges {
    pub(super) unload: Vec<i32>,
    pub(super) load: Vec<PartitionToLoad>,
}

pub(super) struct PartitionToLoad {
    pub(super) partition: TopicPartition,
    pub(super) generation: u64,
    pub(super) log: Rc<PartitionLog>,
}

impl ServedPartitions {
    pub(super) fn get(&self, index: i32) -> Option<Served> {
        self.partitions.borrow().get(&index).copied()
    }

    pub(super) fn any_loading(&self) -> bool {
        self.partitions
            .borrow()
            .values()
            .any(|served| matches!(served, Served::Loading { .. }))
    }

    /// Ends a load started under `generation`: true (and the partition is served) if the
    /// shard still leads it under that role and nothing unloaded it meanwhile. A failed
    /// load (`complete == false`) is forgotten, so the next round loads it again.
    pub(super) fn finish_load(
        &self,
        shard: &Shard,
        load: &PartitionToLoad,
        complete: bool,
    ) -> bool {
        let index = load.partition.partition;
        let loading = Served::Loading {
            generation: load.generation,
        };
        let mut partitions = self.partitions.borrow_mut();
        if partitions.get(&index) != Some(&loading) {
            return false;
        }
        if !complete {
            partitions.remove(&index);
            return false;
        }
        if shard.replicas.leader_generation(&load.partition) != Some(load.generation) {
            return false; // the next round unloads it
        }
        partitions.insert(
            index,
            Served::Serving {
                generation: load.generation,
            },
        );
        true
    }
}

impl Shard {
    /// Compares this shard's leader roles of `topic`'s partitions (`copy_partitions`: the
    /// partition count of the local copy of the metadata log's topic, `None` without one)
    /// with what `served` holds: stale entries are removed and returned for unloading;
    /// newly led partitions are marked `Loading` and returned for loading.
    pub(super) fn leadership_changes(
        &self,
        topic: &str,
        copy_partitions: Option<i32>,
        served: &ServedPartitions,
    ) -> LeadershipChanges {
        let mut partitions = served.partitions.borrow_mut();
        let unload: Vec<i32> = partitions
            .iter()
            .filter(|(index, entry)| {
                let partition = TopicPartition::new(topic, **index);
                copy_partitions.is_none()
                    || self.replicas.leader_generation(&partition) != Some(entry.generation())
            })
            .map(|(index, _)| *index)
            .collect();
        for index in &unload {
            partitions.remove(index);
        }
        let mut load = Vec::new();
        for index in 0..copy_partitions.unwrap_or(0) {
            let partition = TopicPartition::new(topic, index);
            if self.owner_of(&partition) != self.id || partitions.contains_key(&index) {
                continue;
            }
            let Some(generation) = self.replicas.leader_generation(&partition) else {
                continue;
            };
            let Some(log) = self.log(&partition) else {
                continue;
            };
            partitions.insert(index, Served::Loading { generation });
            load.push(PartitionToLoad {
                partition,
                generation,
                log,
            });
        }
        LeadershipChanges { unload, load }
    }

    /// Whether this shard serves `partition` of a coordinator topic now: the generation it
    /// serves it under, COORDINATOR_LOAD_IN_PROGRESS while it loads, else NOT_COORDINATOR.
    pub(super) fn coordinator_status(
        &self,
        partition: &TopicPartition,
        served: &ServedPartitions,
    ) -> Result<u64, ErrorCode> {
        let leading = self.replicas.leader_generation(partition);
        match (served.get(partition.partition), leading) {
            (Some(Served::Serving { generation }), Some(current)) if generation == current => {
                Ok(generation)
            }
            (Some(Served::Loading { generation }), Some(current)) if generation == current => {
                Err(ErrorCode::CoordinatorLoadInProgress)
            }
            _ => Err(ErrorCode::NotCoordinator),
        }
    }

    /// Reads `partition` from its log start to `end` and hands each batch's header and
    /// records to `apply`. A read that fails, or a batch whose header does not parse, stops
    /// it with `Err` (logged): the replay is incomplete. A batch whose records do not
    /// decode is skipped (logged).
    pub(super) async fn replay_coordinator_log(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        end: ReplayEnd,
        mut apply: impl FnMut(&RecordBatchHeader, Vec<Record<'_>>),
    ) -> Result<(), ()> {
        let mut offset = log.log_start_offset();
        loop {
            let limit = match end {
                ReplayEnd::HighWatermark => log.high_watermark(),
                ReplayEnd::LogEnd => log.log_end_offset(),
            };
            if offset >= limit {
                return Ok(());
            }
            let read = match end {
                ReplayEnd::HighWatermark => log.read(offset, REPLAY_READ_BYTES, true).await,
                ReplayEnd::LogEnd => {
                    log.read_for_replica(offset, ReadLimits::bytes(REPLAY_READ_BYTES, true))
                        .await
                }
            };
            let read = match read {
                Ok(read) if !read.batches.is_empty() => read,
                Ok(_) => return Ok(()),
                Err(error) => {
                    tracing::error!(shard = %self.id, %partition, %error, "cannot replay coordinator log");
                    return Err(());
                }
            };
            for batch in &read.batches {
                let Ok(header) = RecordBatchHeader::view(batch) else {
                    tracing::error!(shard = %self.id, %partition, %offset, "unparsable batch header in coordinator log");
                    return Err(());
                };
                offset = Offset(header.next_offset());
                match read_records(batch) {
                    Ok(decoded) => apply(header, decoded),
                    Err(error) => {
                        tracing::error!(shard = %self.id, %partition, %error, "skipping unreadable batch in coordinator log");
                    }
                }
            }
        }
    }

    /// Appends a coordinator's `batch` to `partition` and waits until it is synced. For a
    /// partition of the metadata log's topic (`cluster_copy`) only its leader writes: with
    /// the leader epoch, refused below min.insync.replicas (before anything is appended),
    /// complete once every ISR member has it too, within `timeout`.
    /// Errors as Kafka's coordinators map a failed append: NOT_COORDINATOR when leadership
    /// or the log is lost (the client looks for the coordinator again),
    /// COORDINATOR_NOT_AVAILABLE when it should retry here.
    pub(super) async fn append_as_coordinator(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        batch: Bytes,
        cluster_copy: bool,
        timeout: Duration,
    ) -> Result<Offset, ErrorCode> {
        if self.disk.is_full() {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let leader_epoch = self
            .replicas
            .leader_epoch_for_append(partition, cluster_copy)
            .map_err(|_| ErrorCode::NotCoordinator)?
            .unwrap_or(0);
        self.replicas
            .check_acks_all(partition)
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        let generation = self.replicas.leader_generation(partition);
        let appended = log
            .append(batch, leader_epoch, crate::shard::now_ms())
            .await
            .map_err(|error| {
                tracing::error!(shard = %self.id, %partition, %error, "coordinator append failed");
                ErrorCode::CoordinatorNotAvailable
            })?;
        self.replicas.leader_appended(partition, log);
        log.wait_synced(appended.last_offset)
            .await
            .map_err(|error| {
                tracing::error!(shard = %self.id, %partition, %error, "coordinator sync failed");
                ErrorCode::CoordinatorNotAvailable
            })?;
        self.wait_replicated_within(partition, log, appended.last_offset, generation, timeout)
            .await
            .map_err(|code| match code {
                ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => {
                    ErrorCode::NotCoordinator
                }
                _ => ErrorCode::CoordinatorNotAvailable,
            })?;
        Ok(appended.last_offset)
    }
}
