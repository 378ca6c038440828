//! Operations on partition logs owned by this shard: append, read, long-poll wait, list
//! offsets, and opening/removing logs when the catalog changes.

use super::data_dir::claim_partition_dir;
use super::messages::*;
use super::metrics::{ProduceStage, RejectReason};
use super::{OfflineReason, Shard, now_ms};
use crate::metadata::{Catalog, TopicMeta, topic_id_hex};
use crate::model::compression::CompressionError;
use crate::model::validation::ValidationError;
use crate::model::{ErrorCode, Offset, TopicPartition};
use crate::storage::{BlockingOp, PartitionLog, ReadLimits, StorageError, run_off_shard};
use futures::future::{LocalBoxFuture, select, select_all};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ListOffsets special timestamps (Kafka's `ListOffsetsRequest` constants).
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// KIP-734, ListOffsets v7+.
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405, ListOffsets v8+.
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
/// KIP-1005, ListOffsets v9+.
const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// Leader epoch stamped on appended batches (single broker: epoch 0 until replication).
const LEADER_EPOCH: i32 = 0;

/// The one mapping from storage errors to Kafka error codes. A batch on disk that fails
/// its checks is CORRUPT_MESSAGE, as Kafka answers: clients report it to the application
/// (librdkafka as a consumer error, the Java consumer throws) instead of retrying the same
/// offset forever, which they do for KAFKA_STORAGE_ERROR.
pub fn storage_error_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::Validation(ValidationError::Corrupt(_)) => ErrorCode::CorruptMessage,
        StorageError::Validation(ValidationError::Invalid(_)) => ErrorCode::InvalidRecord,
        StorageError::Validation(ValidationError::TooLarge { .. })
        | StorageError::Compression(CompressionError::TooLarge { .. }) => {
            ErrorCode::MessageTooLarge
        }
        StorageError::InvalidBatch(_) | StorageError::Compression(_) => ErrorCode::CorruptMessage,
        StorageError::CorruptData { .. } | StorageError::MisplacedBatch { .. } => {
            ErrorCode::CorruptMessage
        }
        StorageError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
        StorageError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::UnexpectedAppendOffset { .. } => ErrorCode::UnknownServerError,
        StorageError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        StorageError::TransactionNotVerified { .. } => ErrorCode::TransactionAbortable,
        StorageError::TransactionCoordinatorFenced { .. } => {
            ErrorCode::TransactionCoordinatorFenced
        }
        StorageError::Closed => ErrorCode::NotLeaderOrFollower,
        StorageError::Io { .. } | StorageError::Damaged { .. } => ErrorCode::KafkaStorageError,
        #[allow(unreachable_patterns)]
        _ => ErrorCode::KafkaStorageError,
    }
}

