//! `Shard`: the state one executor owns, and routing of operations to the owning shard
//! (a direct call when local, a mesh message otherwise).

use super::controller::Controller;
use super::group_coordinator::GroupCoordinator;
use super::memory::MemoryBudget;
use super::mesh::Mesh;
use super::messages::*;
use super::reply::reply_channel;
use super::txn_coordinator::TxnCoordinator;
use crate::config::Config;
use crate::metadata::{Catalog, DynamicBrokerConfigs, TopicMeta, shard_for, topic_config};
use crate::model::{ErrorCode, ShardId, TimestampType, TopicPartition};
use crate::storage::{BatchCache, CleanupPolicy, LogConfig, PartitionLog, StorageStats};
use futures::future::LocalBoxFuture;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ShardError {
    #[error("shard {target} is unreachable (channel closed)")]
    Unreachable { target: ShardId },
    #[error("shard {target} dropped the reply")]
    NoReply { target: ShardId },
}

/// Why a partition this shard owns has no open log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OfflineReason {
    /// Recovery found synced data missing or unreadable (`StorageError::Damaged`).
    Damaged,
    /// Its directory belongs to another or an unknown topic (never adopted or wiped).
    UnidentifiedDir,
    /// Opening failed otherwise (I/O error).
    OpenFailed,
    /// Being reopened (after the disk was full).
    Reopening,
}

impl OfflineReason {
    pub const ALL: [OfflineReason; 4] = [
        OfflineReason::Damaged,
        OfflineReason::UnidentifiedDir,
        OfflineReason::OpenFailed,
        OfflineReason::Reopening,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OfflineReason::Damaged => "damaged",
            OfflineReason::UnidentifiedDir => "unidentified_dir",
            OfflineReason::OpenFailed => "open_failed",
            OfflineReason::Reopening => "reopening",
        }
    }
}

pub struct Shard {
    pub id: ShardId,
    pub shard_count: usize,
    /// The static config (file, environment, flags).
    pub config: Arc<Config>,
    /// Dynamic broker configs (AlterConfigs on BROKER), as the controller last broadcast.
    dynamic_configs: RefCell<Arc<DynamicBrokerConfigs>>,
    /// `config` with `dynamic_configs` laid over it: what the logs run with.
    effective_config: RefCell<Arc<Config>>,
    catalog: RefCell<Arc<Catalog>>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// Owned partitions of the catalog without an open log, and why.
    offline: RefCell<BTreeMap<TopicPartition, OfflineReason>>,
    cache: Rc<BatchCache>,
    /// Storage counters shared by this shard's logs (fdatasync latency, append waits).
    storage_stats: Rc<StorageStats>,
    mesh: Rc<Mesh>,
    pub(super) controller: Option<Controller>,
    pub(super) coordinator: GroupCoordinator,
    pub(super) txn_coordinator: TxnCoordinator,
    /// Cluster mode: the replication roles of this shard's partitions.
    pub(super) replicas: super::replicas::Replicas,
    pub metrics: super::metrics::ShardMetrics,
    /// Free-space state of the data dir's filesystem.
    pub disk: super::disk::DiskGuard,
    /// Request bytes received or being handled on this shard (`request_memory_bytes_max`).
    pub request_memory: Rc<MemoryBudget>,
    /// Reserve for small request frames when `request_memory` is full (an eighth of
    /// `request_memory_bytes_max`, at least 1 MiB; see `server::request_memory`).
    pub small_request_memory: Rc<MemoryBudget>,
    /// One request frame on this shard is overdrawing `request_memory` to finish.
    pub request_overdraft: std::cell::Cell<bool>,
    /// Fetch response bytes read but not yet written (`response_memory_bytes_max`).
    pub response_memory: Rc<MemoryBudget>,
    /// Fires when the broker is shutting down.
    pub shutdown: super::shutdown::ShutdownSignal,
    /// Counts shards that have opened all their partitions.
    pub startup: super::startup::StartupBarrier,
    /// Bytes the scrub has checked on this shard.
    pub(super) scrubbed_bytes: std::cell::Cell<u64>,
    /// Producer ids below this were handed out (a cache of the controller's answer; see
    /// `producer_checks`).
    pub(super) producer_id_bound: std::cell::Cell<i64>,
    /// Idle WriteTxnMarkers connections to other brokers (`txn_markers`).
    pub(super) peer_pool: super::peer_connection::PeerPool,
    /// SASL users, shared by every shard of the process (not on the data path: read per
    /// login, replaced per credential change).
    pub credentials: Arc<crate::security::sasl::CredentialStore>,
}

