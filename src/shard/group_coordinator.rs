//! The group coordinator shell on the shard that owns a group's `__consumer_offsets`
//! partition: it feeds Kafka requests to the pure `group::Group` state machine, parks
//! join/sync requests until their effect arrives, writes group metadata and committed
//! offsets to the log (answering only once they are synced), replays that log on start,
//! and drives session/rebalance timers.

use super::messages::*;
use super::{Shard, now_ms};
use crate::group::records::{self, CommittedOffset};
use crate::group::{
    Effect, Group, GroupLimits, GroupState, JoinOutcome, OFFSETS_TOPIC, Reply as GroupReply,
    RequestToken, SyncOutcome, offsets_partition_for,
};
use crate::model::records::{BatchOrigin, NewRecord, encode_batch_from};
use crate::model::{ErrorCode, TopicPartition};
use bytes::Bytes;
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod consumer;
mod expiry;
mod leadership;
mod offsets;
mod replay;
use expiry::expired_offsets;

/// How often committed offsets are checked for expiry (Kafka
/// `offsets.retention.check.interval.ms` default: 10 minutes; one minute here).
const OFFSETS_EXPIRY_CHECK_MS: u64 = 60_000;

/// Milliseconds on a monotonic clock, for group timers.
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

type OffsetKey = (String, i32);
/// Committed offsets of one group.
type GroupOffsets = BTreeMap<OffsetKey, CommittedOffset>;

pub(super) struct GroupCoordinator {
    limits: GroupLimits,
    groups: RefCell<HashMap<String, Group>>,
    /// Groups of the KIP-848 `consumer` protocol (in memory only in this slice).
    consumer_groups: RefCell<HashMap<String, crate::group::consumer::ConsumerGroup>>,
    consumer_limits: crate::group::consumer::ConsumerGroupLimits,
    /// The records last written for each consumer group (a write sends what changed).
    consumer_persisted: RefCell<HashMap<String, crate::group::consumer::GroupRecords>>,
    offsets: RefCell<HashMap<String, BTreeMap<OffsetKey, CommittedOffset>>>,
    /// Log offset of the record behind each committed offset applied since start (commits
    /// replayed from the log are older than any new one), so a commit whose sync completes
    /// after a later commit's is not applied over it.
    offsets_written_at: RefCell<HashMap<String, HashMap<OffsetKey, i64>>>,
    /// TxnOffsetCommit offsets per producer id and group, visible once its COMMIT marker
    /// is written to the group's partition (dropped on ABORT).
    pending_txn_offsets: RefCell<HashMap<i64, HashMap<String, GroupOffsets>>>,
    /// Parked JoinGroup / SyncGroup requests, with their group (dropped when the group's
    /// partition is unloaded: the client then gets COORDINATOR_NOT_AVAILABLE).
    join_waiters: RefCell<HashMap<RequestToken, (String, oneshot::Sender<JoinOutcome>)>>,
    sync_waiters: RefCell<HashMap<RequestToken, (String, oneshot::Sender<SyncOutcome>)>>,
    /// Cluster mode: the `__consumer_offsets` partitions (by number) this shard loads or
    /// serves as their leader (`leadership`).
    served: super::coordinator_leadership::ServedPartitions,
    /// Offset commits being written, per group (offsets expiry skips those groups).
    commits_in_flight: RefCell<HashMap<String, usize>>,
    next_token: Cell<RequestToken>,
}

