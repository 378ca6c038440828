//! Cluster mode: this shard's part of partition replication (issue 16), the shell around the
//! pure `replication::{leader, follower}` state machines. For every cluster partition this
//! shard owns, the metadata log says whether this broker leads it (a `PartitionLeader`
//! tracks the followers' fetches and moves the replicated high watermark), follows it (a
//! `PartitionFollower` and the fetcher task for its leader, `replica_fetcher`), or neither.
//!
//! Owns: the roles by partition, the set of leaders this shard runs a fetcher for, the
//! leader's high-watermark task. May import: `crate::replication`, `crate::quorum::view`,
//! `crate::storage`. Runs on: the shard owning the partitions.
//! Invariants: a partition has at most one role; a role is replaced, never edited into
//! another (a leader that resigns is dropped, a follower of a new epoch is new); the
//! replicated high watermark a log is given only grows; nothing is appended to a cluster
//! partition by a client unless this broker holds its `Leader` role, so every batch a
//! leader writes carries its leader epoch.

use super::Shard;
use super::messages::{ReadPartition, ReadPartitionResult, ReplicaFetch};
use crate::cluster::NodeId;
use crate::cluster::image::PartitionState;
use crate::cluster::partition_changes::AlterPartitionRequest;
use crate::metadata::TopicId;
use crate::model::{ErrorCode, Offset, TopicPartition};
use crate::quorum::alter_partition::{AlterPartitionItem, alter_partition};
use crate::quorum::topics::ClusterPartition;
use crate::replication::follower::{LocalLog, PartitionFollower};
use crate::replication::leader::{IsrProposal, LeaderSettings, MetadataOutcome, PartitionLeader};
use crate::storage::{PartitionLog, ReadLimits};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

/// How often a shard compares its roles with the cluster view and polls ISR changes.
const ROLE_INTERVAL: Duration = Duration::from_millis(50);
/// How long one AlterPartition may take: below the leader's retry interval
/// (`LeaderSettings::isr_proposal_retry_ms`, 5 s) with the forwarder's grace (1 s) added, so a
/// retry never overlaps an answer still on its way.
const ISR_PROPOSAL_DEADLINE: Duration = Duration::from_secs(3);
/// How often an acks=all produce waiting for the ISR re-checks that this broker still leads.
const LEADERSHIP_CHECK: Duration = Duration::from_millis(100);
/// The longest a leader's high-watermark task sleeps without an append.
const LEADER_IDLE_CHECK: Duration = Duration::from_millis(500);

/// The state machines' `now_ms`: the shard's monotonic clock (never the wall clock, which
/// may jump).
fn monotonic_ms() -> i64 {
    super::monotonic_ms() as i64
}

pub(crate) struct LeaderRole {
    /// The metadata log's topic id (what an AlterPartition names).
    pub topic_id: TopicId,
    pub generation: u64,
    pub state: PartitionLeader,
}

pub(crate) struct FollowerRole {
    pub topic_id: TopicId,
    pub generation: u64,
    pub state: PartitionFollower,
}

pub(crate) enum Role {
    Leader(Box<LeaderRole>),
    Follower(FollowerRole),
}

/// The replication roles of this shard's partitions.
#[derive(Default)]
pub(crate) struct Replicas {
    pub(super) roles: RefCell<HashMap<TopicPartition, Role>>,
    /// Leaders (node ids) this shard runs a fetcher task for.
    pub(super) fetchers: RefCell<BTreeSet<NodeId>>,
    next_generation: Cell<u64>,
    /// Cluster mode (set when replication starts): consumers of a cluster partition are served
    /// only under its leader role.
    cluster_mode: Cell<bool>,
    /// What the roles were last reconciled with (view, catalog, open logs); a round with the
    /// same inputs only polls ISR changes.
    reconciled: RefCell<Option<ReconciledWith>>,
    /// The throttle of the replicas reassignments add to this shard.
    pub(super) reassignment_throttle: super::reassignment_throttle::ReassignmentThrottle,
    /// Notified on every accepted replica fetch: DeleteRecords waits here for the followers'
    /// log starts.
    follower_fetches: crate::storage::signal::Signal,
    follower_fetch_count: Cell<u64>,
    /// Local copies of partitions this broker is no longer a replica of, being emptied.
    dropping: RefCell<BTreeSet<TopicPartition>>,
}

