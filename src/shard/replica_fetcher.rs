//! Cluster mode, follower side: one fetcher task per (shard, leader broker) copies the
//! leader's batches into this shard's followed partitions over the Kafka port, as Kafka's
//! replica fetcher does: OffsetsForLeaderEpoch (v4, replica id set) to truncate a log to the
//! leader's before fetching in a new leader epoch (KIP-101/279), then replica Fetch (v15,
//! `ReplicaState` with this broker's id and epoch, KIP-903) from the log end. Batches are
//! stored as the leader sent them (`PartitionLog::append_replicated`); the leader's high
//! watermark, capped by the local log end, becomes this replica's.
//!
//! Owns: the fetch loop for one leader (on a `peer_connection::PeerConnection`), request
//! building, answer handling. May import: `super::replicas` (the roles),
//! `super::peer_connection`, `crate::replication::follower`, `crate::storage`,
//! kafka-protocol. Runs on: the shard owning the followed partitions.
//! Invariants: an answer is applied only to the role (same generation) that asked, and only
//! if the follower state machine accepts it for the request in flight; a response larger
//! than `cluster.replica_fetch_response_bytes_max` (plus framing) closes the connection
//! before anything is allocated for it; every call has a deadline.

use super::Shard;
use super::peer_connection::{PeerConnection, PeerError};
use super::replicas::Role;
use crate::cluster::NodeId;
use crate::metadata::TopicId;
use crate::model::leader_epochs::EpochEnd;
use crate::model::{ErrorCode, Offset, TopicPartition};
use crate::replication::follower::{FollowerRequest, LocalLog};
use crate::storage::StorageError;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

const FETCH_VERSION: i16 = 15;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Longest sleep of a fetcher whose every partition is throttled, before it looks again
/// (its partitions may have changed meanwhile).
const THROTTLE_RECHECK: Duration = Duration::from_millis(100);
/// Pause after a failed call or an answer that says the metadata moved on.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Room for the response's framing and headers beyond its record bytes.
const RESPONSE_OVERHEAD_BYTES: usize = 1 << 20;

/// One followed partition's next request, as its role would send it now.
struct Work {
    partition: TopicPartition,
    topic_id: TopicId,
    generation: u64,
    request: FollowerRequest,
    /// A reassignment adds this replica: its fetches count against
    /// `cluster.reassignment_throttle_bytes_per_s` (`reassignment_throttle`).
    throttled: bool,
}

impl Shard {
    pub(super) fn spawn_replica_fetcher(self: &Rc<Self>, leader: NodeId) {
        let shard = self.clone();
        glommio::spawn_local(async move { shard.run_replica_fetcher(leader).await }).detach();
    }

    /// The followed partitions whose leader is `leader`, with their next request.
    fn follower_work(&self, leader: NodeId) -> Vec<Work> {
        let roles = self.replicas.roles.borrow();
        let own = self.config.server.node_id;
        let throttling = self.config.cluster.reassignment_throttle_bytes_per_s > 0;
        let topics = throttling
            .then(crate::quorum::view::cluster_topics)
            .flatten();
        let added_here = |partition: &TopicPartition| {
            topics.as_ref().is_some_and(|topics| {
                topics
                    .partition(partition.topic.as_str(), partition.partition)
                    .is_some_and(|p| p.adding_replicas.contains(&own))
            })
        };
        let mut work = Vec::new();
        for (partition, role) in roles.iter() {
            let Role::Follower(role) = role else { continue };
            if role.state.leader() != leader {
                continue;
            }
            let Some(log) = self.log(partition) else {
                continue;
            };
            let epochs = log.leader_epoch_cache();
            let local = LocalLog {
                epochs: &epochs,
                log_end_offset: log.log_end_offset().value(),
            };
            work.push(Work {
                partition: partition.clone(),
                topic_id: role.topic_id,
                generation: role.generation,
                request: role.state.next_request(local),
                throttled: added_here(partition),
            });
        }
        work.sort_by(|a, b| a.partition.cmp(&b.partition));
        work
    }

    /// Whether `partition` still has the follower role of `generation`.
    fn still_following(&self, partition: &TopicPartition, generation: u64) -> bool {
        matches!(
            self.replicas.roles.borrow().get(partition),
            Some(Role::Follower(role)) if role.generation == generation
        )
    }

