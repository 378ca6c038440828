//! Transaction markers (COMMIT/ABORT control batches) on their way into partitions, as
//! Kafka's `TransactionMarkerChannelManager` (sending side) and `handleWriteTxnMarkersRequest`
//! (receiving side) do it:
//! - the coordinator routes each partition of a transaction to its leader: this broker's
//!   owner shards for the partitions it leads (and every partition in single-broker mode),
//!   a WriteTxnMarkers call (API 27) to the leader broker for the others
//!   (`write_marker_job`), and retries the retriable failures until a deadline;
//! - the receiving broker (its handler, `server/handlers/write_txn_markers.rs`) appends on
//!   the owner shards (`write_markers_on_owners`, `write_markers_local`).
//!
//! Owns: the routing of marker partitions (`route`, pure), the marker append and its durability
//! wait. May import: `super::peer_connection`, `super::replicas`, `crate::quorum::view`,
//! `crate::txn`, kafka-protocol. Runs on: the coordinator's shard (sending) and each
//! partition's owner shard (appending).
//! Invariants: a marker is appended only under the partition's leader role in cluster mode
//! (a follower's copy holds the leader's batches only) and is reported written only when
//! synced and, for a replicated partition, below the high watermark (Kafka appends markers
//! with acks=-1).

use super::Shard;
use super::messages::{Marker, ShardMessage, WriteMarkersOp};
use super::peer_connection::PeerError;
use crate::cluster::NodeId;
use crate::model::records::encode_control_batch;
use crate::model::{ErrorCode, Offset, ShardId, TopicPartition};
use crate::storage::PartitionLog;
use crate::txn::MarkerJob;
use bytes::Bytes;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// WriteTxnMarkers version sent (Kafka 4.x's only one: flexible v1).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// The largest WriteTxnMarkers answer read: a few bytes per partition, so 1 MiB is room
/// for tens of thousands of partitions.
const MARKERS_RESPONSE_BYTES_MAX: usize = 1 << 20;
/// Pause before sending a transaction's failed markers again.
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Where the marker of one partition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkerRoute {
    /// This broker writes it (its owner shard): the partition is not replicated, or this
    /// broker leads it.
    Local,
    /// The leader broker writes it (WriteTxnMarkers).
    Leader(NodeId),
    /// The metadata log names no live leader (or does not know the partition): retry later.
    NoLeader,
}

/// Routes one partition's marker. `cluster_copy`: the topic is a local copy of a metadata-log
/// topic (replicated); `leader`: the log's leader of the partition, if the log has it.
pub(super) fn route(
    cluster_copy: bool,
    leader: Option<NodeId>,
    own: NodeId,
    live: impl Fn(NodeId) -> bool,
) -> MarkerRoute {
    if !cluster_copy {
        return MarkerRoute::Local;
    }
    match leader {
        Some(leader) if leader == own => MarkerRoute::Local,
        Some(leader) if leader >= 0 && live(leader) => MarkerRoute::Leader(leader),
        _ => MarkerRoute::NoLeader,
    }
}

/// Errors after which a marker is sent again (Kafka's marker channel manager retries the
/// same ones: the leader moved, too few replicas, a timeout, a storage error that a new
/// leader may not have, metadata not there yet).
pub(super) fn retriable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::NotEnoughReplicas
            | ErrorCode::NotEnoughReplicasAfterAppend
            | ErrorCode::RequestTimedOut
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::KafkaStorageError
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
    )
}

/// A marker appended to a log, waiting to be durable.
struct Appended {
    log: Rc<PartitionLog>,
    last_offset: Offset,
    generation: Option<u64>,
}