impl Shard {
    pub(super) fn new(
        id: ShardId,
        shard_count: usize,
        config: Arc<Config>,
        start: super::pool::StartState,
        mesh: Rc<Mesh>,
    ) -> Shard {
        let super::pool::StartState {
            catalog,
            meta,
            dynamic_configs,
            credentials,
            startup,
        } = start;
        let effective_config = Arc::new(dynamic_configs.effective(&config));
        let cache = Rc::new(BatchCache::new(config.storage.batch_cache_bytes_max));
        let controller = (id == ShardId(0)).then(|| Controller::new(&config, meta));
        let coordinator = GroupCoordinator::new(&config.group);
        let txn_coordinator = TxnCoordinator::new(&config.transaction);
        let request_memory = MemoryBudget::new(config.server.request_memory_bytes_max);
        let small_request_memory =
            MemoryBudget::new((config.server.request_memory_bytes_max / 8).max(1 << 20));
        let response_memory = MemoryBudget::new(config.server.response_memory_bytes_max);
        Shard {
            id,
            shard_count,
            config,
            dynamic_configs: RefCell::new(dynamic_configs),
            effective_config: RefCell::new(effective_config),
            catalog: RefCell::new(catalog),
            logs: RefCell::new(HashMap::new()),
            offline: RefCell::new(BTreeMap::new()),
            cache,
            storage_stats: Rc::default(),
            mesh,
            controller,
            coordinator,
            txn_coordinator,
            replicas: super::replicas::Replicas::default(),
            metrics: Default::default(),
            disk: Default::default(),
            request_memory,
            small_request_memory,
            request_overdraft: std::cell::Cell::new(false),
            response_memory,
            shutdown: super::shutdown::watch_for_shutdown(),
            startup,
            scrubbed_bytes: std::cell::Cell::new(0),
            producer_id_bound: std::cell::Cell::new(0),
            peer_pool: Default::default(),
            credentials,
        }
    }

    /// This shard's current catalog snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// The dynamic broker configs this shard runs with.
    pub fn dynamic_configs(&self) -> Arc<DynamicBrokerConfigs> {
        self.dynamic_configs.borrow().clone()
    }

    /// The static config with the dynamic broker configs applied.
    pub fn effective_config(&self) -> Arc<Config> {
        self.effective_config.borrow().clone()
    }

    /// Takes new dynamic broker configs (from the controller's broadcast) and re-derives
    /// every open log's settings from them.
    pub(super) fn apply_dynamic_configs(&self, configs: Arc<DynamicBrokerConfigs>) {
        *self.effective_config.borrow_mut() = Arc::new(configs.effective(&self.config));
        *self.dynamic_configs.borrow_mut() = configs;
        let catalog = self.catalog();
        for (partition, log) in self.owned_logs() {
            if let Some(topic) = catalog.topic(partition.topic.as_str()) {
                log.update_config(self.log_config_for(topic));
            }
        }
    }

    pub(super) fn set_catalog(&self, catalog: Arc<Catalog>) {
        *self.catalog.borrow_mut() = catalog;
    }

    pub fn owner_of(&self, partition: &TopicPartition) -> ShardId {
        shard_for(
            partition.topic.as_str(),
            partition.partition,
            self.shard_count,
        )
    }