impl GroupCoordinator {
    pub(super) fn new(config: &crate::config::GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            limits: GroupLimits {
                session_timeout_ms_min: config.session_timeout_ms_min,
                session_timeout_ms_max: config.session_timeout_ms_max,
                initial_rebalance_delay_ms: config.initial_rebalance_delay_ms,
                members_max: config.members_max,
            },
            groups: RefCell::new(HashMap::new()),
            consumer_groups: RefCell::new(HashMap::new()),
            consumer_limits: consumer::limits(config),
            consumer_persisted: RefCell::new(HashMap::new()),
            offsets: RefCell::new(HashMap::new()),
            offsets_written_at: RefCell::new(HashMap::new()),
            pending_txn_offsets: RefCell::new(HashMap::new()),
            join_waiters: RefCell::new(HashMap::new()),
            sync_waiters: RefCell::new(HashMap::new()),
            served: Default::default(),
            commits_in_flight: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
        }
    }

    fn token(&self) -> RequestToken {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        token
    }
}

impl Shard {
    /// The `__consumer_offsets` partition holding `group_id`, and the shard owning it.
    pub fn group_coordinator_partition(&self, group_id: &str) -> TopicPartition {
        TopicPartition::new(
            OFFSETS_TOPIC,
            offsets_partition_for(group_id, self.offsets_topic_partitions()),
        )
    }

    /// Partitions of `__consumer_offsets`: the catalog's, else the configured count.
    fn offsets_topic_partitions(&self) -> i32 {
        self.catalog()
            .topic(OFFSETS_TOPIC)
            .map_or(self.config.group.offsets_topic_partitions, |t| t.partitions)
    }