impl Shard {
    /// The coordinator's side: writes `job`'s markers into every partition (through its
    /// leader), sending the retriable failures again until `cluster.replica_ack_timeout_ms`
    /// has passed. Partitions of topics deleted meanwhile are skipped. `still_coordinator`
    /// is asked before every round: its error (the coordinator was deposed) stops sending.
    pub(super) async fn write_marker_job(
        self: &Rc<Self>,
        job: &MarkerJob,
        coordinator_epoch: i32,
        still_coordinator: impl Fn() -> Result<(), ErrorCode>,
    ) -> Result<(), ErrorCode> {
        let marker = Marker {
            producer_id: job.producer_id,
            producer_epoch: job.producer_epoch,
            commit: job.commit,
            coordinator_epoch,
        };
        let mut pending: Vec<TopicPartition> = job
            .partitions
            .iter()
            .map(|(topic, partition)| TopicPartition::new(topic.as_str(), *partition))
            .collect();
        let deadline =
            Instant::now() + Duration::from_millis(self.config.cluster.replica_ack_timeout_ms);
        loop {
            still_coordinator()?;
            let failed = self.write_markers_once(marker, pending).await;
            let retry: Vec<_> = failed.iter().filter(|(_, code)| retriable(*code)).collect();
            let Some((partition, code)) = failed.first() else {
                return Ok(());
            };
            if retry.len() < failed.len() || Instant::now() >= deadline {
                tracing::error!(shard = %self.id, %partition, ?code, failed = failed.len(), "writing transaction markers failed");
                return Err(ErrorCode::CoordinatorNotAvailable);
            }
            tracing::debug!(shard = %self.id, %partition, ?code, failed = failed.len(), "transaction markers failed; sending again");
            glommio::timer::sleep(MARKER_RETRY_BACKOFF).await;
            pending = retry.into_iter().map(|(p, _)| p.clone()).collect();
        }
    }

    /// One round of `write_marker_job`: every partition to its route, in parallel; returns
    /// the partitions that failed, with their error.
    async fn write_markers_once(
        self: &Rc<Self>,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let catalog = self.catalog();
        let topics = crate::quorum::view::cluster_topics();
        let view = crate::quorum::view::shard_view();
        let own = self.config.server.node_id;
        let live = |node: NodeId| {
            view.as_ref()
                .is_some_and(|v| v.brokers.iter().any(|b| b.node_id == node))
        };
        let mut local = Vec::new();
        let mut remote: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        let mut failed = Vec::new();
        for partition in partitions {
            let Some(meta) = catalog.topic(partition.topic.as_str()) else {
                continue; // deleted since it joined the transaction
            };
            let leader = topics.as_ref().and_then(|t| {
                t.partition(partition.topic.as_str(), partition.partition)
                    .map(|p| p.leader)
            });
            match route(meta.cluster, leader, own, live) {
                MarkerRoute::Local => local.push(partition),
                MarkerRoute::Leader(node) => remote.entry(node).or_default().push(partition),
                MarkerRoute::NoLeader => {
                    failed.push((partition, ErrorCode::CoordinatorNotAvailable));
                }
            }
        }
        let timeout = Duration::from_millis(
            self.config.cluster.replica_ack_timeout_ms
                + self.config.cluster.controller_connect_timeout_ms,
        );
        let remote_calls = remote.into_iter().map(|(node, partitions)| async move {
            match self
                .send_txn_markers(node, marker, partitions.clone(), timeout)
                .await
            {
                Ok(results) => results,
                Err(error) => {
                    tracing::warn!(shard = %self.id, node, %error, "WriteTxnMarkers to the partition leader failed");
                    let code = match error {
                        PeerError::Timeout(_) => ErrorCode::RequestTimedOut,
                        _ => ErrorCode::NotLeaderOrFollower,
                    };
                    partitions.into_iter().map(|p| (p, code)).collect()
                }
            }
        });
        let (local_results, remote_results) = futures::future::join(
            self.write_markers_on_owners(marker, local),
            futures::future::join_all(remote_calls),
        )
        .await;
        let results = local_results
            .into_iter()
            .chain(remote_results.into_iter().flatten());
        for (partition, code) in results {
            let gone = code == ErrorCode::UnknownTopicOrPartition
                && self.catalog().topic(partition.topic.as_str()).is_none();
            if code.is_error() && !gone {
                failed.push((partition, code));
            }
        }
        failed
    }