    pub(super) fn log(&self, partition: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(partition).cloned()
    }

    /// How many partition logs this shard has open.
    pub(super) fn log_count(&self) -> usize {
        self.logs.borrow().len()
    }

    pub(super) fn insert_log(&self, partition: TopicPartition, log: Rc<PartitionLog>) {
        self.logs.borrow_mut().insert(partition, log);
    }

    pub(super) fn remove_log(&self, partition: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.logs.borrow_mut().remove(partition)
    }

    pub(super) fn set_offline(&self, partition: TopicPartition, reason: OfflineReason) {
        self.offline.borrow_mut().insert(partition, reason);
    }

    pub(super) fn clear_offline(&self, partition: &TopicPartition) -> Option<OfflineReason> {
        self.offline.borrow_mut().remove(partition)
    }

    pub(super) fn is_offline(&self, partition: &TopicPartition) -> bool {
        self.offline.borrow().contains_key(partition)
    }

    pub(super) fn offline_partitions(&self) -> Vec<(TopicPartition, OfflineReason)> {
        self.offline
            .borrow()
            .iter()
            .map(|(p, r)| (p.clone(), *r))
            .collect()
    }

    /// The error for a request to `partition` when it has no open log here: the partition
    /// exists but is offline (KAFKA_STORAGE_ERROR, as Kafka answers for an offline log
    /// dir), or it does not exist.
    pub(super) fn missing_log_error(&self, partition: &TopicPartition) -> ErrorCode {
        if self.offline.borrow().contains_key(partition) {
            ErrorCode::KafkaStorageError
        } else {
            ErrorCode::UnknownTopicOrPartition
        }
    }

    pub(super) fn owned_logs(&self) -> Vec<(TopicPartition, Rc<PartitionLog>)> {
        self.logs
            .borrow()
            .iter()
            .map(|(tp, log)| (tp.clone(), log.clone()))
            .collect()
    }

    pub(super) fn cache(&self) -> Rc<BatchCache> {
        self.cache.clone()
    }

    pub(super) fn storage_stats(&self) -> Rc<StorageStats> {
        self.storage_stats.clone()
    }

    /// The effective log settings of a topic: broker defaults overridden by topic configs.
    pub fn log_config_for(&self, topic: &TopicMeta) -> LogConfig {
        let config = self.effective_config();
        let mut log_config = LogConfig::from_storage(&config.storage);
        let defaults = &config.topic_defaults;
        // The topic's own configs over the dynamic broker defaults of the others. Internal
        // topics keep their own settings only (as Kafka pins them).
        let merged;
        let configs = if defaults.configs.is_empty() || topic.internal {
            &topic.configs
        } else {
            let mut all = defaults.configs.clone();
            all.extend(topic.configs.iter().map(|(k, v)| (k.clone(), v.clone())));
            merged = all;
            &merged
        };
        let long = |name| topic_config::long_value(configs, name);
        log_config.retention_ms = long("retention.ms").unwrap_or(defaults.retention_ms);
        log_config.retention_bytes = long("retention.bytes").unwrap_or(defaults.retention_bytes);
        if let Some(v) = long("segment.bytes") {
            log_config.segment_bytes = v.max(1) as u64;
        }
        if let Some(v) = long("segment.ms") {
            log_config.segment_ms = v.max(1) as u64;
        }
        if let Some(v) = long("max.message.bytes") {
            log_config.batch_bytes_max = v.max(0) as u64;
        }
        if let Some(v) = long("index.interval.bytes") {
            log_config.index_interval_bytes = v.max(0) as u64;
        }
        if configs.get("message.timestamp.type").map(String::as_str) == Some("LogAppendTime") {
            log_config.timestamp_type = TimestampType::LogAppendTime;
        }
        apply_cleanup_configs(&mut log_config, configs);
        if topic.internal {
            // Stored as the coordinators write them: their replay reads uncompressed batches.
            log_config.compression_type = None;
        }
        log_config
    }

