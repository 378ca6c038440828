//! Cluster mode: group coordinators follow the leadership of the metadata log's
//! `__consumer_offsets` partitions (Kafka's GroupCoordinator onElection / onResignation).
//!
//! Every `LEADERSHIP_POLL`, each shard compares the leader roles of its partitions of that
//! topic (`shard::replicas`, identified by their generation) with what it serves:
//! - a partition it now leads is loaded (replayed to its log end) and then served; group
//!   requests meanwhile get COORDINATOR_LOAD_IN_PROGRESS;
//! - a partition it no longer leads, or leads under a new generation, is unloaded: its groups,
//!   offsets and parked JoinGroup / SyncGroup requests are dropped (those get
//!   COORDINATOR_NOT_AVAILABLE), and requests for its groups get NOT_COORDINATOR, so clients
//!   look for the coordinator again.
//!
//! Writes to a served partition carry the leader epoch and complete on the high watermark
//! (`append_offsets_records_from`), so a commit the client saw acknowledged is on every ISR
//! member and survives the leader's loss.

use super::replay::{ReplayEnd, Replayed};
use super::{OFFSETS_TOPIC, offsets_partition_for};
use crate::model::{ErrorCode, TopicPartition};
use crate::shard::Shard;
use crate::shard::messages::GroupOp;
use std::rc::Rc;
use std::time::Duration;

/// How often a shard compares its leader roles with the partitions it serves.
const LEADERSHIP_POLL: Duration = Duration::from_millis(50);

/// A `__consumer_offsets` partition this shard leads, under the leader role `generation`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(in crate::shard) enum Served {
    Loading { generation: u64 },
    Serving { generation: u64 },
}

impl Served {
    fn generation(self) -> u64 {
        match self {
            Served::Loading { generation } | Served::Serving { generation } => generation,
        }
    }
}

/// The error a group request gets when this shard does not serve its group now. While the
/// partition loads, SyncGroup gets REBALANCE_IN_PROGRESS and Heartbeat no error, as Kafka
/// answers them (older clients, the Java one among them, treat COORDINATOR_LOAD_IN_PROGRESS
/// there as fatal).
fn refuse(op: GroupOp, code: ErrorCode) {
    use crate::shard::messages::GroupDescription;
    let loading = code == ErrorCode::CoordinatorLoadInProgress;
    let _ = match op {
        GroupOp::Join { input, reply, .. } => {
            reply.send(crate::group::JoinOutcome::error(code, &input.member_id))
        }
        GroupOp::Sync { reply, .. } => reply.send(crate::group::SyncOutcome::error(if loading {
            ErrorCode::RebalanceInProgress
        } else {
            code
        })),
        GroupOp::Heartbeat { reply, .. } => {
            reply.send(if loading { ErrorCode::None } else { code })
        }
        GroupOp::Delete { reply, .. } => reply.send(code),
        GroupOp::Leave { reply, .. } | GroupOp::DeleteOffsets { reply, .. } => {
            reply.send(Err(code))
        }
        GroupOp::CommitOffsets { entries, reply, .. }
        | GroupOp::TxnCommitOffsets { entries, reply, .. } => reply.send(vec![code; entries.len()]),
        GroupOp::FetchOffsets { reply, .. } => reply.send(Err(code)),
        GroupOp::Describe { group_id, reply } => reply.send(GroupDescription {
            group_id,
            error: code,
            state: crate::group::GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        }),
        GroupOp::List { reply } => reply.send((Vec::new(), code)),
    };
}

impl Shard {
    /// Answers `op` with the error its group gets here and returns `None`, or gives it back
    /// to be served. Single-broker mode serves every group (the shard owns its partition).
    pub(in crate::shard) fn admit_group_op(&self, op: GroupOp) -> Option<GroupOp> {
        let group_id = match &op {
            GroupOp::List { .. } => return Some(op),
            GroupOp::Join { group_id, .. }
            | GroupOp::Sync { group_id, .. }
            | GroupOp::Heartbeat { group_id, .. }
            | GroupOp::Leave { group_id, .. }
            | GroupOp::CommitOffsets { group_id, .. }
            | GroupOp::FetchOffsets { group_id, .. }
            | GroupOp::Describe { group_id, .. }
            | GroupOp::Delete { group_id, .. }
            | GroupOp::DeleteOffsets { group_id, .. }
            | GroupOp::TxnCommitOffsets { group_id, .. } => group_id,
        };
        match self.group_served_here(group_id) {
            Ok(()) => Some(op),
            Err(code) => {
                refuse(op, code);
                None
            }
        }
    }

    /// The partition count of the local copy of the metadata log's `__consumer_offsets`;
    /// `None` while there is no such copy (or only this broker's own topic of that name).
    pub(in crate::shard) fn offsets_topic_copy_partitions(&self) -> Option<i32> {
        self.catalog()
            .topic(OFFSETS_TOPIC)
            .filter(|meta| meta.cluster)
            .map(|meta| meta.partitions)
    }

    /// Whether one of this shard's `__consumer_offsets` partitions is loading.
    pub(in crate::shard) fn offsets_partitions_loading(&self) -> bool {
        self.coordinator
            .served
            .borrow()
            .values()
            .any(|served| matches!(served, Served::Loading { .. }))
    }

