//! The partition leader's replication state: where each follower is, the high watermark, and
//! when to ask the controller to shrink or expand the ISR (Kafka's `Partition` /
//! `ReplicaManager` rules, KIP-966's high-watermark rule).
//!
//! Owns: follower progress, the high watermark, the one in-flight ISR proposal. May import:
//! `crate::cluster::image::PartitionState`, `crate::model`. Records, fetch responses and the
//! controller channel belong to the caller.
//! Invariants: the high watermark never decreases, never passes the leader's log end, and
//! counts only offsets every member of the maximal ISR (committed ISR plus a pending addition)
//! has fetched; it advances only while the committed ISR has at least `min_insync_replicas`
//! members (KIP-966), so an offset below it survives the loss of any ISR member but one.

use super::NodeId;
use crate::cluster::image::PartitionState;
use crate::model::ErrorCode;
use crate::model::leader_epochs::{EpochEnd, LeaderEpochCache};
use std::collections::BTreeMap;

/// Knobs of the leader's decisions (Kafka's names in the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSettings {
    /// A follower that has not caught up to the leader's log end for this long leaves the ISR
    /// (Kafka `replica.lag.time.max.ms`). Default 30000.
    pub replica_lag_time_max_ms: i64,
    /// acks=all needs this many ISR members, and the high watermark only advances while the
    /// ISR has this many (Kafka `min.insync.replicas`, KIP-966). Default 1.
    pub min_insync_replicas: usize,
    /// An unanswered ISR proposal is sent again after this long. Default 5000. It must exceed
    /// the longest a request and its answer can take on the controller channel (Kafka's
    /// request timeout, after which the connection is closed): the leader acts on the first
    /// answer it gets, so a copy still in flight that the controller applied later would
    /// change the ISR behind the leader's back (a dropped expansion committed by a late
    /// retry; simulator seed 13222 with a retry shorter than the round trip).
    pub isr_proposal_retry_ms: i64,
}

impl Default for LeaderSettings {
    fn default() -> Self {
        LeaderSettings {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            isr_proposal_retry_ms: 5_000,
        }
    }
}