    pub(super) async fn send(
        &self,
        target: ShardId,
        message: ShardMessage,
    ) -> Result<(), ShardError> {
        assert_ne!(target, self.id, "local work must not go through the mesh");
        self.mesh
            .send_to(target.0, message)
            .await
            .map_err(|_| ShardError::Unreachable { target })
    }

    pub(super) fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    pub(super) async fn request<T: Send + 'static>(
        &self,
        target: ShardId,
        build: impl FnOnce(Reply<T>) -> ShardMessage,
    ) -> Result<T, ShardError> {
        let (reply, receiver) = reply_channel();
        self.send(target, build(reply)).await?;
        receiver.await.map_err(|_| ShardError::NoReply { target })
    }

    /// Stage 1 of a produce: the batches are appended (local) or enqueued in order on the
    /// owner's channel (remote) when this returns. The returned future is stage 2: it
    /// completes with the results once the acks level is met.
    pub async fn produce(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<ProducePartition>,
        acks: Acks,
        received: Instant,
    ) -> LocalBoxFuture<'static, Result<Vec<ProducePartitionResult>, ShardError>> {
        if target == self.id {
            let completion = self.produce_local(partitions, acks, received).await;
            return Box::pin(async move { Ok(completion.await) });
        }
        let (reply, receiver) = reply_channel();
        let message = ShardMessage::Produce(ProduceOp {
            partitions,
            acks,
            received,
            reply,
        });
        let sent = self.send(target, message).await;
        Box::pin(async move {
            sent?;
            receiver.await.map_err(|_| ShardError::NoReply { target })
        })
    }

    /// Reads `partitions` (in order) on `target` within `budget`.
    pub async fn read(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<ReadPartition>,
        budget: ReadBudget,
    ) -> Result<Vec<ReadPartitionResult>, ShardError> {
        if target == self.id {
            return Ok(self.read_local(partitions, budget).await);
        }
        self.request(target, |reply| {
            ShardMessage::Read(ReadOp {
                partitions,
                budget,
                reply,
            })
        })
        .await
    }

    pub async fn wait_for_data(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<(
            TopicPartition,
            crate::model::Offset,
            super::messages::WaitEnd,
        )>,
        timeout: std::time::Duration,
    ) -> Result<(), ShardError> {
        if target == self.id {
            self.wait_for_data_local(partitions, timeout).await;
            return Ok(());
        }
        self.request(target, |reply| {
            ShardMessage::WaitForData(WaitOp {
                partitions,
                timeout,
                reply,
            })
        })
        .await
    }

    pub async fn list_offsets(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<ListOffsetsPartition>,
    ) -> Result<Vec<ListOffsetsResult>, ShardError> {
        if target == self.id {
            return Ok(self.list_offsets_local(partitions).await);
        }
        self.request(target, |reply| {
            ShardMessage::ListOffsets(ListOffsetsOp { partitions, reply })
        })
        .await
    }

    /// OffsetForLeaderEpoch on `target`'s logs: `(partition, requested leader epoch)`.
    pub async fn epoch_ends(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<(TopicPartition, i32)>,
    ) -> Result<Vec<EpochEndResult>, ShardError> {
        if target == self.id {
            return Ok(self.epoch_ends_local(partitions));
        }
        self.request(target, |reply| {
            ShardMessage::EpochEnds(EpochEndsOp { partitions, reply })
        })
        .await
    }

    pub async fn delete_records(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<(TopicPartition, i64)>,
        timeout: std::time::Duration,
    ) -> Result<Vec<(TopicPartition, Result<i64, ErrorCode>)>, ShardError> {
        if target == self.id {
            return Ok(self.delete_records_local(partitions, timeout).await);
        }
        self.request(target, |reply| {
            ShardMessage::DeleteRecords(DeleteRecordsOp {
                partitions,
                timeout,
                reply,
            })
        })
        .await
    }

    pub async fn producers(
        self: &Rc<Self>,
        target: ShardId,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<(TopicPartition, Option<Vec<crate::storage::ProducerInfo>>)>, ShardError> {
        if target == self.id {
            return Ok(self.producers_local(partitions));
        }
        self.request(target, |reply| {
            ShardMessage::Producers(ProducersOp { partitions, reply })
        })
        .await
    }

    pub async fn log_sizes(
        self: &Rc<Self>,
        target: ShardId,
    ) -> Result<Vec<(TopicPartition, u64)>, ShardError> {
        if target == self.id {
            return Ok(self.log_sizes_local());
        }
        self.request(target, |reply| ShardMessage::LogSizes(LogSizesOp { reply }))
            .await
    }

    /// Every shard's counters (this one directly, the others over the mesh).
    pub async fn gather_metrics(self: &Rc<Self>) -> Vec<super::metrics::MetricsSnapshot> {
        let calls = (0..self.shard_count).map(|target| {
            let shard = self.clone();
            async move {
                let target = ShardId(target);
                if target == shard.id {
                    return Some(shard.metrics_snapshot());
                }
                shard.request(target, ShardMessage::Metrics).await.ok()
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    fn metrics_snapshot(&self) -> super::metrics::MetricsSnapshot {
        use super::metrics::{DelayReason, MemoryGauge, MemoryPool};
        let mut snapshot = self.metrics.snapshot(self.id.0);
        let delays = [
            (DelayReason::MeshFull, self.mesh.send_waits()),
            (DelayReason::WriteBuffer, self.storage_stats.append_waits()),
        ];
        for (reason, count) in delays.into_iter().filter(|(_, count)| *count > 0) {
            snapshot.delayed.insert(reason, count);
        }
        snapshot.log_sync_latency = Some(self.storage_stats.sync_latency());
        snapshot.produce_stages.set(
            super::metrics::ProduceStage::Write.index(),
            self.storage_stats.write_latency(),
        );
        snapshot.mesh = self.mesh.counts();
        snapshot.mesh_capacity = self.config.shard.mesh_channel_capacity as u64;
        let cache = self.cache.stats();
        snapshot.cache = (
            cache.budget_bytes,
            cache.used_bytes,
            cache.hits,
            cache.misses,
            cache.evictions,
        );
        let mut write_buffer = MemoryGauge {
            pool: MemoryPool::WriteBuffer,
            budget_bytes: 0,
            in_use_bytes: 0,
        };
        for (partition, log) in self.owned_logs() {
            let stats = log.stats();
            write_buffer.budget_bytes += stats.write_buffer_bytes_max;
            write_buffer.in_use_bytes += stats.write_buffer_bytes_used;
            snapshot.log_syncs += stats.syncs;
            snapshot.log_bytes_written += stats.bytes_written;
            snapshot.log_pending_bytes += stats.pending_bytes;
            let key = (partition.topic.to_string(), partition.partition);
            let corrupt = log.corrupt_batches() as u64;
            if corrupt > 0 {
                snapshot.corrupt_batches.insert(key.clone(), corrupt);
            }
            snapshot.partitions.insert(
                key,
                (
                    log.log_start_offset().value(),
                    log.high_watermark().value(),
                    log.size_bytes(),
                ),
            );
        }
        for (partition, reason) in self.offline_partitions() {
            let key = (partition.topic.to_string(), partition.partition);
            snapshot.offline.insert(key, reason.as_str());
        }
        snapshot.scrubbed_bytes = self.scrubbed_bytes.get();
        snapshot.memory = vec![
            MemoryGauge {
                pool: MemoryPool::Request,
                budget_bytes: self.request_memory.capacity_bytes(),
                in_use_bytes: self.request_memory.in_use_bytes(),
            },
            MemoryGauge {
                pool: MemoryPool::RequestSmall,
                budget_bytes: self.small_request_memory.capacity_bytes(),
                in_use_bytes: self.small_request_memory.in_use_bytes(),
            },
            MemoryGauge {
                pool: MemoryPool::Response,
                budget_bytes: self.response_memory.capacity_bytes(),
                in_use_bytes: self.response_memory.in_use_bytes(),
            },
            MemoryGauge {
                pool: MemoryPool::BatchCache,
                budget_bytes: cache.budget_bytes,
                in_use_bytes: cache.used_bytes,
            },
            write_buffer,
        ];
        self.coordinator_metrics(&mut snapshot);
        snapshot
    }

    /// Runs a controller operation on shard 0 and returns its outcome.
    pub async fn controller_call<T: Send + 'static>(
        self: &Rc<Self>,
        build: impl FnOnce(Reply<T>) -> ControllerOp,
    ) -> Result<T, ShardError> {
        let (reply, receiver) = reply_channel();
        let op = build(reply);
        if self.controller.is_some() {
            self.handle_controller_op(op).await;
        } else {
            self.send(ShardId(0), ShardMessage::Controller(op)).await?;
        }
        receiver
            .await
            .map_err(|_| ShardError::NoReply { target: ShardId(0) })
    }

    /// Runs a catalog change on the controller shard (0).
    pub async fn create_topics(
        self: &Rc<Self>,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<TopicOutcome>, ShardError> {
        if self.controller.is_some() {
            return Ok(self.controller_create_topics(topics, validate_only).await);
        }
        self.request(ShardId(0), |reply| {
            ShardMessage::Controller(ControllerOp::CreateTopics {
                topics,
                validate_only,
                reply,
            })
        })
        .await
    }

    pub async fn delete_topics(
        self: &Rc<Self>,
        names: Vec<String>,
    ) -> Result<Vec<TopicOutcome>, ShardError> {
        if self.controller.is_some() {
            return Ok(self.controller_delete_topics(names).await);
        }
        self.request(ShardId(0), |reply| {
            ShardMessage::Controller(ControllerOp::DeleteTopics { names, reply })
        })
        .await
    }

    pub async fn allocate_producer_id(self: &Rc<Self>) -> Result<i64, ErrorCode> {
        if self.controller.is_some() {
            return self.controller_allocate_producer_id().await;
        }
        self.request(ShardId(0), |reply| {
            ShardMessage::Controller(ControllerOp::AllocateProducerId { reply })
        })
        .await
        .unwrap_or(Err(ErrorCode::CoordinatorNotAvailable))
    }

    /// Sends a catalog snapshot to every other shard and applies it here; returns when all
    /// shards have opened/removed their logs accordingly.
    pub(super) async fn broadcast_catalog(self: &Rc<Self>, catalog: Arc<Catalog>) {
        let mut pending = Vec::new();
        for target in (0..self.shard_count).map(ShardId).filter(|s| *s != self.id) {
            let snapshot = catalog.clone();
            pending.push(self.request(target, move |reply| {
                ShardMessage::ApplyCatalog(snapshot, reply)
            }));
        }
        self.apply_catalog(catalog).await;
        for outcome in futures::future::join_all(pending).await {
            if let Err(error) = outcome {
                tracing::error!(shard = %self.id, %error, "catalog broadcast failed");
            }
        }
    }

    /// Handles one message from another shard. Produce stage 1 runs inline so that appends
    /// keep the order in which the sender enqueued them; everything else runs as a task.
    pub(super) async fn handle_message(self: &Rc<Self>, message: ShardMessage) {
        match message {
            ShardMessage::Produce(op) => {
                let completion = self
                    .produce_local(op.partitions, op.acks, op.received)
                    .await;
                let reply = op.reply;
                glommio::spawn_local(async move {
                    let _ = reply.send(completion.await);
                })
                .detach();
            }
            ShardMessage::Read(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let results = shard.read_local(op.partitions, op.budget).await;
                    let _ = op.reply.send(results);
                })
                .detach();
            }
            ShardMessage::WaitForData(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    shard.wait_for_data_local(op.partitions, op.timeout).await;
                    let _ = op.reply.send(());
                })
                .detach();
            }
            ShardMessage::ListOffsets(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let _ = op.reply.send(shard.list_offsets_local(op.partitions).await);
                })
                .detach();
            }
            ShardMessage::Controller(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move { shard.handle_controller_op(op).await }).detach();
            }
            ShardMessage::DeleteRecords(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let _ = op
                        .reply
                        .send(shard.delete_records_local(op.partitions, op.timeout).await);
                })
                .detach();
            }
            ShardMessage::Metrics(reply) => {
                let _ = reply.send(self.metrics_snapshot());
            }
            ShardMessage::Producers(op) => {
                let _ = op.reply.send(self.producers_local(op.partitions));
            }
            ShardMessage::EpochEnds(op) => {
                let _ = op.reply.send(self.epoch_ends_local(op.partitions));
            }
            ShardMessage::LogSizes(op) => {
                let _ = op.reply.send(self.log_sizes_local());
            }
            ShardMessage::Reply { id, payload } => super::reply::complete_local(id, payload),
            ShardMessage::Txn(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move { shard.handle_txn_op(op).await }).detach();
            }
            ShardMessage::WriteMarkers(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let results = shard.write_markers_local(op.marker, op.partitions).await;
                    let _ = op.reply.send(results);
                })
                .detach();
            }
            ShardMessage::AllowTxn(op) => {
                self.allow_transaction_local(op.producer_id, op.epoch, &op.partitions);
                let _ = op.reply.send(());
            }
            ShardMessage::TxnVerification(op) => self.verification_local(op),
            ShardMessage::Group(op) => {
                let shard = self.clone();
                glommio::spawn_local(async move { shard.handle_group_op(op).await }).detach();
            }
            ShardMessage::ApplyDynamicConfigs(configs, reply) => {
                self.apply_dynamic_configs(configs);
                let _ = reply.send(());
            }
            ShardMessage::ApplyCatalog(catalog, reply) => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    shard.apply_catalog(catalog).await;
                    let _ = reply.send(());
                })
                .detach();
            }
        }
    }
}