    /// Appends `marker` to each partition on its owner shard (in parallel per shard), as
    /// `write_markers_local` answers there.
    pub async fn write_markers_on_owners(
        self: &Rc<Self>,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let mut per_shard: BTreeMap<ShardId, Vec<TopicPartition>> = BTreeMap::new();
        for partition in partitions {
            per_shard
                .entry(self.owner_of(&partition))
                .or_default()
                .push(partition);
        }
        let calls = per_shard.into_iter().map(|(target, partitions)| async move {
            if target == self.id {
                return self.write_markers_local(marker, partitions).await;
            }
            let sent = partitions.clone();
            let answer = self
                .request(target, |reply| {
                    ShardMessage::WriteMarkers(WriteMarkersOp {
                        marker,
                        partitions: sent,
                        reply,
                    })
                })
                .await;
            answer.unwrap_or_else(|error| {
                tracing::error!(shard = %self.id, %target, %error, "owner shard did not answer a marker write");
                partitions
                    .into_iter()
                    .map(|p| (p, ErrorCode::CoordinatorNotAvailable))
                    .collect()
            })
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Appends `marker` to each partition this shard owns, then waits until each is synced
    /// and, for a replicated partition, below the high watermark (at most
    /// `cluster.replica_ack_timeout_ms`). Markers on `__consumer_offsets` also resolve the
    /// producer's pending transactional offsets once written.
    pub(super) async fn write_markers_local(
        self: &Rc<Self>,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let mut appended = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let outcome = self.append_marker(marker, &partition).await;
            appended.push((partition, outcome));
        }
        let waits = appended.into_iter().map(|(partition, outcome)| async move {
            let code = match outcome {
                Ok(appended) => self.marker_durable(&partition, appended).await,
                Err(code) => code,
            };
            (partition, code)
        });
        let results = futures::future::join_all(waits).await;
        let offsets_done = results.iter().any(|(partition, code)| {
            partition.topic.as_str() == crate::group::OFFSETS_TOPIC && !code.is_error()
        });
        if offsets_done {
            self.resolve_txn_offsets(marker.producer_id, marker.commit);
        }
        results
    }

    /// Appends the control batch under the partition's leader role (cluster mode) with its
    /// leader epoch; NOT_ENOUGH_REPLICAS before the append when the ISR is below
    /// `min.insync.replicas`, as an acks=-1 append.
    async fn append_marker(
        &self,
        marker: Marker,
        partition: &TopicPartition,
    ) -> Result<Appended, ErrorCode> {
        let catalog = self.catalog();
        let meta = catalog.topic(partition.topic.as_str());
        let cluster_copy = meta.is_some_and(|meta| meta.cluster);
        let Some(log) = self.log(partition) else {
            // A partition of the metadata log that has no replica here: Kafka's answer for
            // a known partition this broker does not lead.
            let known = meta
                .is_some_and(|m| partition.partition >= 0 && partition.partition < m.partitions);
            return Err(match self.missing_log_error(partition) {
                ErrorCode::UnknownTopicOrPartition if cluster_copy && known => {
                    ErrorCode::NotLeaderOrFollower
                }
                code => code,
            });
        };
        let leader_epoch = self
            .replicas
            .leader_epoch_for_append(partition, cluster_copy)
            .inspect_err(|_| {
                tracing::warn!(shard = %self.id, %partition, "transaction marker for a partition this broker does not lead: not written");
            })?
            .unwrap_or(0);
        self.replicas.check_acks_all(partition)?;
        let generation = self.replicas.leader_generation(partition);
        let batch = Bytes::from(encode_control_batch(
            marker.producer_id,
            marker.producer_epoch,
            marker.commit,
            marker.coordinator_epoch,
            super::now_ms(),
        ));
        let appended = log
            .append(batch, leader_epoch, super::now_ms())
            .await
            .map_err(|error| {
                tracing::error!(shard = %self.id, %partition, %error, "marker append failed");
                super::partition_ops::storage_error_code(&error)
            })?;
        self.replicas.leader_appended(partition, &log);
        Ok(Appended {
            log,
            last_offset: appended.last_offset,
            generation,
        })
    }

    /// Waits until an appended marker is synced and replicated (see `wait_replicated`).
    async fn marker_durable(&self, partition: &TopicPartition, appended: Appended) -> ErrorCode {
        let Appended {
            log,
            last_offset,
            generation,
        } = appended;
        if let Err(error) = log.wait_synced(last_offset).await {
            tracing::error!(shard = %self.id, %partition, %error, "marker sync failed");
            return super::partition_ops::storage_error_code(&error);
        }
        match self
            .wait_replicated(partition, &log, last_offset, generation)
            .await
        {
            Ok(()) => ErrorCode::None,
            Err(code) => {
                tracing::warn!(shard = %self.id, %partition, ?code, "marker not replicated");
                code
            }
        }
    }

    /// Sends one WriteTxnMarkers with `marker` for `partitions` to broker `node` and returns
    /// its per-partition answers (on this shard's pooled connection to it, `call_peer`).
    pub(crate) async fn send_txn_markers(
        &self,
        node: NodeId,
        marker: Marker,
        partitions: Vec<TopicPartition>,
        timeout: Duration,
    ) -> Result<Vec<(TopicPartition, ErrorCode)>, PeerError> {
        let request = markers_request(marker, &partitions);
        let response: WriteTxnMarkersResponse = self
            .call_peer(
                node,
                ApiKey::WriteTxnMarkers,
                WRITE_TXN_MARKERS_VERSION,
                &request,
                timeout,
                MARKERS_RESPONSE_BYTES_MAX,
            )
            .await?;
        Ok(answers_for(marker.producer_id, partitions, response))
    }
}

/// A WriteTxnMarkers request with one marker, partitions grouped by topic.
fn markers_request(marker: Marker, partitions: &[TopicPartition]) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for partition in partitions {
        topics
            .entry(partition.topic.as_str())
            .or_default()
            .push(partition.partition);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(topics),
    ])
}