/// An AlterPartition the leader wants the controller to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<NodeId>,
    /// KIP-903: the broker epoch each follower of `new_isr` fetched with (the controller
    /// refuses a replica that has restarted since).
    pub new_isr_broker_epochs: Vec<(NodeId, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FollowerProgress {
    /// The broker epoch (incarnation) of the follower's fetches (KIP-903): a fetch from a
    /// newer one starts the progress over; one from an older one is refused.
    broker_epoch: i64,
    /// The follower's log end offset, as its last accepted fetch said.
    log_end_offset: Option<i64>,
    /// Last time the follower had fetched up to the leader's log end (Kafka's
    /// `lastCaughtUpTimeMs`).
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end when the last fetch arrived.
    last_fetch_leader_end: i64,
    /// The follower's log start offset, as its last accepted fetch said (Kafka's replica
    /// `logStartOffset`); `None` until then. DeleteRecords waits for it (the low watermark).
    log_start_offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingProposal {
    proposal: IsrProposal,
    sent_ms: i64,
    /// The controller refused it in a way that says the partition moved on (the change may
    /// have committed): no retry, the next metadata update settles it.
    awaiting_metadata: bool,
}

/// What the leader does with a partition update from the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataOutcome {
    /// Still the leader in the same epoch (ISR or partition epoch may have moved).
    StillLeader,
    /// Another leader or a new epoch: drop this state and become a follower (or nothing).
    Resigned,
    /// An update older than what the leader already knows: ignored.
    Stale,
}

/// The leader side of one partition.
#[derive(Debug, Clone)]
pub struct PartitionLeader {
    node_id: NodeId,
    settings: LeaderSettings,
    state: PartitionState,
    /// The leader's log end when it took this epoch: a follower joins the ISR only once it
    /// has fetched this far (Kafka's `leaderEpochStartOffset`).
    epoch_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    followers: BTreeMap<NodeId, FollowerProgress>,
    pending: Option<PendingProposal>,
}

impl PartitionLeader {
    /// Takes leadership of `state` (which must name `node_id` as leader) with the local log
    /// ending at `log_end_offset` and the last high watermark this replica knew.
    pub fn new(
        node_id: NodeId,
        state: PartitionState,
        log_end_offset: i64,
        high_watermark: i64,
        settings: LeaderSettings,
        now_ms: i64,
    ) -> Result<PartitionLeader, ErrorCode> {
        if state.leader != Some(node_id) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let followers = state
            .replicas
            .iter()
            .filter(|&&replica| replica != node_id)
            .map(|&replica| {
                let progress = FollowerProgress {
                    broker_epoch: -1,
                    log_end_offset: None,
                    // ISR members get a full lag window to show up (Kafka resets the caught-up
                    // time of ISR members when it becomes leader).
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    last_fetch_leader_end: log_end_offset,
                    log_start_offset: None,
                };
                (replica, progress)
            })
            .collect();
        Ok(PartitionLeader {
            node_id,
            settings,
            state,
            epoch_start_offset: log_end_offset,
            log_end_offset,
            high_watermark: high_watermark.min(log_end_offset).max(0),
            followers,
            pending: None,
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.state.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.state.partition_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// New knobs (a topic config changed, e.g. `min.insync.replicas`); the high watermark
    /// moves if the new ones let it.
    pub fn update_settings(&mut self, settings: LeaderSettings) -> Option<i64> {
        if settings == self.settings {
            return None;
        }
        self.settings = settings;
        self.advance_high_watermark()
    }

    /// The partition's replicas, as the last metadata update had them.
    pub fn replicas(&self) -> &[NodeId] {
        &self.state.replicas
    }

    /// The ISR the controller has committed.
    pub fn isr(&self) -> &[NodeId] {
        &self.state.isr
    }

    /// The ISR the high watermark is computed on: the committed ISR plus a member a pending
    /// proposal adds (a member a pending proposal removes still counts until committed).
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut members = self.state.isr.clone();
        if let Some(pending) = &self.pending {
            for &node in &pending.proposal.new_isr {
                if !members.contains(&node) {
                    members.push(node);
                }
            }
        }
        members
    }

    /// acks=all may append only while the committed ISR has `min_insync_replicas` members
    /// (Kafka answers NOT_ENOUGH_REPLICAS before appending).
    pub fn check_acks_all(&self) -> Result<(), ErrorCode> {
        if self.state.isr.len() < self.settings.min_insync_replicas {
            Err(ErrorCode::NotEnoughReplicas)
        } else {
            Ok(())
        }
    }

    /// Whether an acks=all produce whose last offset is `last_offset` is complete: the high
    /// watermark passed it. The caller fails it with NOT_ENOUGH_REPLICAS_AFTER_APPEND when
    /// its timeout expires while the ISR is below the minimum.
    pub fn acks_all_complete(&self, last_offset: i64) -> bool {
        self.high_watermark > last_offset
    }

    /// The local log grew to `log_end_offset`; returns the new high watermark if it moved.
    pub fn appended(&mut self, log_end_offset: i64) -> Option<i64> {
        assert!(
            log_end_offset >= self.log_end_offset,
            "a leader's log never shrinks while it leads ({} -> {log_end_offset})",
            self.log_end_offset
        );
        self.log_end_offset = log_end_offset;
        self.advance_high_watermark()
    }

    /// A follower's fetch at `fetch_offset` (its log end) in `current_leader_epoch`, sent by
    /// its incarnation `broker_epoch`, was accepted; returns the new high watermark if it
    /// moved. Refuses a fetch from a non-replica (NOT_LEADER_OR_FOLLOWER), from another leader
    /// epoch (KIP-320), from an older incarnation than one already seen (STALE_BROKER_EPOCH,
    /// KIP-903), or past the leader's log end (OFFSET_OUT_OF_RANGE).
    pub fn follower_fetched(
        &mut self,
        follower: NodeId,
        broker_epoch: i64,
        current_leader_epoch: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<Option<i64>, ErrorCode> {
        super::check_leader_epoch(current_leader_epoch, self.state.leader_epoch)?;
        let leader_end = self.log_end_offset;
        let Some(progress) = self.followers.get_mut(&follower) else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        if broker_epoch < progress.broker_epoch {
            return Err(ErrorCode::StaleBrokerEpoch);
        }
        if fetch_offset > leader_end || fetch_offset < 0 {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        if broker_epoch > progress.broker_epoch {
            // A restarted replica: what the old incarnation had fetched says nothing now.
            progress.broker_epoch = broker_epoch;
            progress.log_end_offset = None;
            progress.log_start_offset = None;
        }
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = now_ms;
        } else if fetch_offset >= progress.last_fetch_leader_end {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.last_fetch_ms = now_ms;
        progress.last_fetch_leader_end = leader_end;
        progress.log_end_offset = Some(fetch_offset);
        Ok(self.advance_high_watermark())
    }

    /// The log start offset `follower`'s last accepted fetch (`follower_fetched`) carried;
    /// a negative one (a fetch that does not say) leaves it unknown.
    pub fn follower_log_start(&mut self, follower: NodeId, log_start_offset: i64) {
        if let Some(progress) = self.followers.get_mut(&follower) {
            progress.log_start_offset = (log_start_offset >= 0).then_some(log_start_offset);
        }
    }

    /// The partition's low watermark (Kafka's `lowWatermarkIfLeader`): the lowest log start
    /// offset of the leader (`leader_log_start`) and of every follower on a live broker; a
    /// live follower that has not said where its log starts counts as -1. DeleteRecords
    /// answers once this passes the requested offset, so records deleted on the leader are
    /// gone from every replica that could lead next.
    pub fn low_watermark(&self, leader_log_start: i64, live: impl Fn(NodeId) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|&(&node, _)| live(node))
            .map(|(_, progress)| progress.log_start_offset.unwrap_or(-1))
            .fold(leader_log_start, i64::min)
    }

    /// The ISR change to propose now, if any and none is in flight (or the one in flight is
    /// due for a retry): lagging members out, caught-up replicas in. Shrinking comes first.
    pub fn poll_isr_change(&mut self, now_ms: i64) -> Option<IsrProposal> {
        if let Some(pending) = &mut self.pending {
            if pending.awaiting_metadata
                || now_ms - pending.sent_ms < self.settings.isr_proposal_retry_ms
            {
                return None;
            }
            pending.sent_ms = now_ms;
            return Some(pending.proposal.clone());
        }
        let new_isr = self
            .shrunk_isr(now_ms)
            .or_else(|| self.expanded_isr(now_ms))?;
        let new_isr_broker_epochs = new_isr
            .iter()
            .filter_map(|node| {
                let progress = self.followers.get(node)?;
                (progress.broker_epoch >= 0).then_some((*node, progress.broker_epoch))
            })
            .collect();
        let proposal = IsrProposal {
            leader_epoch: self.state.leader_epoch,
            partition_epoch: self.state.partition_epoch,
            new_isr,
            new_isr_broker_epochs,
        };
        self.pending = Some(PendingProposal {
            proposal: proposal.clone(),
            sent_ms: now_ms,
            awaiting_metadata: false,
        });
        Some(proposal)
    }

    fn shrunk_isr(&self, now_ms: i64) -> Option<Vec<NodeId>> {
        let lagging = |node: &NodeId| {
            self.followers.get(node).is_some_and(|progress| {
                now_ms - progress.last_caught_up_ms > self.settings.replica_lag_time_max_ms
            })
        };
        let kept: Vec<NodeId> = self
            .state
            .isr
            .iter()
            .copied()
            .filter(|node| *node == self.node_id || !lagging(node))
            .collect();
        (kept.len() != self.state.isr.len()).then_some(kept)
    }

    fn expanded_isr(&self, now_ms: i64) -> Option<Vec<NodeId>> {
        let joining = self.followers.iter().find(|(node, progress)| {
            !self.state.isr.contains(node)
                && progress
                    .log_end_offset
                    .is_some_and(|end| end >= self.high_watermark && end >= self.epoch_start_offset)
                && now_ms - progress.last_caught_up_ms <= self.settings.replica_lag_time_max_ms
        })?;
        let mut isr = self.state.isr.clone();
        if !isr.contains(&self.node_id) {
            isr.insert(0, self.node_id);
        }
        isr.push(*joining.0);
        Some(isr)
    }

    /// The controller's answer to `proposal`. An answer to another proposal than the one in
    /// flight is ignored. `Ok(state)` is the partition as the controller has it. On
    /// INELIGIBLE_REPLICA or OPERATION_NOT_ATTEMPTED the change was not applied: the proposal
    /// is dropped and recomputed on the next poll. On FENCED_LEADER_EPOCH,
    /// INVALID_UPDATE_VERSION, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION or
    /// STALE_BROKER_EPOCH the partition moved on and the change may have committed, so the
    /// proposal stays in the maximal ISR, unretried, until a metadata update settles it (as
    /// Kafka's `Partition` waits for the next LeaderAndIsr). Other errors are retried.
    /// Returns what the answer means for this leader and the new high watermark if it moved.
    pub fn isr_change_answered(
        &mut self,
        proposal: &IsrProposal,
        answer: Result<PartitionState, ErrorCode>,
    ) -> (MetadataOutcome, Option<i64>) {
        let in_flight = self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.proposal == *proposal);
        if !in_flight {
            return (MetadataOutcome::Stale, None);
        }
        match answer {
            Ok(state) => {
                if state.leader_epoch == self.state.leader_epoch
                    && state.partition_epoch == self.state.partition_epoch
                {
                    // Nothing to change: the proposal is what the partition already has.
                    if state.isr == proposal.new_isr {
                        self.pending = None;
                    }
                    return (MetadataOutcome::StillLeader, self.advance_high_watermark());
                }
                self.metadata_changed(state)
            }
            Err(ErrorCode::IneligibleReplica | ErrorCode::OperationNotAttempted) => {
                self.pending = None;
                (MetadataOutcome::StillLeader, self.advance_high_watermark())
            }
            Err(
                ErrorCode::FencedLeaderEpoch
                | ErrorCode::InvalidUpdateVersion
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::StaleBrokerEpoch,
            ) => {
                if let Some(pending) = &mut self.pending {
                    pending.awaiting_metadata = true;
                }
                (MetadataOutcome::StillLeader, None)
            }
            Err(_) => (MetadataOutcome::StillLeader, None),
        }
    }

    /// A partition update from the metadata log (or an AlterPartition answer). Returns what
    /// it means for this leader and the new high watermark if it moved.
    pub fn metadata_changed(&mut self, state: PartitionState) -> (MetadataOutcome, Option<i64>) {
        if state.leader_epoch < self.state.leader_epoch
            || (state.leader_epoch == self.state.leader_epoch
                && state.partition_epoch <= self.state.partition_epoch)
        {
            return (MetadataOutcome::Stale, None);
        }
        if state.leader != Some(self.node_id) || state.leader_epoch != self.state.leader_epoch {
            return (MetadataOutcome::Resigned, None);
        }
        if let Some(pending) = &self.pending
            && pending.proposal.partition_epoch < state.partition_epoch
        {
            // Settled: this update has the change committed, or it never will be.
            self.pending = None;
        }
        for &replica in &state.replicas {
            if replica != self.node_id {
                self.followers
                    .entry(replica)
                    .or_insert_with(|| FollowerProgress {
                        broker_epoch: -1,
                        log_end_offset: None,
                        last_caught_up_ms: i64::MIN / 2,
                        last_fetch_ms: i64::MIN / 2,
                        last_fetch_leader_end: self.log_end_offset,
                        log_start_offset: None,
                    });
            }
        }
        self.followers
            .retain(|replica, _| state.replicas.contains(replica));
        self.state = state;
        (MetadataOutcome::StillLeader, self.advance_high_watermark())
    }

    fn advance_high_watermark(&mut self) -> Option<i64> {
        if self.state.isr.len() < self.settings.min_insync_replicas {
            return None;
        }
        let mut candidate = self.log_end_offset;
        for node in self.maximal_isr() {
            if node == self.node_id {
                continue;
            }
            let end = self
                .followers
                .get(&node)
                .and_then(|progress| progress.log_end_offset);
            match end {
                Some(end) => candidate = candidate.min(end),
                None => return None,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }
}

/// Kafka's fetch-time divergence check (Fetch v12+): a follower whose last fetched epoch ends
/// earlier on the leader than its fetch offset (or is not the leader's epoch there) has
/// diverged; the answer is the leader's end for that epoch, which the follower truncates by as
/// it would by an OffsetsForLeaderEpoch answer. `None`: no divergence.
pub fn diverging_epoch(
    leader_epochs: &LeaderEpochCache,
    leader_log_end: i64,
    fetch_offset: i64,
    last_fetched_epoch: Option<i32>,
) -> Option<EpochEnd> {
    let last_fetched_epoch = last_fetched_epoch?;
    let answer = leader_epochs.epoch_end(last_fetched_epoch, leader_log_end);
    match answer {
        EpochEnd::At { epoch, end_offset }
            if epoch == last_fetched_epoch && end_offset >= fetch_offset =>
        {
            None
        }
        _ => Some(answer),
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