    async fn run_replica_fetcher(self: Rc<Self>, leader: NodeId) {
        let own = self.config.server.node_id;
        let cluster = &self.config.cluster;
        let connect_timeout = Duration::from_millis(cluster.controller_connect_timeout_ms);
        let mut connection: Option<PeerConnection> = None;
        let mut last_error: Option<String> = None;
        loop {
            let mut work = self.follower_work(leader);
            if work.is_empty() || super::shutdown::shutdown_requested() {
                // No await between the check and the removal: `follow` sees a consistent set.
                self.replicas.fetchers.borrow_mut().remove(&leader);
                return;
            }
            // Throttled replicas sit out while their bytes are ahead of the rate.
            if let Some(pause) = self
                .replicas
                .reassignment_throttle
                .pause_left(std::time::Instant::now())
            {
                work.retain(|item| !item.throttled);
                if work.is_empty() {
                    glommio::timer::sleep(pause.min(THROTTLE_RECHECK)).await;
                    continue;
                }
            }
            let Some(address) = self.broker_address(leader) else {
                glommio::timer::sleep(RETRY_BACKOFF).await;
                continue;
            };
            if connection.as_ref().is_some_and(|c| c.address() != address) {
                connection = None;
            }
            if connection.is_none() {
                let client_id = format!("shardlog-replica-{own}");
                match PeerConnection::connect(&address, client_id, connect_timeout).await {
                    Ok(connected) => connection = Some(connected),
                    Err(error) => {
                        self.fetcher_failed(leader, &mut last_error, &error).await;
                        continue;
                    }
                }
            }
            let Some(conn) = connection.as_mut() else {
                continue;
            };
            let truncating: Vec<&Work> = work
                .iter()
                .filter(|w| matches!(w.request, FollowerRequest::OffsetsForLeaderEpoch { .. }))
                .collect();
            let outcome = if truncating.is_empty() {
                self.replica_fetch(conn, &work).await
            } else {
                self.ask_epoch_ends(conn, &truncating).await
            };
            match outcome {
                Ok(true) => last_error = None,
                Ok(false) => glommio::timer::sleep(RETRY_BACKOFF).await,
                Err(error) => {
                    connection = None;
                    self.fetcher_failed(leader, &mut last_error, &error).await;
                }
            }
        }
    }

    async fn fetcher_failed(&self, leader: NodeId, last: &mut Option<String>, error: &PeerError) {
        let text = error.to_string();
        if last.as_deref() != Some(text.as_str()) {
            tracing::warn!(leader, error = %text, "replica fetcher: call to the leader failed; retrying");
            *last = Some(text);
        }
        glommio::timer::sleep(RETRY_BACKOFF).await;
    }