/// Compaction and codec topic configs (`cleanup.policy`, `compression.type`,
/// `delete.retention.ms`, `min.compaction.lag.ms`, `max.compaction.lag.ms`,
/// `min.cleanable.dirty.ratio`); unset ones keep `LogConfig::from_storage`'s Kafka defaults.
fn apply_cleanup_configs(
    log_config: &mut LogConfig,
    configs: &std::collections::BTreeMap<String, String>,
) {
    use crate::model::Compression;
    let long = |name| topic_config::long_value(configs, name);
    if let Some(policy) = configs.get("cleanup.policy") {
        log_config.cleanup_policy = CleanupPolicy::parse(policy);
    }
    log_config.compression_type = match configs.get("compression.type").map(|v| v.trim()) {
        Some("uncompressed" | "none") => Some(Compression::None),
        Some("gzip") => Some(Compression::Gzip),
        Some("snappy") => Some(Compression::Snappy),
        Some("lz4") => Some(Compression::Lz4),
        Some("zstd") => Some(Compression::Zstd),
        _ => None,
    };
    if let Some(v) = long("delete.retention.ms") {
        log_config.delete_retention_ms = v.max(0);
    }
    if let Some(v) = long("min.compaction.lag.ms") {
        log_config.min_compaction_lag_ms = v.max(0);
    }
    if let Some(v) = long("max.compaction.lag.ms") {
        log_config.max_compaction_lag_ms = v.max(1);
    }
    if let Some(v) = configs
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
    {
        log_config.min_cleanable_dirty_ratio = v.clamp(0.0, 1.0);
    }
}
