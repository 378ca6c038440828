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
use crate::model::ErrorCode;
use crate::shard::Shard;
use crate::shard::coordinator_leadership::LEADERSHIP_POLL;
use crate::shard::messages::GroupOp;
use std::rc::Rc;

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
        GroupOp::ConsumerHeartbeat { input, reply, .. } => reply.send(
            crate::group::consumer::HeartbeatOutcome::error(code, "", &input.member_id),
        ),
        GroupOp::ConsumerDescribe { reply, .. } => reply.send(Err(code)),
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
            not_found: None,
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
            | GroupOp::ConsumerHeartbeat { group_id, .. }
            | GroupOp::ConsumerDescribe { group_id, .. }
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
        self.coordinator.served.any_loading()
    }

    /// Cluster mode: the leader-role generation under which this shard serves `group_id`'s
    /// partition now (`None`: not served, or single-broker mode). A group write computed
    /// under one generation is not written under another (the partition was reloaded).
    pub(in crate::shard) fn group_serving_generation(&self, group_id: &str) -> Option<u64> {
        if !self.config.cluster.cluster_mode() {
            return None;
        }
        let partition = self.group_coordinator_partition(group_id);
        self.coordinator_status(&partition, &self.coordinator.served)
            .ok()
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
        self.coordinator_status(&partition, &self.coordinator.served)
            .map(|_| ())
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
        let changes = self.leadership_changes(
            OFFSETS_TOPIC,
            self.offsets_topic_copy_partitions(),
            &self.coordinator.served,
        );
        for index in changes.unload {
            self.unload_offsets_partition(index);
        }
        for load in changes.load {
            let shard = self.clone();
            glommio::spawn_local(async move {
                let mut replayed = Replayed::default();
                let complete = shard
                    .replay_offsets_partition(
                        &load.partition,
                        &load.log,
                        ReplayEnd::LogEnd,
                        &mut replayed,
                    )
                    .await
                    .is_ok();
                // Nothing of a partial replay, or of one whose role ended meanwhile (the
                // next round unloads it), is installed.
                if shard
                    .coordinator
                    .served
                    .finish_load(&shard, &load, complete)
                {
                    shard.install_replayed(replayed);
                    tracing::info!(shard = %shard.id, partition = %load.partition, "group coordinator loaded the partition it leads");
                }
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
            .consumer_groups
            .borrow_mut()
            .retain(|group, _| !here(group));
        coordinator
            .consumer_persisted
            .borrow_mut()
            .retain(|group, _| !here(group));
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