struct ReconciledWith {
    view: std::sync::Arc<crate::quorum::frame::ClusterView>,
    catalog: std::sync::Arc<crate::metadata::Catalog>,
    logs: usize,
}

impl Replicas {
    /// Drops `partition`'s role outside a reconciliation round (an error, a resignation): the
    /// next round sets it up again.
    pub(crate) fn drop_role(&self, partition: &TopicPartition) {
        self.roles.borrow_mut().remove(partition);
        self.reconciled.borrow_mut().take();
    }

    fn generation(&self) -> u64 {
        let next = self.next_generation.get() + 1;
        self.next_generation.set(next);
        next
    }

    /// The leader epoch a client's append to `partition` must carry: `Ok(None)` for a
    /// partition that is not replicated (single-broker mode, own topics), `Ok(Some)` when this
    /// broker leads it, NOT_LEADER_OR_FOLLOWER otherwise (the role is not set up yet, or
    /// another broker leads).
    pub(crate) fn leader_epoch_for_append(
        &self,
        partition: &TopicPartition,
        cluster_copy: bool,
    ) -> Result<Option<i32>, ErrorCode> {
        match self.roles.borrow().get(partition) {
            Some(Role::Leader(role)) => Ok(Some(role.state.leader_epoch())),
            Some(Role::Follower(_)) => Err(ErrorCode::NotLeaderOrFollower),
            None if cluster_copy => Err(ErrorCode::NotLeaderOrFollower),
            None => Ok(None),
        }
    }

    /// acks=all may append (Kafka's NOT_ENOUGH_REPLICAS before the append).
    pub(crate) fn check_acks_all(&self, partition: &TopicPartition) -> Result<(), ErrorCode> {
        match self.roles.borrow().get(partition) {
            Some(Role::Leader(role)) => role.state.check_acks_all(),
            _ => Ok(()),
        }
    }

    /// The generation of `partition`'s leader role, if this shard leads it: an acks=all
    /// append is acknowledged only while the role it was appended under still holds.
    pub(crate) fn leader_generation(&self, partition: &TopicPartition) -> Option<u64> {
        match self.roles.borrow().get(partition) {
            Some(Role::Leader(role)) => Some(role.generation),
            _ => None,
        }
    }

    /// The ISR of a led partition is below `min.insync.replicas` (an acks=all that timed out
    /// then answers NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub(crate) fn below_min_isr(&self, partition: &TopicPartition) -> bool {
        match self.roles.borrow().get(partition) {
            Some(Role::Leader(role)) => role.state.check_acks_all().is_err(),
            _ => false,
        }
    }

    /// The leader's log grew to `log`'s end: moves the high watermark if it can. A leader whose
    /// log went below what it knew (a follower's truncation finished after the role changed)
    /// is dropped and set up again by the next reconciliation.
    pub(crate) fn leader_appended(&self, partition: &TopicPartition, log: &PartitionLog) {
        let end = log.log_end_offset().value();
        let mut roles = self.roles.borrow_mut();
        let Some(Role::Leader(role)) = roles.get_mut(partition) else {
            return;
        };
        if end < role.state.log_end_offset() {
            tracing::warn!(%partition, end, known = role.state.log_end_offset(), "leader log shrank; taking leadership again");
            roles.remove(partition);
            self.reconciled.borrow_mut().take();
            return;
        }
        if let Some(high_watermark) = role.state.appended(end) {
            log.set_replicated_high_watermark(Offset(high_watermark));
        }
    }

    /// A follower's replica fetch at `fetch_offset` reached the leader: records its
    /// position (which may move the high watermark). Errors are Kafka's codes for the fetch.
    pub(crate) fn replica_fetched(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        replica: ReplicaFetch,
        fetch_offset: i64,
    ) -> Result<(), ErrorCode> {
        self.leader_appended(partition, log);
        let mut roles = self.roles.borrow_mut();
        let Some(Role::Leader(role)) = roles.get_mut(partition) else {
            return Err(ErrorCode::NotLeaderOrFollower);
        };
        let moved = role.state.follower_fetched(
            replica.replica_id,
            replica.broker_epoch,
            replica.current_leader_epoch,
            fetch_offset,
            monotonic_ms(),
        )?;
        role.state
            .follower_log_start(replica.replica_id, replica.log_start_offset);
        self.follower_fetch_count
            .set(self.follower_fetch_count.get().wrapping_add(1));
        self.follower_fetches.notify();
        if let Some(high_watermark) = moved {
            log.set_replicated_high_watermark(Offset(high_watermark));
        }
        Ok(())
    }
}