    /// Runs a group operation on the coordinator shard of `group_id`.
    pub async fn group_call<T: Send + 'static>(
        self: &Rc<Self>,
        group_id: &str,
        build: impl FnOnce(Reply<T>) -> GroupOp,
    ) -> Result<T, super::ShardError> {
        let target = self.owner_of(&self.group_coordinator_partition(group_id));
        self.group_call_on(target, build).await
    }

    /// Stage 1 of a group operation that must keep its connection's request order (offset
    /// commits): when this returns, the operation has been started on the coordinator shard
    /// (spawned there, or queued on the FIFO mesh channel), so operations enqueued one after
    /// another start in that order. The returned future waits for the reply.
    pub async fn group_enqueue<T: Send + 'static>(
        self: &Rc<Self>,
        group_id: &str,
        build: impl FnOnce(Reply<T>) -> GroupOp,
    ) -> futures::future::LocalBoxFuture<'static, Result<T, super::ShardError>> {
        let target = self.owner_of(&self.group_coordinator_partition(group_id));
        let (reply, receiver) = super::reply::reply_channel();
        let op = build(reply);
        let sent = if target == self.id {
            let shard = self.clone();
            glommio::spawn_local(async move { shard.handle_group_op(op).await }).detach();
            Ok(())
        } else {
            self.send(target, ShardMessage::Group(op)).await
        };
        Box::pin(async move {
            sent?;
            receiver
                .await
                .map_err(|_| super::ShardError::NoReply { target })
        })
    }

    pub async fn group_call_on<T: Send + 'static>(
        self: &Rc<Self>,
        target: crate::model::ShardId,
        build: impl FnOnce(Reply<T>) -> GroupOp,
    ) -> Result<T, super::ShardError> {
        let (reply, receiver) = super::reply::reply_channel();
        let op = build(reply);
        if target == self.id {
            self.handle_group_op(op).await;
        } else {
            self.send(target, ShardMessage::Group(op)).await?;
        }
        receiver
            .await
            .map_err(|_| super::ShardError::NoReply { target })
    }

    pub(super) async fn handle_group_op(self: &Rc<Self>, op: GroupOp) {
        let Some(op) = self.admit_group_op(op) else {
            return;
        };
        match op {
            GroupOp::Join {
                group_id,
                input,
                reply,
            } => {
                let _ = reply.send(self.group_join(group_id, input).await);
            }
            GroupOp::Sync {
                group_id,
                input,
                reply,
            } => {
                let _ = reply.send(self.group_sync(group_id, input).await);
            }
            GroupOp::ConsumerHeartbeat {
                group_id,
                input,
                reply,
            } => {
                let _ = reply.send(self.consumer_heartbeat(&group_id, input).await);
            }
            GroupOp::ConsumerDescribe { group_id, reply } => {
                let _ = reply.send(self.consumer_describe(&group_id));
            }
            GroupOp::Heartbeat {
                group_id,
                member_id,
                group_instance_id,
                generation_id,
                reply,
            } => {
                let error = match self.coordinator.groups.borrow_mut().get_mut(&group_id) {
                    Some(group) => group.heartbeat(
                        &member_id,
                        group_instance_id.as_deref(),
                        generation_id,
                        monotonic_ms(),
                    ),
                    None => ErrorCode::UnknownMemberId,
                };
                let _ = reply.send(error);
            }
            GroupOp::Leave {
                group_id,
                members,
                reply,
            } => {
                let outcome =
                    self.coordinator
                        .groups
                        .borrow_mut()
                        .get_mut(&group_id)
                        .map(|group| {
                            let (errors, effects) = group.leave(&members, monotonic_ms());
                            (errors, effects)
                        });
                match outcome {
                    Some((errors, effects)) => {
                        self.run_group_effects(effects).await;
                        let _ = reply.send(Ok(errors));
                    }
                    None => {
                        let _ = reply.send(Err(ErrorCode::UnknownMemberId));
                    }
                }
            }
            GroupOp::CommitOffsets {
                group_id,
                member_id,
                group_instance_id,
                generation_id,
                api_version,
                entries,
                reply,
            } => {
                let errors = self
                    .commit_offsets(
                        &group_id,
                        &member_id,
                        group_instance_id.as_deref(),
                        generation_id,
                        api_version,
                        entries,
                    )
                    .await;
                let _ = reply.send(errors);
            }
            GroupOp::FetchOffsets {
                group_id,
                member: (member_id, member_epoch),
                partitions,
                require_stable,
                reply,
            } => {
                if let Some(error) =
                    self.validate_consumer_fetch(&group_id, member_id.as_deref(), member_epoch)
                {
                    let _ = reply.send(Err(error));
                    return;
                }
                let mut fetched = self.fetch_offsets(&group_id, partitions);
                if require_stable {
                    let unstable = self.unstable_partitions(&group_id);
                    for offset in &mut fetched {
                        if unstable.contains(&(offset.topic.clone(), offset.partition)) {
                            offset.error = ErrorCode::UnstableOffsetCommit;
                        }
                    }
                }
                let _ = reply.send(Ok(fetched));
            }
            GroupOp::Describe { group_id, reply } => {
                let _ = reply.send(self.describe_group(&group_id));
            }
            GroupOp::List { reply } => {
                let error = if self.offsets_partitions_loading() {
                    ErrorCode::CoordinatorLoadInProgress
                } else {
                    ErrorCode::None
                };
                let _ = reply.send((self.list_groups(), error));
            }
            GroupOp::Delete { group_id, reply } => {
                let _ = reply.send(self.delete_group(&group_id).await);
            }
            GroupOp::TxnCommitOffsets {
                group_id,
                producer_id,
                producer_epoch,
                member_id,
                group_instance_id,
                generation_id,
                entries,
                reply,
            } => {
                let origin = BatchOrigin {
                    producer_id,
                    producer_epoch,
                    base_sequence: -1,
                    transactional: true,
                    control: false,
                };
                let member = (!member_id.is_empty()).then_some((
                    member_id.as_str(),
                    group_instance_id.as_deref(),
                    generation_id,
                ));
                let errors = self
                    .txn_commit_offsets(&group_id, origin, member, entries)
                    .await;
                let _ = reply.send(errors);
            }
            GroupOp::DeleteOffsets {
                group_id,
                partitions,
                reply,
            } => {
                let _ = reply.send(self.delete_offsets(&group_id, partitions).await);
            }
        }
    }

    async fn group_join(
        self: &Rc<Self>,
        group_id: String,
        mut input: crate::group::JoinInput,
    ) -> JoinOutcome {
        if group_id.is_empty() {
            return JoinOutcome::error(ErrorCode::InvalidGroupId, &input.member_id);
        }
        if let Err(error) = self.classic_join_allowed(&group_id).await {
            return JoinOutcome::error(error, &input.member_id);
        }
        let coordinator = &self.coordinator;
        input.token = coordinator.token();
        let prefix = input
            .group_instance_id
            .as_deref()
            .unwrap_or(&input.client_id)
            .to_string();
        input.fresh_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        let token = input.token;
        let (reply, effects) = {
            let mut groups = coordinator.groups.borrow_mut();
            if !self.classic_group_fits(&groups, &group_id) {
                return JoinOutcome::error(ErrorCode::GroupMaxSizeReached, &input.member_id);
            }
            let limits = coordinator.limits;
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, limits));
            group.join(input, monotonic_ms())
        };
        let receiver = match reply {
            GroupReply::Now(outcome) => {
                self.run_group_effects(effects).await;
                return outcome;
            }
            GroupReply::Later => {
                let (sender, receiver) = oneshot::channel();
                coordinator
                    .join_waiters
                    .borrow_mut()
                    .insert(token, (group_id.clone(), sender));
                receiver
            }
        };
        self.run_group_effects(effects).await;
        receiver
            .await
            .unwrap_or_else(|_| JoinOutcome::error(ErrorCode::CoordinatorNotAvailable, ""))
    }

    /// Whether group `group_id` exists or one more classic group fits on this shard
    /// (`group.classic_groups_max`); a refusal is logged (JoinGroup and OffsetCommit answers
    /// carry no message) and answered GROUP_MAX_SIZE_REACHED by the caller.
    pub(super) fn classic_group_fits(
        &self,
        groups: &HashMap<String, Group>,
        group_id: &str,
    ) -> bool {
        let groups_max = self.config.group.classic_groups_max;
        if groups.contains_key(group_id) || groups.len() < groups_max {
            return true;
        }
        tracing::warn!(shard = %self.id, group = %group_id, groups_max,
            "classic group refused: the shard holds group.classic_groups_max groups");
        false
    }

    async fn group_sync(
        self: &Rc<Self>,
        group_id: String,
        mut input: crate::group::SyncInput,
    ) -> SyncOutcome {
        let coordinator = &self.coordinator;
        input.token = coordinator.token();
        let token = input.token;
        let outcome = {
            let mut groups = coordinator.groups.borrow_mut();
            groups
                .get_mut(&group_id)
                .map(|group| group.sync(input, monotonic_ms()))
        };
        let Some((reply, effects)) = outcome else {
            return SyncOutcome::error(ErrorCode::UnknownMemberId);
        };
        let receiver = match reply {
            GroupReply::Now(outcome) => {
                self.run_group_effects(effects).await;
                return outcome;
            }
            GroupReply::Later => {
                let (sender, receiver) = oneshot::channel();
                coordinator
                    .sync_waiters
                    .borrow_mut()
                    .insert(token, (group_id.clone(), sender));
                receiver
            }
        };
        self.run_group_effects(effects).await;
        receiver
            .await
            .unwrap_or_else(|_| SyncOutcome::error(ErrorCode::CoordinatorNotAvailable))
    }

    /// Delivers effects in order: persistence completes before later responses go out.
    /// A group whose metadata could not be written gets that error in the SyncGroup answers
    /// that follow (as Kafka's coordinator does), not an assignment the log does not hold:
    /// its members look for the coordinator again and rejoin.
    async fn run_group_effects(self: &Rc<Self>, effects: Vec<Effect>) {
        let mut not_persisted: HashMap<String, ErrorCode> = HashMap::new();
        // The generation each group's partition was served under when these effects were
        // computed: a snapshot is not written after a reload (it would overwrite newer
        // state in the log).
        let computed_under: HashMap<String, Option<u64>> = effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Persist(snapshot) => Some((
                    snapshot.group_id.clone(),
                    self.group_serving_generation(&snapshot.group_id),
                )),
                _ => None,
            })
            .collect();
        for effect in effects {
            match effect {
                Effect::CompleteJoin { token, outcome } => {
                    let waiter = self.coordinator.join_waiters.borrow_mut().remove(&token);
                    let error = outcome.error;
                    if waiter.is_none_or(|(_, waiter)| waiter.send(outcome).is_err()) {
                        // Rare (the client's connection or request went away); a member that
                        // never got its answer explains a stuck rebalance.
                        tracing::info!(shard = %self.id, token, ?error, "JoinGroup answer dropped: its request is no longer waiting");
                    }
                }
                Effect::CompleteSync { token, outcome } => {
                    let waiter = self.coordinator.sync_waiters.borrow_mut().remove(&token);
                    let outcome = match waiter
                        .as_ref()
                        .and_then(|(group, _)| not_persisted.get(group))
                    {
                        Some(code) => SyncOutcome::error(*code),
                        None => outcome,
                    };
                    let error = outcome.error;
                    if waiter.is_none_or(|(_, waiter)| waiter.send(outcome).is_err()) {
                        tracing::info!(shard = %self.id, token, ?error, "SyncGroup answer dropped: its request is no longer waiting");
                    }
                }
                Effect::Persist(snapshot) => {
                    let generation = computed_under.get(&snapshot.group_id).copied().flatten();
                    if self.group_serving_generation(&snapshot.group_id) != generation {
                        tracing::info!(shard = %self.id, group = %snapshot.group_id, "group metadata not written: its partition was reloaded since");
                        not_persisted.insert(snapshot.group_id.clone(), ErrorCode::NotCoordinator);
                        continue;
                    }
                    let key = records::group_key(&snapshot.group_id);
                    let value = records::group_value(&snapshot, now_ms());
                    let record = NewRecord {
                        key: Some(&key),
                        value: Some(&value),
                    };
                    if let Err(error) = self
                        .append_offsets_records(&snapshot.group_id, &[record])
                        .await
                    {
                        tracing::error!(shard = %self.id, group = %snapshot.group_id, ?error, "cannot persist group metadata");
                        not_persisted.insert(snapshot.group_id.clone(), error);
                    }
                }
            }
        }
    }

    /// Appends internal records to the group's `__consumer_offsets` partition and waits
    /// until they are synced.
    async fn append_offsets_records(
        &self,
        group_id: &str,
        records: &[NewRecord<'_>],
    ) -> Result<(), ErrorCode> {
        self.append_offsets_records_from(group_id, records, BatchOrigin::NONE)
            .await
            .map(|_| ())
    }

    /// Appends records, waits until they are synced; returns the log offset of the last.
    async fn append_offsets_records_from(
        &self,
        group_id: &str,
        records: &[NewRecord<'_>],
        origin: BatchOrigin,
    ) -> Result<i64, ErrorCode> {
        let partition = self.group_coordinator_partition(group_id);
        let Some(log) = self.log(&partition) else {
            return Err(ErrorCode::NotCoordinator);
        };
        // Cluster mode: only the partition's leader writes, and the write completes on the
        // high watermark.
        self.group_served_here(group_id)?;
        let cluster_copy = self.offsets_topic_copy_partitions().is_some();
        let batch = Bytes::from(encode_batch_from(records, now_ms(), origin));
        let timeout = Duration::from_millis(self.config.group.offsets_commit_timeout_ms);
        let last = self
            .append_as_coordinator(&partition, &log, batch, cluster_copy, timeout)
            .await?;
        Ok(last.value())
    }

    fn describe_group(&self, group_id: &str) -> GroupDescription {
        let groups = self.coordinator.groups.borrow();
        match groups.get(group_id) {
            Some(group) => GroupDescription {
                group_id: group_id.to_string(),
                error: ErrorCode::None,
                not_found: None,
                state: group.state(),
                protocol_type: group.protocol_type().unwrap_or_default().to_string(),
                protocol_name: if group.state() == GroupState::Stable {
                    group.protocol_name().unwrap_or_default().to_string()
                } else {
                    String::new()
                },
                members: group.describe_members(),
            },
            None => GroupDescription {
                group_id: group_id.to_string(),
                error: ErrorCode::None,
                not_found: Some(
                    if self
                        .coordinator
                        .consumer_groups
                        .borrow()
                        .contains_key(group_id)
                    {
                        format!("Group {group_id} is not a classic group.")
                    } else {
                        format!("Group {group_id} not found.")
                    },
                ),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            },
        }
    }

    fn list_groups(&self) -> Vec<GroupListing> {
        self.coordinator
            .groups
            .borrow()
            .values()
            .filter(|g| g.state() != GroupState::Dead)
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                state: g.state().kafka_name(),
                group_type: "classic",
            })
            .chain(self.list_consumer_groups())
            .collect()
    }

    async fn delete_group(self: &Rc<Self>, group_id: &str) -> ErrorCode {
        let consumer_group_deleted = match self
            .drop_empty_consumer_group(group_id, "consumer group deleted")
            .await
        {
            Ok(deleted) => deleted,
            Err(error) => return error,
        };
        let keys: Vec<OffsetKey> = {
            let groups = self.coordinator.groups.borrow();
            match groups.get(group_id) {
                None if consumer_group_deleted => {}
                None => return ErrorCode::GroupIdNotFound,
                Some(group) if group.has_members() => return ErrorCode::NonEmptyGroup,
                Some(_) => {}
            }
            let offsets = self.coordinator.offsets.borrow();
            offsets
                .get(group_id)
                .map(|s| s.keys().cloned().collect())
                .unwrap_or_default()
        };
        let mut tombstones: Vec<Vec<u8>> = keys
            .iter()
            .map(|(topic, partition)| records::commit_key(group_id, topic, *partition))
            .collect();
        tombstones.push(records::group_key(group_id));
        let batch: Vec<NewRecord<'_>> = tombstones
            .iter()
            .map(|key| NewRecord {
                key: Some(key),
                value: None,
            })
            .collect();
        let written_at = match self
            .append_offsets_records_from(group_id, &batch, BatchOrigin::NONE)
            .await
        {
            Ok(written_at) => written_at,
            Err(error) => return error,
        };
        // A commit written after the tombstones (a simple consumer's, during the append)
        // stands, in memory as in the log.
        self.apply_tombstones(group_id, &keys, written_at);
        if let Some(group) = self.coordinator.groups.borrow_mut().get_mut(group_id) {
            group.mark_dead();
        }
        self.coordinator.groups.borrow_mut().remove(group_id);
        if self.coordinator.offsets.borrow().contains_key(group_id) {
            let limits = self.coordinator.limits;
            self.coordinator
                .groups
                .borrow_mut()
                .insert(group_id.to_string(), Group::new(group_id, limits));
        }
        ErrorCode::None
    }

    async fn delete_offsets(
        self: &Rc<Self>,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        {
            let groups = self.coordinator.groups.borrow();
            match groups.get(group_id) {
                None => return Err(ErrorCode::GroupIdNotFound),
                Some(group) if group.has_members() => {
                    return Ok(vec![ErrorCode::GroupSubscribedToTopic; partitions.len()]);
                }
                Some(_) => {}
            }
        }
        let keys: Vec<Vec<u8>> = partitions
            .iter()
            .map(|(topic, partition)| records::commit_key(group_id, topic, *partition))
            .collect();
        let batch: Vec<NewRecord<'_>> = keys
            .iter()
            .map(|key| NewRecord {
                key: Some(key),
                value: None,
            })
            .collect();
        if !batch.is_empty() {
            self.append_offsets_records(group_id, &batch).await?;
        }
        if let Some(stored) = self.coordinator.offsets.borrow_mut().get_mut(group_id) {
            for key in &partitions {
                stored.remove(key);
            }
        }
        Ok(vec![ErrorCode::None; partitions.len()])
    }

    /// Adds committed offsets and group sizes to a metrics snapshot.
    pub(super) fn coordinator_metrics(&self, snapshot: &mut super::metrics::MetricsSnapshot) {
        for (group, offsets) in self.coordinator.offsets.borrow().iter() {
            for ((topic, partition), committed) in offsets {
                snapshot
                    .committed
                    .insert((group.clone(), topic.clone(), *partition), committed.offset);
            }
        }
        for (id, group) in self.coordinator.groups.borrow().iter() {
            snapshot.groups.insert(
                id.clone(),
                (group.state().kafka_name(), group.member_ids().len()),
            );
        }
    }

    /// Drives session and rebalance deadlines of every group on this shard.
    /// Kafka `offsets.retention.minutes` (2.1+ semantics): committed offsets of a group with
    /// no members expire once their commit is older than the retention; a group left with
    /// neither members nor offsets is forgotten. Expiry is written as tombstones.
    pub(super) async fn expire_offsets(self: &Rc<Self>) {
        let retention_ms = self
            .config
            .group
            .offsets_retention_minutes
            .saturating_mul(60_000) as i64;
        let cutoff = now_ms().saturating_sub(retention_ms);
        let expired = expired_offsets(
            &self.coordinator.groups.borrow(),
            &self.coordinator.offsets.borrow(),
            cutoff,
        );
        for (group, keys) in expired {
            if self
                .coordinator
                .commits_in_flight
                .borrow()
                .contains_key(&group)
            {
                continue; // a commit is being written: the next check decides
            }
            let tombstones: Vec<Vec<u8>> = keys
                .iter()
                .map(|(topic, partition)| records::commit_key(&group, topic, *partition))
                .collect();
            let batch: Vec<NewRecord<'_>> = tombstones
                .iter()
                .map(|key| NewRecord {
                    key: Some(key),
                    value: None,
                })
                .collect();
            let written_at = match self
                .append_offsets_records_from(&group, &batch, BatchOrigin::NONE)
                .await
            {
                Ok(written_at) => written_at,
                Err(error) => {
                    tracing::warn!(shard = %self.id, %group, ?error, "cannot expire offsets");
                    continue;
                }
            };
            self.apply_tombstones(&group, &keys, written_at);
            if !self.coordinator.offsets.borrow().contains_key(&group) {
                let mut groups = self.coordinator.groups.borrow_mut();
                if groups.get(&group).is_some_and(|g| !g.has_members()) {
                    groups.remove(&group);
                }
            }
            tracing::info!(shard = %self.id, %group, expired = keys.len(), "committed offsets expired");
        }
    }

    pub(super) fn spawn_group_timer(self: &Rc<Self>) {
        let shard = self.clone();
        let interval = Duration::from_millis(self.config.group.tick_interval_ms);
        glommio::spawn_local(async move {
            let mut last_expiry = monotonic_ms();
            loop {
                glommio::timer::sleep(interval).await;
                let now = monotonic_ms();
                if now.saturating_sub(last_expiry) >= OFFSETS_EXPIRY_CHECK_MS {
                    last_expiry = now;
                    shard.expire_offsets().await;
                }
                let effects: Vec<Effect> = shard
                    .coordinator
                    .groups
                    .borrow_mut()
                    .values_mut()
                    .flat_map(|group| group.tick(now))
                    .collect();
                if !effects.is_empty() {
                    shard.run_group_effects(effects).await;
                }
                shard.tick_consumer_groups(now).await;
            }
        })
        .detach();
    }
}