    /// Cluster mode: the leader-role generation under which this shard serves `group_id`'s
    /// partition now (`None`: not served, or single-broker mode). A group write computed
    /// under one generation is not written under another (the partition was reloaded).
    pub(in crate::shard) fn group_serving_generation(&self, group_id: &str) -> Option<u64> {
        if !self.config.cluster.cluster_mode() {
            return None;
        }
        let partition = self.group_coordinator_partition(group_id);
        match self.coordinator.served.borrow().get(&partition.partition) {
            Some(Served::Serving { generation }) => Some(*generation),
            _ => None,
        }
    }

    /// Whether this shard coordinates `group_id` now: NOT_COORDINATOR unless (cluster mode)
    /// this broker leads the group's partition and has loaded it,
    /// COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub(in crate::shard) fn group_served_here(&self, group_id: &str) -> Result<(), ErrorCode> {
        if !self.config.cluster.cluster_mode() {
            return Ok(());
        }
        let partition = self.group_coordinator_partition(group_id);
        if self.offsets_topic_copy_partitions().is_none() {
            return Err(ErrorCode::NotCoordinator);
        }
        let leading = self.replicas.leader_generation(&partition);
        let served = self
            .coordinator
            .served
            .borrow()
            .get(&partition.partition)
            .copied();
        match (served, leading) {
            (Some(Served::Serving { generation }), Some(current)) if generation == current => {
                Ok(())
            }
            (Some(Served::Loading { generation }), Some(current)) if generation == current => {
                Err(ErrorCode::CoordinatorLoadInProgress)
            }
            _ => Err(ErrorCode::NotCoordinator),
        }
    }

    /// Cluster mode: starts the task that loads and unloads partitions as leadership moves.
    pub(in crate::shard) fn spawn_coordinator_leadership(self: &Rc<Self>) {
        if !self.config.cluster.cluster_mode() {
            return;
        }
        let shard = self.clone();
        glommio::spawn_local(async move {
            while !crate::shard::shutdown::shutdown_requested() {
                shard.follow_offsets_leadership();
                glommio::timer::sleep(LEADERSHIP_POLL).await;
            }
        })
        .detach();
    }

    /// One round: unload what this shard no longer leads, start loading what it newly leads.
    fn follow_offsets_leadership(self: &Rc<Self>) {
        let cluster_copy = self.offsets_topic_copy_partitions();
        let stale: Vec<i32> = self
            .coordinator
            .served
            .borrow()
            .iter()
            .filter(|(index, served)| {
                let partition = TopicPartition::new(OFFSETS_TOPIC, **index);
                cluster_copy.is_none()
                    || self.replicas.leader_generation(&partition) != Some(served.generation())
            })
            .map(|(index, _)| *index)
            .collect();
        for index in stale {
            self.coordinator.served.borrow_mut().remove(&index);
            self.unload_offsets_partition(index);
        }
        let Some(partitions) = cluster_copy else {
            return;
        };
        for index in 0..partitions {
            let partition = TopicPartition::new(OFFSETS_TOPIC, index);
            if self.owner_of(&partition) != self.id
                || self.coordinator.served.borrow().contains_key(&index)
            {
                continue;
            }
            let Some(generation) = self.replicas.leader_generation(&partition) else {
                continue;
            };
            let Some(log) = self.log(&partition) else {
                continue;
            };
            self.coordinator
                .served
                .borrow_mut()
                .insert(index, Served::Loading { generation });
            let shard = self.clone();
            glommio::spawn_local(async move {
                let mut replayed = Replayed::default();
                let complete = shard
                    .replay_offsets_partition(&partition, &log, ReplayEnd::LogEnd, &mut replayed)
                    .await;
                let mut served = shard.coordinator.served.borrow_mut();
                if complete.is_err() {
                    // Not served from a partial replay: the next round loads it again.
                    if served.get(&index) == Some(&Served::Loading { generation }) {
                        served.remove(&index);
                    }
                    return;
                }
                let still_leading = served.get(&index) == Some(&Served::Loading { generation })
                    && shard.replicas.leader_generation(&partition) == Some(generation);
                if !still_leading {
                    // The next round unloads (nothing of this load was installed).
                    return;
                }
                served.insert(index, Served::Serving { generation });
                drop(served);
                shard.install_replayed(replayed);
                tracing::info!(shard = %shard.id, %partition, "group coordinator loaded the partition it leads");
            })
            .detach();
        }
    }

    /// Drops the state of every group whose `__consumer_offsets` partition is `index`.
    fn unload_offsets_partition(&self, index: i32) {
        let partitions = self.offsets_topic_partitions();
        let here = |group: &str| offsets_partition_for(group, partitions) == index;
        let coordinator = &self.coordinator;
        let mut dropped = 0usize;
        coordinator.groups.borrow_mut().retain(|group, _| {
            let keep = !here(group);
            dropped += usize::from(!keep);
            keep
        });
        coordinator
            .offsets
            .borrow_mut()
            .retain(|group, _| !here(group));
        coordinator
            .offsets_written_at
            .borrow_mut()
            .retain(|group, _| !here(group));
        coordinator
            .pending_txn_offsets
            .borrow_mut()
            .retain(|_, groups| {
                groups.retain(|group, _| !here(group));
                !groups.is_empty()
            });
        coordinator
            .join_waiters
            .borrow_mut()
            .retain(|_, (group, _)| !here(group));
        coordinator
            .sync_waiters
            .borrow_mut()
            .retain(|_, (group, _)| !here(group));
        tracing::info!(shard = %self.id, partition = index, groups = dropped, "group coordinator unloaded a partition it no longer leads");
    }
}