/// Each asked partition with the answer's code for it; a partition the answer leaves out
/// gets UNKNOWN_SERVER_ERROR (not retried: the peer does not speak the protocol as asked).
fn answers_for(
    producer_id: i64,
    asked: Vec<TopicPartition>,
    response: WriteTxnMarkersResponse,
) -> Vec<(TopicPartition, ErrorCode)> {
    let mut codes: HashMap<(String, i32), ErrorCode> = HashMap::new();
    for result in response
        .markers
        .into_iter()
        .filter(|m| m.producer_id.0 == producer_id)
    {
        for topic in result.topics {
            for partition in topic.partitions {
                codes.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    ErrorCode::from_code(partition.error_code),
                );
            }
        }
    }
    asked
        .into_iter()
        .map(|partition| {
            let key = (partition.topic.to_string(), partition.partition);
            let code = codes
                .get(&key)
                .copied()
                .unwrap_or(ErrorCode::UnknownServerError);
            (partition, code)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };

    #[test]
    fn routes_by_leader() {
        let live = |node: NodeId| node == 2 || node == 3;
        assert_eq!(route(false, None, 1, live), MarkerRoute::Local);
        assert_eq!(route(false, Some(2), 1, live), MarkerRoute::Local);
        assert_eq!(route(true, Some(1), 1, live), MarkerRoute::Local);
        assert_eq!(route(true, Some(2), 1, live), MarkerRoute::Leader(2));
        assert_eq!(route(true, Some(4), 1, live), MarkerRoute::NoLeader);
        assert_eq!(route(true, Some(-1), 1, live), MarkerRoute::NoLeader);
        assert_eq!(route(true, None, 1, live), MarkerRoute::NoLeader);
    }

    #[test]
    fn retries_what_a_new_leader_or_time_can_fix() {
        assert!(retriable(ErrorCode::NotLeaderOrFollower));
        assert!(retriable(ErrorCode::NotEnoughReplicas));
        assert!(retriable(ErrorCode::RequestTimedOut));
        assert!(!retriable(ErrorCode::None));
        assert!(!retriable(ErrorCode::UnknownServerError));
        assert!(!retriable(ErrorCode::InvalidProducerEpoch));
    }

    #[test]
    fn request_groups_partitions_by_topic() {
        let marker = Marker {
            producer_id: 7,
            producer_epoch: 3,
            commit: true,
            coordinator_epoch: 5,
        };
        let request = markers_request(
            marker,
            &[
                TopicPartition::new("b", 1),
                TopicPartition::new("a", 0),
                TopicPartition::new("b", 0),
            ],
        );
        assert_eq!(request.markers.len(), 1);
        let sent = &request.markers[0];
        assert_eq!(
            (
                sent.producer_id.0,
                sent.producer_epoch,
                sent.coordinator_epoch
            ),
            (7, 3, 5)
        );
        assert!(sent.transaction_result);
        let topics: Vec<(String, Vec<i32>)> = sent
            .topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect();
        assert_eq!(
            topics,
            vec![("a".to_string(), vec![0]), ("b".to_string(), vec![1, 0])]
        );
    }

    #[test]
    fn a_partition_missing_from_the_answer_is_an_error() {
        let response = WriteTxnMarkersResponse::default().with_markers(vec![
            WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(7))
                .with_topics(vec![
                    WritableTxnMarkerTopicResult::default()
                        .with_name(TopicName(StrBytes::from_static_str("a")))
                        .with_partitions(vec![
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(0)
                                .with_error_code(ErrorCode::NotLeaderOrFollower.code()),
                            WritableTxnMarkerPartitionResult::default().with_partition_index(1),
                        ]),
                ]),
        ]);
        let asked = vec![
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 1),
            TopicPartition::new("a", 2),
        ];
        let answers = answers_for(7, asked, response);
        let codes: Vec<ErrorCode> = answers.into_iter().map(|(_, code)| code).collect();
        assert_eq!(
            codes,
            vec![
                ErrorCode::NotLeaderOrFollower,
                ErrorCode::None,
                ErrorCode::UnknownServerError
            ]
        );
    }
}