/// The metadata log's partition as the state machines take it (the view carries no ELR: the
/// leader and follower do not use it).
fn partition_state(partition: &ClusterPartition) -> PartitionState {
    PartitionState {
        replicas: partition.replicas.clone(),
        isr: partition.isr.clone(),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
        leader: (partition.leader >= 0).then_some(partition.leader),
        leader_epoch: partition.leader_epoch,
        partition_epoch: partition.partition_epoch,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// The high watermark a new role starts from: the replicated one this log was given since it
/// opened (a role change on a live replica), else the one in its high-watermark checkpoint
/// (after a restart: every offset below it was committed when it was written, as Kafka's
/// `replication-offset-checkpoint`), else the log start offset. Never the local high
/// watermark of a freshly opened log, its flushed log end, which may hold records the ISR
/// never had. Consumers never see a record that was not committed.
fn committed_high_watermark(log: &PartitionLog) -> i64 {
    log.replicated_high_watermark()
        .or_else(|| log.checkpointed_high_watermark())
        .unwrap_or_else(|| log.log_start_offset())
        .max(log.log_start_offset())
        .value()
}

/// The role this broker should hold for a partition the view describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Lead,
    Follow(NodeId),
    Nothing,
}

fn wanted_role(partition: &ClusterPartition, own: NodeId, live: &dyn Fn(NodeId) -> bool) -> Wanted {
    if !partition.replicas.contains(&own) || partition.leader < 0 {
        Wanted::Nothing
    } else if partition.leader == own {
        Wanted::Lead
    } else if live(partition.leader) {
        Wanted::Follow(partition.leader)
    } else {
        Wanted::Nothing
    }
}

impl Shard {
    /// Cluster mode: starts this shard's replication (roles follow the cluster view; see the
    /// module doc). Does nothing in single-broker mode.
    pub fn spawn_replication(self: &Rc<Self>) {
        if crate::quorum::view::cluster_topics().is_none() {
            return;
        }
        self.replicas.cluster_mode.set(true);
        let shard = self.clone();
        glommio::spawn_local(async move {
            while !super::shutdown::shutdown_requested() {
                shard.reconcile_replicas();
                glommio::timer::sleep(ROLE_INTERVAL).await;
            }
            shard.replicas.roles.borrow_mut().clear();
        })
        .detach();
    }

    /// The leader's knobs for a topic: `min.insync.replicas` from the topic's config, else
    /// the cluster-wide dynamic default, else 1 (as the controller's `ElectionPolicy`).
    fn leader_settings(
        &self,
        configs: &std::collections::BTreeMap<String, String>,
        defaults: &std::collections::BTreeMap<String, String>,
    ) -> LeaderSettings {
        let cluster = &self.config.cluster;
        LeaderSettings {
            replica_lag_time_max_ms: cluster.replica_lag_time_max_ms as i64,
            min_insync_replicas: configs
                .get("min.insync.replicas")
                .or_else(|| defaults.get("min.insync.replicas"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1),
            ..LeaderSettings::default()
        }
    }

    /// One round: every cluster partition this shard owns gets the role the view asks for.
    fn reconcile_replicas(self: &Rc<Self>) {
        let Some(view) = crate::quorum::view::shard_view() else {
            return;
        };
        let catalog = self.catalog();
        let logs = self.log_count();
        let unchanged = self
            .replicas
            .reconciled
            .borrow()
            .as_ref()
            .is_some_and(|last| {
                std::sync::Arc::ptr_eq(&last.view, &view)
                    && std::sync::Arc::ptr_eq(&last.catalog, &catalog)
                    && last.logs == logs
            });
        if unchanged {
            self.poll_isr_changes();
            return;
        }
        let topics = view.topics.clone();
        let own = self.config.server.node_id;
        // No role before this process's registration is in the applied image: until then
        // the image (replayed from disk after a restart) may still name this broker leader
        // in an epoch the cluster has left behind, and a leader from stale metadata could
        // acknowledge records the real leader never gets (found by the chaos test).
        let registered = crate::quorum::view::broker_epoch()
            .is_some_and(|epoch| topics.broker_epochs.get(&own) == Some(&epoch));
        if !registered {
            let mut roles = self.replicas.roles.borrow_mut();
            if !roles.is_empty() {
                tracing::info!(
                    roles = roles.len(),
                    "no replication roles until this broker's registration is applied"
                );
                roles.clear();
            }
            return;
        }
        let live = |node: NodeId| view.brokers.iter().any(|broker| broker.node_id == node);
        let mut seen: BTreeSet<TopicPartition> = BTreeSet::new();
        for (name, topic) in &topics.topics {
            let Some(meta) = catalog
                .topic(name)
                .filter(|m| m.cluster && m.id == topic.id)
            else {
                continue;
            };
            for (index, partition) in topic.partitions.iter().enumerate() {
                let tp = TopicPartition::new(name.as_str(), index as i32);
                if self.owner_of(&tp) != self.id {
                    continue;
                }
                let Some(log) = self.log(&tp) else { continue };
                seen.insert(tp.clone());
                match wanted_role(partition, own, &live) {
                    Wanted::Lead => self.lead(
                        &tp,
                        meta.id,
                        partition,
                        &topic.configs,
                        &topics.default_configs,
                        &log,
                    ),
                    Wanted::Follow(leader) => self.follow(&tp, meta.id, partition, leader, &log),
                    Wanted::Nothing => {
                        self.replicas.roles.borrow_mut().remove(&tp);
                        if !partition.replicas.contains(&own) && log.log_end_offset().value() > 0 {
                            self.spawn_drop_removed_replica(tp.clone());
                        }
                    }
                }
            }
        }
        self.replicas
            .roles
            .borrow_mut()
            .retain(|tp, _| seen.contains(tp));
        *self.replicas.reconciled.borrow_mut() = Some(ReconciledWith {
            view: view.clone(),
            catalog,
            logs,
        });
        self.poll_isr_changes();
    }

    fn lead(
        self: &Rc<Self>,
        tp: &TopicPartition,
        topic_id: TopicId,
        partition: &ClusterPartition,
        configs: &std::collections::BTreeMap<String, String>,
        default_configs: &std::collections::BTreeMap<String, String>,
        log: &Rc<PartitionLog>,
    ) {
        let state = partition_state(partition);
        let settings = self.leader_settings(configs, default_configs);
        {
            let mut roles = self.replicas.roles.borrow_mut();
            if let Some(Role::Leader(role)) = roles.get(tp)
                && role.topic_id != topic_id
            {
                // The topic was deleted and created again under the same name.
                roles.remove(tp);
            }
            if let Some(Role::Leader(role)) = roles.get_mut(tp) {
                if let Some(high_watermark) = role.state.update_settings(settings) {
                    log.set_replicated_high_watermark(Offset(high_watermark));
                }
                match role.state.metadata_changed(state.clone()) {
                    (MetadataOutcome::Stale, _) => return,
                    (MetadataOutcome::StillLeader, moved) => {
                        if let Some(high_watermark) = moved {
                            log.set_replicated_high_watermark(Offset(high_watermark));
                        }
                        return;
                    }
                    (MetadataOutcome::Resigned, _) => {
                        roles.remove(tp);
                    }
                }
            }
        }
        let leader = match PartitionLeader::new(
            self.config.server.node_id,
            state,
            log.log_end_offset().value(),
            committed_high_watermark(log),
            settings,
            monotonic_ms(),
        ) {
            Ok(leader) => leader,
            Err(code) => {
                tracing::warn!(partition = %tp, ?code, "cannot take leadership");
                return;
            }
        };
        log.set_replicated_high_watermark(Offset(leader.high_watermark()));
        let generation = self.replicas.generation();
        tracing::info!(partition = %tp, leader_epoch = leader.leader_epoch(), log_end = leader.log_end_offset(), "leading partition");
        self.replicas.roles.borrow_mut().insert(
            tp.clone(),
            Role::Leader(Box::new(LeaderRole {
                topic_id,
                generation,
                state: leader,
            })),
        );
        self.spawn_high_watermark_task(tp.clone(), generation, log.clone());
    }

    /// While this shard leads `tp` in `generation`: every append (any origin: produce,
    /// transaction markers) reaches the leader state, so a high watermark that only waits for
    /// the leader itself (an ISR of one) moves at once.
    fn spawn_high_watermark_task(
        self: &Rc<Self>,
        tp: TopicPartition,
        generation: u64,
        log: Rc<PartitionLog>,
    ) {
        let shard = self.clone();
        glommio::spawn_local(async move {
            loop {
                let current = matches!(
                    shard.replicas.roles.borrow().get(&tp),
                    Some(Role::Leader(role)) if role.generation == generation
                );
                // A closing or failed log wakes `wait_for_log_end` at once: stop, or this
                // loop would never yield.
                if !current
                    || log.is_failed()
                    || log.is_closing()
                    || super::shutdown::shutdown_requested()
                {
                    return;
                }
                let end = log.log_end_offset();
                shard.replicas.leader_appended(&tp, &log);
                let grew = Box::pin(log.wait_for_log_end(end));
                let idle = Box::pin(glommio::timer::sleep(LEADER_IDLE_CHECK));
                futures::future::select(grew, idle).await;
            }
        })
        .detach();
    }

    fn follow(
        self: &Rc<Self>,
        tp: &TopicPartition,
        topic_id: TopicId,
        partition: &ClusterPartition,
        leader: NodeId,
        log: &Rc<PartitionLog>,
    ) {
        {
            let roles = self.replicas.roles.borrow();
            if let Some(Role::Follower(role)) = roles.get(tp)
                && role.topic_id == topic_id
                && role.state.leader() == leader
                && role.state.leader_epoch() == partition.leader_epoch
            {
                return;
            }
        }
        let epochs = log.leader_epoch_cache();
        let local = LocalLog {
            epochs: &epochs,
            log_end_offset: log.log_end_offset().value(),
        };
        let follower = PartitionFollower::new(
            leader,
            partition.leader_epoch,
            local,
            committed_high_watermark(log),
        );
        log.set_replicated_high_watermark(Offset(follower.high_watermark()));
        tracing::info!(partition = %tp, leader, leader_epoch = partition.leader_epoch, log_end = local.log_end_offset, "following partition");
        let generation = self.replicas.generation();
        self.replicas.roles.borrow_mut().insert(
            tp.clone(),
            Role::Follower(FollowerRole {
                topic_id,
                generation,
                state: follower,
            }),
        );
        if self.replicas.fetchers.borrow_mut().insert(leader) {
            self.spawn_replica_fetcher(leader);
        }
    }

    /// Empties the local copy of `tp`, whose replica set no longer has this broker (once; the
    /// view is checked again when the task runs).
    fn spawn_drop_removed_replica(self: &Rc<Self>, tp: TopicPartition) {
        if !self.replicas.dropping.borrow_mut().insert(tp.clone()) {
            return;
        }
        let shard = self.clone();
        glommio::spawn_local(async move {
            let own = shard.config.server.node_id;
            let still_removed = crate::quorum::view::cluster_topics().is_some_and(|topics| {
                topics
                    .topics
                    .get(tp.topic.as_str())
                    .and_then(|topic| topic.partitions.get(usize::try_from(tp.partition).ok()?))
                    .is_some_and(|partition| !partition.replicas.contains(&own))
            });
            if still_removed {
                tracing::info!(partition = %tp, "no longer a replica here: emptying the local copy");
                shard.drop_removed_replica(&tp).await;
            }
            shard.replicas.dropping.borrow_mut().remove(&tp);
        })
        .detach();
    }

    /// Whether consumers (Fetch, ListOffsets) of `partition` are served here: in cluster mode a
    /// cluster partition only under this shard's leader role (NOT_LEADER_OR_FOLLOWER
    /// otherwise). A restarted broker whose replayed metadata still names it leader would
    /// otherwise serve its flushed tail, which the ISR may never have had (chaos test).
    pub(super) fn serves_clients(&self, partition: &TopicPartition) -> Result<(), ErrorCode> {
        if !self.replicas.cluster_mode.get() || self.replicas.leader_generation(partition).is_some()
        {
            return Ok(());
        }
        let cluster_copy = self
            .catalog()
            .topic(partition.topic.as_str())
            .is_some_and(|meta| meta.cluster);
        if cluster_copy {
            Err(ErrorCode::NotLeaderOrFollower)
        } else {
            Ok(())
        }
    }

    /// The leader's answer to one partition of a follower's replica fetch: the follower's
    /// position is recorded first (it may move the high watermark), then batches are read up
    /// to the log end.
    pub(super) async fn read_for_replica(
        &self,
        mut result: ReadPartitionResult,
        request: &ReadPartition,
        replica: ReplicaFetch,
        log: &PartitionLog,
        limits: ReadLimits,
    ) -> ReadPartitionResult {
        let fetched =
            self.replicas
                .replica_fetched(&request.partition, log, replica, request.offset.value());
        result.high_watermark = log.high_watermark().value();
        result.last_stable_offset = log.last_stable_offset().value();
        result.log_start_offset = log.log_start_offset().value();
        if let Err(code) = fetched {
            result.error = code;
            return result;
        }
        let nothing_fits = limits.max_bytes == 0 && !limits.min_one_batch;
        if request.offset == log.log_end_offset() || nothing_fits {
            return result;
        }
        match log.read_for_replica(request.offset, limits).await {
            Ok(read) => {
                result.batches = read.batches;
                result.disk_bytes = read.disk_bytes;
                result.disk_limited = read.disk_limited;
            }
            Err(error) => result.error = super::partition_ops::storage_error_code(&error),
        }
        result
    }

    /// acks=all on a led partition: waits until the high watermark passes `last_offset` (every
    /// ISR member has it), at most `cluster.replica_ack_timeout_ms`, while the leader role the
    /// batch was appended under (`generation`) still holds. A role lost meanwhile answers
    /// NOT_LEADER_OR_FOLLOWER even if the high watermark passes the offset later: the log may
    /// have been truncated and refilled with another leader's records (found by the chaos
    /// test). `None` (not a replicated partition) returns at once: its acks=all is the sync
    /// already waited for.
    pub(super) async fn wait_replicated(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        last_offset: Offset,
        generation: Option<u64>,
    ) -> Result<(), ErrorCode> {
        let timeout = Duration::from_millis(self.config.cluster.replica_ack_timeout_ms);
        self.wait_replicated_within(partition, log, last_offset, generation, timeout)
            .await
    }

    /// `wait_replicated` with its own bound (the group coordinator's
    /// `group.offsets_commit_timeout_ms`).
    pub(super) async fn wait_replicated_within(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        last_offset: Offset,
        generation: Option<u64>,
        timeout: Duration,
    ) -> Result<(), ErrorCode> {
        let Some(generation) = generation else {
            return Ok(());
        };
        let still_leading = || self.replicas.leader_generation(partition) == Some(generation);
        let deadline = std::time::Instant::now() + timeout;
        // Woken by the high watermark; re-checks leadership every `LEADERSHIP_CHECK`, so a
        // leader that lost the partition answers then (as Kafka completes delayed produces on
        // a leader change), not at the timeout.
        loop {
            if !still_leading() {
                return Err(ErrorCode::NotLeaderOrFollower);
            }
            if log.high_watermark() > last_offset {
                return Ok(());
            }
            if log.is_failed() {
                return Err(ErrorCode::KafkaStorageError);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || log.is_closing() {
                break;
            }
            let replicated = Box::pin(log.wait_for_append(last_offset));
            let pause = Box::pin(glommio::timer::sleep(left.min(LEADERSHIP_CHECK)));
            futures::future::select(replicated, pause).await;
        }
        if log.is_closing() || !still_leading() {
            Err(ErrorCode::NotLeaderOrFollower)
        } else if self.replicas.below_min_isr(partition) {
            Err(ErrorCode::NotEnoughReplicasAfterAppend)
        } else {
            Err(ErrorCode::RequestTimedOut)
        }
    }

    /// DeleteRecords on a partition this shard leads in `generation` (KIP-107, Kafka's
    /// DelayedDeleteRecords): the leader's log already starts at `target`; waits until every
    /// follower on a live broker has moved its log start there too (they learn it from fetch
    /// answers), so no replica that may lead next still serves the deleted records. Answers
    /// the low watermark; NOT_LEADER_OR_FOLLOWER if the role is lost, REQUEST_TIMED_OUT after
    /// `timeout`.
    pub(super) async fn wait_low_watermark(
        &self,
        partition: &TopicPartition,
        log: &PartitionLog,
        target: Offset,
        generation: u64,
        timeout: Duration,
    ) -> Result<i64, ErrorCode> {
        let low_watermark = || -> Result<i64, ErrorCode> {
            let roles = self.replicas.roles.borrow();
            let Some(Role::Leader(role)) = roles.get(partition) else {
                return Err(ErrorCode::NotLeaderOrFollower);
            };
            if role.generation != generation {
                return Err(ErrorCode::NotLeaderOrFollower);
            }
            let view = crate::quorum::view::shard_view();
            let live = |node: NodeId| {
                view.as_ref()
                    .is_some_and(|view| view.brokers.iter().any(|b| b.node_id == node))
            };
            Ok(role
                .state
                .low_watermark(log.log_start_offset().value(), live))
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let fetches_seen = self.replicas.follower_fetch_count.get();
            let low = low_watermark()?;
            if low >= target.value() {
                return Ok(low);
            }
            if log.is_failed() {
                return Err(ErrorCode::KafkaStorageError);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || log.is_closing() {
                return Err(ErrorCode::RequestTimedOut);
            }
            // Woken by every follower fetch; the pause re-checks leadership and liveness (a
            // broker fenced meanwhile no longer holds the answer back).
            let fetched = Box::pin(
                self.replicas
                    .follower_fetches
                    .wait_until(|| self.replicas.follower_fetch_count.get() != fetches_seen),
            );
            let pause = Box::pin(glommio::timer::sleep(left.min(LEADERSHIP_CHECK)));
            futures::future::select(fetched, pause).await;
        }
    }

    /// Every led partition whose ISR should change (a follower lagging past
    /// `cluster.replica_lag_time_max_ms`, or a caught-up replica outside it) sends one
    /// AlterPartition to the controller; the answer goes back to the leader state that asked.
    fn poll_isr_changes(self: &Rc<Self>) {
        let Some(leader_broker_epoch) = crate::quorum::view::broker_epoch() else {
            return;
        };
        let now = monotonic_ms();
        let mut proposals = Vec::new();
        for (tp, role) in self.replicas.roles.borrow_mut().iter_mut() {
            let Role::Leader(role) = role else { continue };
            if let Some(proposal) = role.state.poll_isr_change(now) {
                let replicas = role.state.replicas().to_vec();
                proposals.push((
                    tp.clone(),
                    role.generation,
                    role.topic_id,
                    replicas,
                    proposal,
                ));
            }
        }
        for (tp, generation, topic_id, replicas, proposal) in proposals {
            let shard = self.clone();
            glommio::spawn_local(async move {
                shard
                    .send_isr_proposal(
                        tp,
                        generation,
                        topic_id,
                        replicas,
                        leader_broker_epoch,
                        proposal,
                    )
                    .await;
            })
            .detach();
        }
    }

    async fn send_isr_proposal(
        &self,
        tp: TopicPartition,
        generation: u64,
        topic_id: TopicId,
        replicas: Vec<NodeId>,
        leader_broker_epoch: i64,
        proposal: IsrProposal,
    ) {
        tracing::info!(partition = %tp, new_isr = ?proposal.new_isr, partition_epoch = proposal.partition_epoch, "proposing an ISR change");
        let item = AlterPartitionItem {
            topic_id,
            partition: tp.partition,
            request: AlterPartitionRequest {
                leader: self.config.server.node_id,
                leader_broker_epoch,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal.new_isr.clone(),
                new_isr_broker_epochs: proposal.new_isr_broker_epochs.clone(),
            },
        };
        let deadline = std::time::Instant::now() + ISR_PROPOSAL_DEADLINE;
        let answer = alter_partition(item, deadline)
            .await
            .map(|altered| PartitionState {
                replicas,
                isr: altered.isr,
                elr: Vec::new(),
                last_known_elr: Vec::new(),
                leader: (altered.leader >= 0).then_some(altered.leader),
                leader_epoch: altered.leader_epoch,
                partition_epoch: altered.partition_epoch,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            });
        if let Err(code) = &answer {
            tracing::info!(partition = %tp, ?code, "ISR change not applied");
        }
        let Some(log) = self.log(&tp) else { return };
        let mut roles = self.replicas.roles.borrow_mut();
        let Some(Role::Leader(role)) = roles.get_mut(&tp) else {
            return;
        };
        if role.generation != generation {
            return;
        }
        match role.state.isr_change_answered(&proposal, answer) {
            (MetadataOutcome::Resigned, _) => {
                drop(roles);
                self.replicas.drop_role(&tp);
            }
            (_, Some(high_watermark)) => log.set_replicated_high_watermark(Offset(high_watermark)),
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(leader: NodeId, replicas: &[NodeId]) -> ClusterPartition {
        ClusterPartition {
            leader,
            leader_epoch: 3,
            partition_epoch: 5,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
            offline_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    #[test]
    fn the_view_decides_the_role() {
        let all_live = |_: NodeId| true;
        let none_live = |_: NodeId| false;
        assert_eq!(
            wanted_role(&partition(1, &[1, 2, 3]), 1, &all_live),
            Wanted::Lead
        );
        assert_eq!(
            wanted_role(&partition(2, &[1, 2, 3]), 1, &all_live),
            Wanted::Follow(2)
        );
        // A leader that is not live (fenced, not registered) is not followed.
        assert_eq!(
            wanted_role(&partition(2, &[1, 2, 3]), 1, &none_live),
            Wanted::Nothing
        );
        // Not a replica, or no leader.
        assert_eq!(
            wanted_role(&partition(2, &[2, 3]), 1, &all_live),
            Wanted::Nothing
        );
        assert_eq!(
            wanted_role(&partition(-1, &[1, 2, 3]), 1, &all_live),
            Wanted::Nothing
        );
    }

    #[test]
    fn the_state_machines_get_the_logs_partition() {
        let state = partition_state(&partition(2, &[1, 2]));
        assert_eq!(state.leader, Some(2));
        assert_eq!((state.leader_epoch, state.partition_epoch), (3, 5));
        assert_eq!(state.isr, vec![1, 2]);
        assert_eq!(partition_state(&partition(-1, &[1])).leader, None);
    }
}