fn produce_error(
    partition: TopicPartition,
    error: ErrorCode,
    message: Option<String>,
) -> ProducePartitionResult {
    ProducePartitionResult {
        partition,
        error,
        error_message: message,
        record_errors: Vec::new(),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

/// An append whose acks level stage 2 of the produce waits for.
struct AwaitedAppend {
    /// Its index in the results.
    index: usize,
    log: Rc<PartitionLog>,
    last_offset: Offset,
    /// The leader role's generation in cluster mode.
    generation: Option<u64>,
    /// When the append ended (the flush or sync wait starts here).
    appended: Instant,
}

impl Shard {
    /// Stage 1: appends every partition's records in order. Returns stage 2, which waits
    /// until the batches are flushed (acks=1: the O_DIRECT write completed, so they survive
    /// kill -9) or synced (acks=all: fdatasync returned, so they survive power loss).
    pub(super) async fn produce_local(
        self: &Rc<Self>,
        partitions: Vec<ProducePartition>,
        acks: Acks,
        received: Instant,
    ) -> LocalBoxFuture<'static, Vec<ProducePartitionResult>> {
        let mut results = Vec::with_capacity(partitions.len());
        let mut to_wait: Vec<AwaitedAppend> = Vec::new();
        let catalog = self.catalog();
        for ProducePartition { partition, records } in partitions {
            if self.disk.is_full() {
                self.metrics
                    .produced(records.len(), Some(RejectReason::DiskFull));
                let message = "not enough free disk space; writes resume when space is freed";
                results.push(produce_error(
                    partition,
                    ErrorCode::KafkaStorageError,
                    Some(message.to_string()),
                ));
                continue;
            }
            let Some(log) = self.log(&partition) else {
                let code = self.missing_log_error(&partition);
                let reason = match code {
                    ErrorCode::UnknownTopicOrPartition => RejectReason::UnknownPartition,
                    _ => RejectReason::StorageError,
                };
                self.metrics.produced(records.len(), Some(reason));
                results.push(produce_error(partition, code, None));
                continue;
            };
            // Cluster mode: only the leader role appends, stamping its leader epoch.
            let cluster_copy = catalog
                .topic(partition.topic.as_str())
                .is_some_and(|meta| meta.cluster);
            let leader_epoch = match self
                .replicas
                .leader_epoch_for_append(&partition, cluster_copy)
                .and_then(|epoch| {
                    if acks == Acks::All {
                        self.replicas.check_acks_all(&partition)?;
                    }
                    Ok(epoch)
                }) {
                Ok(epoch) => epoch.unwrap_or(LEADER_EPOCH),
                Err(code) => {
                    let reason = if code == ErrorCode::NotEnoughReplicas {
                        RejectReason::NotEnoughReplicas
                    } else {
                        RejectReason::NotLeader
                    };
                    self.metrics.produced(records.len(), Some(reason));
                    results.push(produce_error(partition, code, None));
                    continue;
                }
            };
            let bytes = records.len();
            let append_started = Instant::now();
            self.metrics.produce_stage(
                ProduceStage::QueueWait,
                append_started
                    .saturating_duration_since(received)
                    .as_secs_f64(),
            );
            let appended = log
                .append_from_client(records, leader_epoch, now_ms())
                .await;
            let append_ended = Instant::now();
            self.metrics.produce_stage(
                ProduceStage::Append,
                (append_ended - append_started).as_secs_f64(),
            );
            self.replicas.leader_appended(&partition, &log);
            let generation = self.replicas.leader_generation(&partition);
            let reason = appended.as_ref().err().map(RejectReason::of_storage_error);
            self.metrics.produced(bytes, reason);
            match appended {
                Ok(appended) => {
                    if acks != Acks::None {
                        to_wait.push(AwaitedAppend {
                            index: results.len(),
                            log: log.clone(),
                            last_offset: appended.last_offset,
                            generation,
                            appended: append_ended,
                        });
                    }
                    results.push(ProducePartitionResult {
                        partition,
                        error: ErrorCode::None,
                        error_message: None,
                        record_errors: Vec::new(),
                        base_offset: appended.base_offset.value(),
                        log_append_time_ms: appended.log_append_time_ms,
                        log_start_offset: appended.log_start_offset.value(),
                    });
                }
                Err(error) => {
                    if error.is_disk_full() {
                        self.check_disk();
                    }
                    let code = storage_error_code(&error);
                    tracing::warn!(shard = %self.id, %partition, %error, "append rejected");
                    results.push(ProducePartitionResult {
                        record_errors: error.record_errors(),
                        ..produce_error(partition, code, Some(error.to_string()))
                    });
                }
            }
        }
        let shard = self.clone();
        Box::pin(async move {
            for AwaitedAppend {
                index,
                log,
                last_offset,
                generation,
                appended,
            } in to_wait
            {
                let (durable, stage) = if acks == Acks::All {
                    (log.wait_synced(last_offset).await, ProduceStage::SyncWait)
                } else {
                    (log.wait_flushed(last_offset).await, ProduceStage::FlushWait)
                };
                let durable_at = Instant::now();
                shard
                    .metrics
                    .produce_stage(stage, (durable_at - appended).as_secs_f64());
                let partition = &results[index].partition;
                if durable.is_ok() && acks == Acks::All {
                    let replicated = shard
                        .wait_replicated(partition, &log, last_offset, generation)
                        .await;
                    if generation.is_some() {
                        shard.metrics.produce_stage(
                            ProduceStage::ReplicationWait,
                            durable_at.elapsed().as_secs_f64(),
                        );
                    }
                    if let Err(code) = replicated {
                        let result = &mut results[index];
                        result.error = code;
                        continue;
                    }
                }
                if let Err(error) = durable {
                    tracing::error!(shard = %shard.id, %error, "flush or sync failed");
                    shard
                        .metrics
                        .rejected(RejectReason::of_storage_error(&error));
                    let result = &mut results[index];
                    result.error = storage_error_code(&error);
                    result.error_message = Some(error.to_string());
                }
            }
            results
        })
    }

    /// Reads partitions in order, each up to its own limit and to what is left of
    /// `total_bytes_max`, as Kafka does: the read stops at the response limit instead of
    /// collecting every partition's maximum. Only the first partition with data may return a
    /// batch larger than its limit (KIP-74); the others return whole batches that fit.
    pub(super) async fn read_local(
        &self,
        partitions: Vec<ReadPartition>,
        budget: ReadBudget,
    ) -> Vec<ReadPartitionResult> {
        let mut results = Vec::with_capacity(partitions.len());
        let mut remaining = budget.total_bytes_max;
        let mut disk_remaining = budget.disk_bytes_max;
        let mut first_with_data = budget.min_one_batch;
        for request in partitions {
            let limits = ReadLimits {
                max_bytes: request.max_bytes.min(remaining),
                min_one_batch: first_with_data,
                disk_bytes_max: disk_remaining,
            };
            let result = self.read_one(request, limits).await;
            let bytes = result.bytes();
            remaining = remaining.saturating_sub(bytes);
            disk_remaining = disk_remaining.saturating_sub(result.disk_bytes);
            first_with_data &= bytes == 0;
            results.push(result);
            // Thousands of partitions in one request must not hold the shard.
            glommio::yield_if_needed().await;
        }
        results
    }

    async fn read_one(&self, request: ReadPartition, limits: ReadLimits) -> ReadPartitionResult {
        let mut result = ReadPartitionResult {
            partition: request.partition.clone(),
            error: ErrorCode::None,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            batches: Vec::new(),
            disk_bytes: 0,
            disk_limited: false,
            aborted_transactions: request.read_committed.then(Vec::new),
        };
        let Some(log) = self.log(&request.partition) else {
            result.error = self.missing_log_error(&request.partition);
            return result;
        };
        if let Some(replica) = request.replica {
            return self
                .read_for_replica(result, &request, replica, &log, limits)
                .await;
        }
        if let Err(code) = self.serves_clients(&request.partition) {
            result.error = code;
            return result;
        }
        result.high_watermark = log.high_watermark().value();
        result.last_stable_offset = log.last_stable_offset().value();
        result.log_start_offset = log.log_start_offset().value();
        let visible_end = if request.read_committed {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        let in_range = request.offset >= log.log_start_offset() && request.offset <= visible_end;
        // Nothing to send (caught up, or the response is already full): answer with the
        // watermarks without touching the log. Out-of-range offsets still get their error.
        let nothing_fits = limits.max_bytes == 0 && !limits.min_one_batch;
        if in_range && (request.offset == visible_end || nothing_fits) {
            return result;
        }
        let read = log
            .read_isolated(request.offset, limits, request.read_committed)
            .await;
        match read {
            Ok(read) => {
                result.high_watermark = read.high_watermark.value();
                result.last_stable_offset = read.last_stable_offset.value();
                result.log_start_offset = read.log_start_offset.value();
                result.batches = read.batches;
                result.disk_bytes = read.disk_bytes;
                result.disk_limited = read.disk_limited;
                if request.read_committed {
                    result.aborted_transactions = Some(
                        read.aborted_transactions
                            .iter()
                            .map(|a| (a.producer_id, a.first_offset.value()))
                            .collect(),
                    );
                }
            }
            Err(error) => {
                result.error = storage_error_code(&error);
                if !matches!(error, StorageError::OffsetOutOfRange { .. }) {
                    tracing::error!(shard = %self.id, partition = %request.partition, %error, "read failed");
                }
            }
        }
        result
    }

    pub(super) async fn wait_for_data_local(
        &self,
        partitions: Vec<(TopicPartition, Offset, WaitEnd)>,
        timeout: Duration,
    ) {
        let mut waits: Vec<LocalBoxFuture<'static, ()>> = Vec::new();
        for (partition, offset, end) in partitions {
            if let Some(log) = self.log(&partition) {
                let current_end = match end {
                    WaitEnd::HighWatermark => log.high_watermark(),
                    WaitEnd::LastStable => log.last_stable_offset(),
                    WaitEnd::LogEnd => log.log_end_offset(),
                };
                if current_end > offset {
                    return;
                }
                waits.push(match end {
                    WaitEnd::HighWatermark => {
                        Box::pin(async move { log.wait_for_append(offset).await })
                    }
                    WaitEnd::LastStable => {
                        Box::pin(async move { log.wait_for_stable(offset).await })
                    }
                    WaitEnd::LogEnd => Box::pin(async move { log.wait_for_log_end(offset).await }),
                });
            }
        }
        let sleep = Box::pin(glommio::timer::sleep(timeout));
        if waits.is_empty() {
            sleep.await;
            return;
        }
        let _ = select(select_all(waits), sleep).await;
    }

    pub(super) async fn list_offsets_local(
        &self,
        partitions: Vec<ListOffsetsPartition>,
    ) -> Vec<ListOffsetsResult> {
        let mut results = Vec::with_capacity(partitions.len());
        for request in partitions {
            results.push(self.list_offset_one(request).await);
        }
        results
    }

    async fn list_offset_one(&self, request: ListOffsetsPartition) -> ListOffsetsResult {
        let mut result = ListOffsetsResult {
            partition: request.partition.clone(),
            error: ErrorCode::None,
            timestamp: -1,
            offset: -1,
        };
        let Some(log) = self.log(&request.partition) else {
            result.error = self.missing_log_error(&request.partition);
            return result;
        };
        if let Err(code) = self.serves_clients(&request.partition) {
            result.error = code;
            return result;
        }
        let latest = if request.read_committed {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        // The special timestamps are documented in docs/protocol-coverage.md.
        let found = match request.timestamp {
            LATEST_TIMESTAMP => Ok(Some((latest, -1))),
            // No tiered storage: the earliest local offset is the log start offset.
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => Ok(Some((log.log_start_offset(), -1))),
            MAX_TIMESTAMP => log.max_timestamp().await,
            // No tiered storage: nothing was moved to remote storage, so offset -1 (as Kafka
            // answers for a topic without remote storage).
            LATEST_TIERED_TIMESTAMP => Ok(None),
            timestamp if timestamp >= 0 => log.offset_for_timestamp(timestamp).await,
            _ => {
                result.error = ErrorCode::InvalidRequest;
                return result;
            }
        };
        match found {
            Ok(Some((offset, timestamp))) => {
                result.offset = offset.value();
                result.timestamp = timestamp;
            }
            Ok(None) => {}
            Err(error) => result.error = storage_error_code(&error),
        }
        result
    }

    /// DeleteRecords on owned partitions. On a replicated partition only its leader deletes,
    /// and answers once every live replica's log start has followed (`wait_low_watermark`,
    /// at most `timeout`); the partitions wait together.
    pub(super) async fn delete_records_local(
        &self,
        partitions: Vec<(TopicPartition, i64)>,
        timeout: Duration,
    ) -> Vec<(TopicPartition, Result<i64, ErrorCode>)> {
        let deletions = partitions
            .into_iter()
            .map(|(partition, offset)| async move {
                let outcome = self.delete_records_of(&partition, offset, timeout).await;
                (partition, outcome)
            });
        futures::future::join_all(deletions).await
    }

    async fn delete_records_of(
        &self,
        partition: &TopicPartition,
        offset: i64,
        timeout: Duration,
    ) -> Result<i64, ErrorCode> {
        let Some(log) = self.log(partition) else {
            return Err(self.missing_log_error(partition));
        };
        self.serves_clients(partition)?;
        let generation = self.replicas.leader_generation(partition);
        let high_watermark = log.high_watermark();
        let target = if offset == -1 {
            high_watermark
        } else {
            Offset(offset)
        };
        if target.value() < 0 || target > high_watermark {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        let start = log
            .delete_records_before(target)
            .await
            .map_err(|error| storage_error_code(&error))?;
        match generation {
            Some(generation) => {
                self.wait_low_watermark(partition, &log, target, generation, timeout)
                    .await
            }
            None => Ok(start.value()),
        }
    }

    pub(super) fn producers_local(
        &self,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, Option<Vec<crate::storage::ProducerInfo>>)> {
        partitions
            .into_iter()
            .map(|partition| {
                let producers = self.log(&partition).map(|log| log.producers());
                (partition, producers)
            })
            .collect()
    }

    pub(super) fn epoch_ends_local(
        &self,
        partitions: Vec<(TopicPartition, i32)>,
    ) -> Vec<EpochEndResult> {
        partitions
            .into_iter()
            .map(|(partition, epoch)| {
                let mut result = EpochEndResult {
                    partition,
                    requested_epoch: epoch,
                    error: ErrorCode::None,
                    leader_epoch: -1,
                    end_offset: -1,
                };
                match self.log(&result.partition) {
                    None => result.error = self.missing_log_error(&result.partition),
                    Some(log) => {
                        if let Some((found, end)) = log.end_offset_for_leader_epoch(epoch) {
                            result.leader_epoch = found;
                            result.end_offset = end.value();
                        }
                    }
                }
                result
            })
            .collect()
    }

    pub(super) fn log_sizes_local(&self) -> Vec<(TopicPartition, u64)> {
        self.owned_logs()
            .into_iter()
            .map(|(partition, log)| (partition, log.size_bytes()))
            .collect()
    }

    /// Syncs and closes every log on this shard (clean shutdown).
    pub(super) async fn close_logs(&self) {
        let logs = self.owned_logs();
        let count = logs.len();
        for (partition, log) in logs {
            if let Err(error) = log.close().await {
                super::shutdown::mark_log_close_failed();
                tracing::error!(shard = %self.id, %partition, %error, "closing log failed");
            }
        }
        tracing::info!(shard = %self.id, logs = count, "logs closed");
    }

    /// Brings this shard's open logs in line with `catalog`: removes the partitions of
    /// deleted topics (tombstone rename, then removal) and opens the new ones.
    pub(super) async fn apply_catalog(self: &Rc<Self>, catalog: Arc<Catalog>) {
        let previous = self.catalog();
        self.set_catalog(catalog.clone());
        let kept = |partition: &TopicPartition| {
            catalog
                .topic(partition.topic.as_str())
                .is_some_and(|t| partition.partition < t.partitions)
        };
        for (partition, log) in self.owned_logs() {
            if !kept(&partition) {
                self.remove_log(&partition);
                let tag = deletion_tag(&previous, &catalog, &partition);
                match log.remove(&tag).await {
                    Ok(()) => tracing::info!(shard = %self.id, %partition, "partition removed"),
                    Err(error) => {
                        tracing::error!(shard = %self.id, %partition, %error, "removing log failed")
                    }
                }
            }
        }
        self.remove_offline_partitions(&previous, &catalog, kept)
            .await;
        for (partition, log) in self.owned_logs() {
            if let Some(topic) = catalog.topic(partition.topic.as_str()) {
                log.update_config(self.log_config_for(topic));
            }
        }
        for topic in catalog.topics() {
            for index in 0..topic.partitions {
                let partition = TopicPartition::new(topic.name.as_str(), index);
                let known = self.log(&partition).is_some() || self.is_offline(&partition);
                if self.owner_of(&partition) != self.id || known {
                    continue;
                }
                self.open_partition(topic, partition).await;
            }
        }
    }

    /// Offline partitions of deleted topics: a damaged log's directory is the topic's and
    /// goes with it; an unidentified directory is not the topic's and stays untouched.
    async fn remove_offline_partitions(
        &self,
        previous: &Catalog,
        catalog: &Catalog,
        kept: impl Fn(&TopicPartition) -> bool,
    ) {
        for (partition, reason) in self.offline_partitions() {
            if kept(&partition) {
                continue;
            }
            self.clear_offline(&partition);
            if reason == OfflineReason::UnidentifiedDir {
                continue;
            }
            let dir = self.config.storage.data_dir.join(partition.dir_name());
            let tag = deletion_tag(previous, catalog, &partition);
            let removed = run_off_shard(BlockingOp::RemovePartitionDir, move || {
                crate::storage::remove_partition_dir(&dir, &tag)
            });
            match removed.await {
                Ok(()) => tracing::info!(shard = %self.id, %partition, "partition removed"),
                Err(error) => {
                    tracing::error!(shard = %self.id, %partition, %error, "removing log failed")
                }
            }
        }
    }

    /// Claims the partition's directory and opens its log; a failure leaves the partition
    /// offline (KAFKA_STORAGE_ERROR to clients, `shardlog_partition_offline` in /metrics).
    pub(super) async fn open_partition(
        self: &Rc<Self>,
        topic: &TopicMeta,
        partition: TopicPartition,
    ) {
        let dir = self.config.storage.data_dir.join(partition.dir_name());
        let (claimed_dir, id) = (dir.clone(), topic.id);
        let claimed = run_off_shard(BlockingOp::ClaimPartitionDir, move || {
            claim_partition_dir(&claimed_dir, &id)
        });
        if let Err(error) = claimed.await {
            tracing::error!(shard = %self.id, %partition, %error, "cannot use partition dir; partition offline");
            let reason = match error.unidentified {
                true => OfflineReason::UnidentifiedDir,
                false => OfflineReason::OpenFailed,
            };
            self.set_offline(partition, reason);
            return;
        }
        let config = self.log_config_for(topic);
        match PartitionLog::open(&dir, config, self.cache(), self.storage_stats()).await {
            Ok(log) => {
                tracing::info!(shard = %self.id, %partition, log_end_offset = %log.log_end_offset(), corrupt_batches = log.corrupt_batches(), read_only = log.is_failed(), "partition opened");
                self.clear_offline(&partition);
                self.insert_log(partition, log);
            }
            Err(error) => {
                let reason = match error {
                    StorageError::Damaged { .. } => OfflineReason::Damaged,
                    _ => OfflineReason::OpenFailed,
                };
                tracing::error!(shard = %self.id, %partition, %error, "cannot open partition log; partition offline");
                self.set_offline(partition, reason);
            }
        }
    }
}

impl Shard {
    /// Replaces a followed partition's log with an empty one starting at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): at the leader's log start offset when everything this
    /// replica holds lies below it, or at the base offset of the leader's first batch when the
    /// log is empty and that batch starts below its end. A failure leaves the partition
    /// offline.
    pub(super) async fn restart_log_at(self: &Rc<Self>, partition: &TopicPartition, offset: i64) {
        self.replace_with_empty_log(partition, offset, |old| {
            let log_end = old.log_end_offset();
            assert!(
                log_end.value() < offset || old.log_start_offset() == log_end,
                "only an empty log, or one wholly below the leader's log start ({log_end} >= {offset}), restarts"
            );
        })
        .await;
    }

    /// Empties the local copy of a partition this broker is no longer a replica of (a
    /// reassignment moved it away; Kafka deletes the replica's log): its records are removed
    /// and an empty log at offset 0 takes its place, as a replica that never had any, so a
    /// later reassignment back here copies the partition afresh from its leader.
    pub(super) async fn drop_removed_replica(self: &Rc<Self>, partition: &TopicPartition) {
        self.replace_with_empty_log(partition, 0, |_| {}).await;
    }

    /// Closes `partition`'s log and removes its directory (`check` sees the old log first),
    /// then claims the directory again with one empty segment at `offset`
    /// (`storage::start_empty_log_at`) and opens it. A failure leaves the partition offline.
    async fn replace_with_empty_log(
        self: &Rc<Self>,
        partition: &TopicPartition,
        offset: i64,
        check: impl FnOnce(&PartitionLog),
    ) {
        let catalog = self.catalog();
        let Some(topic) = catalog.topic(partition.topic.as_str()) else {
            return;
        };
        let Some(old) = self.remove_log(partition) else {
            return;
        };
        check(&old);
        let log_end = old.log_end_offset();
        if let Err(error) = old.remove(&topic_id_hex(&topic.id)).await {
            tracing::error!(shard = %self.id, %partition, %error, "cannot remove the log to restart it; partition offline");
            self.set_offline(partition.clone(), OfflineReason::OpenFailed);
            return;
        }
        let (dir, id) = (
            self.config.storage.data_dir.join(partition.dir_name()),
            topic.id,
        );
        let prepared = run_off_shard(BlockingOp::ClaimPartitionDir, move || {
            claim_partition_dir(&dir, &id).map_err(|e| e.to_string())?;
            crate::storage::start_empty_log_at(&dir, offset)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(error) = prepared.await {
            tracing::error!(shard = %self.id, %partition, %error, "cannot restart the log; partition offline");
            self.set_offline(partition.clone(), OfflineReason::OpenFailed);
            return;
        }
        tracing::warn!(shard = %self.id, %partition, %log_end, log_start_offset = offset, "partition log replaced by an empty one");
        self.open_partition(topic, partition.clone()).await;
    }
}

/// The tombstone tag of a removed partition: its topic id (from the catalog that still had
/// it, or the deletion record), else "unknown".
fn deletion_tag(previous: &Catalog, catalog: &Catalog, partition: &TopicPartition) -> String {
    let name = partition.topic.as_str();
    previous
        .topic(name)
        .or_else(|| catalog.deleting().iter().find(|t| t.name == name))
        .map_or_else(|| "unknown".to_string(), |t| topic_id_hex(&t.id))
}