    /// OffsetsForLeaderEpoch for the partitions truncating; truncates where the answers say.
    /// `Ok(false)`: some answer asked to wait (the metadata moved on).
    async fn ask_epoch_ends(
        &self,
        conn: &mut PeerConnection,
        work: &[&Work],
    ) -> Result<bool, PeerError> {
        let mut topics: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
        for item in work {
            let FollowerRequest::OffsetsForLeaderEpoch {
                current_leader_epoch,
                leader_epoch,
            } = item.request
            else {
                continue;
            };
            topics
                .entry(item.partition.topic.to_string())
                .or_default()
                .push(
                    OffsetForLeaderPartition::default()
                        .with_partition(item.partition.partition)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(leader_epoch),
                );
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.config.server.node_id))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let timeout = Duration::from_millis(self.config.cluster.controller_connect_timeout_ms);
        let response: OffsetForLeaderEpochResponse = conn
            .call(
                ApiKey::OffsetForLeaderEpoch,
                OFFSET_FOR_LEADER_EPOCH_VERSION,
                &request,
                timeout,
                RESPONSE_OVERHEAD_BYTES,
            )
            .await?;
        let mut progressed = true;
        for topic in response.topics {
            for answer in topic.partitions {
                let partition = TopicPartition::new(topic.topic.0.as_str(), answer.partition);
                let Some(item) = work.iter().find(|w| w.partition == partition) else {
                    continue;
                };
                let FollowerRequest::OffsetsForLeaderEpoch {
                    current_leader_epoch,
                    leader_epoch: asked,
                } = item.request
                else {
                    continue;
                };
                if answer.error_code != ErrorCode::None.code() {
                    progressed = false;
                    continue;
                }
                let end = if answer.leader_epoch < 0 || answer.end_offset < 0 {
                    EpochEnd::Undefined
                } else {
                    EpochEnd::At {
                        epoch: answer.leader_epoch,
                        end_offset: answer.end_offset,
                    }
                };
                self.apply_epoch_end(item, current_leader_epoch, asked, end)
                    .await;
            }
        }
        Ok(progressed)
    }

    async fn apply_epoch_end(
        &self,
        item: &Work,
        current_leader_epoch: i32,
        asked: i32,
        end: EpochEnd,
    ) {
        let Some(log) = self.log(&item.partition) else {
            return;
        };
        let truncate_to = {
            let mut roles = self.replicas.roles.borrow_mut();
            let Some(Role::Follower(role)) = roles.get_mut(&item.partition) else {
                return;
            };
            if role.generation != item.generation {
                return;
            }
            let epochs = log.leader_epoch_cache();
            let local = LocalLog {
                epochs: &epochs,
                log_end_offset: log.log_end_offset().value(),
            };
            role.state
                .epoch_answered(current_leader_epoch, asked, end, local)
        };
        let Some(offset) = truncate_to else { return };
        if offset < log.log_end_offset().value() {
            tracing::info!(partition = %item.partition, from = log.log_end_offset().value(), to = offset, "truncating to the leader's log");
            if let Err(error) = log.truncate_to(Offset(offset)).await {
                tracing::error!(partition = %item.partition, %error, "truncation failed");
                self.replicas.drop_role(&item.partition);
                return;
            }
        }
        let end = log.log_end_offset().value();
        if let Some(Role::Follower(role)) =
            self.replicas.roles.borrow_mut().get_mut(&item.partition)
            && role.generation == item.generation
        {
            role.state.truncated(end);
        }
    }

    /// One replica Fetch for the partitions fetching; appends what it brings.
    /// `Ok(false)`: some answer asked to wait (the metadata moved on).
    async fn replica_fetch(
        self: &Rc<Self>,
        conn: &mut PeerConnection,
        work: &[Work],
    ) -> Result<bool, PeerError> {
        let cluster = &self.config.cluster;
        let max_bytes = cluster.replica_fetch_response_bytes_max as usize;
        let mut topics: BTreeMap<TopicId, Vec<FetchPartition>> = BTreeMap::new();
        for item in work {
            let FollowerRequest::Fetch {
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            } = item.request
            else {
                continue;
            };
            // The leader's DeleteRecords waits for every replica's log start (KIP-107).
            let log_start = self
                .log(&item.partition)
                .map_or(-1, |log| log.log_start_offset().value());
            topics.entry(item.topic_id).or_default().push(
                FetchPartition::default()
                    .with_partition(item.partition.partition)
                    .with_log_start_offset(log_start)
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_fetch_offset(fetch_offset)
                    .with_last_fetched_epoch(last_fetched_epoch.unwrap_or(-1))
                    .with_partition_max_bytes(max_bytes.min(i32::MAX as usize) as i32),
            );
        }
        let broker_epoch = crate::quorum::view::broker_epoch().unwrap_or(-1);
        let wait_ms = cluster.replica_fetch_wait_max_ms;
        let request = FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(self.config.server.node_id))
                    .with_replica_epoch(broker_epoch),
            )
            .with_max_wait_ms(wait_ms.min(i32::MAX as u64) as i32)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes.min(i32::MAX as usize) as i32)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        FetchTopic::default()
                            .with_topic_id(uuid::Uuid::from_bytes(topic_id))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let timeout = Duration::from_millis(wait_ms + cluster.controller_connect_timeout_ms);
        let response: FetchResponse = conn
            .call(
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
                timeout,
                max_bytes.saturating_mul(2) + RESPONSE_OVERHEAD_BYTES,
            )
            .await?;
        if response.error_code != ErrorCode::None.code() {
            return Ok(false);
        }
        let mut progressed = true;
        for topic in response.responses {
            let topic_id = *topic.topic_id.as_bytes();
            for answer in topic.partitions {
                let Some(item) = work.iter().find(|w| {
                    w.topic_id == topic_id && w.partition.partition == answer.partition_index
                }) else {
                    continue;
                };
                if answer.error_code != ErrorCode::None.code() {
                    if answer.error_code == ErrorCode::OffsetOutOfRange.code() {
                        self.fetch_out_of_range(item, answer.log_start_offset).await;
                    }
                    progressed = false;
                    continue;
                }
                let records = answer.records.unwrap_or_default();
                if item.throttled {
                    self.replicas.reassignment_throttle.charge(
                        records.len(),
                        self.config.cluster.reassignment_throttle_bytes_per_s,
                        std::time::Instant::now(),
                    );
                }
                self.apply_fetched(
                    item,
                    records,
                    answer.high_watermark,
                    answer.log_start_offset,
                )
                .await;
            }
        }
        Ok(progressed)
    }

    /// The leader answered OFFSET_OUT_OF_RANGE. Below its log start (it deleted, by
    /// retention or DeleteRecords, what this replica has not copied yet), the log restarts
    /// empty at the leader's log start (Kafka's `truncateFullyAndStartAt`); otherwise (ahead
    /// of the leader without a truncation that says where) only the role starts over.
    async fn fetch_out_of_range(self: &Rc<Self>, item: &Work, leader_log_start: i64) {
        let below_leader = match (item.request, self.log(&item.partition)) {
            (FollowerRequest::Fetch { fetch_offset, .. }, Some(log)) => {
                fetch_offset < leader_log_start && log.log_end_offset().value() < leader_log_start
            }
            _ => false,
        };
        if below_leader && self.still_following(&item.partition, item.generation) {
            self.restart_log_at(&item.partition, leader_log_start).await;
        } else {
            tracing::warn!(partition = %item.partition, "replica fetch out of range; following again");
        }
        self.replicas.drop_role(&item.partition);
    }

    /// Stores the batches of a fetch answer, then takes the leader's high watermark (capped
    /// by the local log end) and log start offset (capped by that high watermark: records the
    /// leader deleted, by DeleteRecords or retention, are gone here too, so a later leader
    /// does not serve them again).
    async fn apply_fetched(
        self: &Rc<Self>,
        item: &Work,
        records: Bytes,
        leader_high_watermark: i64,
        leader_log_start: i64,
    ) {
        let Some(mut log) = self.log(&item.partition) else {
            return;
        };
        {
            let roles = self.replicas.roles.borrow();
            let Some(Role::Follower(role)) = roles.get(&item.partition) else {
                return;
            };
            let epochs = log.leader_epoch_cache();
            let local = LocalLog {
                epochs: &epochs,
                log_end_offset: log.log_end_offset().value(),
            };
            if role.generation != item.generation
                || !role.state.accepts_fetch_answer(item.request, local)
            {
                return;
            }
        }
        if !records.is_empty() {
            let mut appended = log
                .append_replicated(records.clone(), super::now_ms())
                .await;
            if let Err(StorageError::UnexpectedAppendOffset {
                base_offset,
                expected,
            }) = appended
                && base_offset < expected
                && log.log_start_offset() == log.log_end_offset()
            {
                // An empty log (just restarted at the leader's log start) and a first batch
                // that starts below it: the leader's log start falls inside that batch
                // (DeleteRecords is not batch-aligned). As Kafka, the log restarts at the
                // batch's base offset; the leader's log start is taken below.
                self.restart_log_at(&item.partition, base_offset).await;
                match self.log(&item.partition) {
                    Some(restarted) if self.still_following(&item.partition, item.generation) => {
                        log = restarted;
                    }
                    _ => return,
                }
                appended = log.append_replicated(records, super::now_ms()).await;
            }
            if let Err(error) = appended {
                tracing::error!(partition = %item.partition, %error, "cannot append the leader's batches; following again");
                self.replicas.drop_role(&item.partition);
                return;
            }
        }
        if !self.still_following(&item.partition, item.generation) {
            return;
        }
        let end = log.log_end_offset().value();
        let high_watermark = match self.replicas.roles.borrow_mut().get_mut(&item.partition) {
            Some(Role::Follower(role)) => role.state.fetched(leader_high_watermark, end),
            _ => return,
        };
        log.set_replicated_high_watermark(Offset(high_watermark));
        if leader_log_start > log.log_start_offset().value()
            && let Err(error) = log.delete_records_before(Offset(leader_log_start)).await
        {
            tracing::warn!(partition = %item.partition, %error, "cannot follow the leader's log start offset");
        }
    }
}
