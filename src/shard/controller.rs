//! The controller role of shard 0: serialises catalog changes (create/delete topics),
//! persists them, and broadcasts the new snapshot to every shard before answering. It also
//! hands out producer ids from blocks reserved in `meta.json`, so ids never repeat across
//! restarts.
//!
//! DeleteTopics is durable and resumable: the catalog that drops the topic records it in
//! `deleting` (saved before any directory is touched); each shard then removes its
//! partition directories through a tombstone rename; once none is left the record is
//! dropped. A crash in between leaves the record, and start-up finishes the deletion.

use super::Shard;
use super::messages::*;
use crate::config::Config;
use crate::metadata::{
    BrokerEntity, BrokerMeta, Catalog, CatalogError, DynamicBrokerConfigs, DynamicConfigError,
    PRODUCER_ID_BLOCK, TopicMeta, group_config, topic_id_hex, validate_topic_name,
};
use crate::model::{ErrorCode, ShardId, TopicPartition};
use crate::storage::{BlockingOp, run_off_shard};
use glommio::sync::Semaphore;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// Cluster mode: how long InitProducerId waits for a producer-id block from the controller.
const CLUSTER_PRODUCER_IDS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) struct Controller {
    /// One catalog change at a time.
    lock: Semaphore,
    data_dir: PathBuf,
    next_producer_id: Cell<i64>,
    producer_id_block_end: Cell<i64>,
    /// Kept in every `meta.json` written.
    node_id: Option<i32>,
    /// Cluster mode: the producer-id block the active controller gave this broker, as
    /// (next id, end); empty until the first InitProducerId.
    cluster_producer_ids: Cell<(i64, i64)>,
    /// One cluster producer-id allocation at a time (not the catalog's lock).
    cluster_producer_ids_lock: Semaphore,
}

impl Controller {
    /// `meta` was read (or created) by start-up (`data_dir::prepare`).
    pub(super) fn new(config: &Config, meta: BrokerMeta) -> Controller {
        let data_dir = config.storage.data_dir.clone();
        Controller {
            lock: Semaphore::new(1),
            data_dir,
            next_producer_id: Cell::new(meta.producer_id_block_end),
            producer_id_block_end: Cell::new(meta.producer_id_block_end),
            node_id: meta.node_id,
            cluster_producer_ids: Cell::new((0, 0)),
            cluster_producer_ids_lock: Semaphore::new(1),
        }
    }
}

/// Writes `topics.json` on the blocking pool (the shard keeps serving); the caller holds
/// the controller lock, so there is still exactly one writer.
async fn save_catalog(data_dir: &Path, catalog: &Catalog) -> Result<(), CatalogError> {
    let (data_dir, catalog) = (data_dir.to_path_buf(), catalog.clone());
    run_off_shard(BlockingOp::CatalogSave, move || catalog.save(&data_dir)).await
}

fn outcome(name: String, error: ErrorCode, message: Option<String>) -> TopicOutcome {
    TopicOutcome {
        name,
        error,
        message,
        topic: None,
    }
}

fn catalog_error_code(error: &CatalogError) -> ErrorCode {
    match error {
        CatalogError::TopicExists(_) | CatalogError::MarkedForDeletion(_) => {
            ErrorCode::TopicAlreadyExists
        }
        CatalogError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
        CatalogError::InvalidName { .. } => ErrorCode::InvalidTopicException,
        CatalogError::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
        CatalogError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        CatalogError::Io { .. } | CatalogError::Corrupt { .. } => ErrorCode::KafkaStorageError,
    }
}

impl Shard {
    fn controller(&self) -> &Controller {
        self.controller
            .as_ref()
            .unwrap_or_else(|| unreachable!("controller op on shard {}", self.id))
    }

    pub(super) async fn handle_controller_op(self: &Rc<Self>, op: ControllerOp) {
        match op {
            ControllerOp::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let _ = reply.send(self.controller_create_topics(topics, validate_only).await);
            }
            ControllerOp::DeleteTopics { names, reply } => {
                let _ = reply.send(self.controller_delete_topics(names).await);
            }
            ControllerOp::AllocateProducerId { reply } => {
                let _ = reply.send(self.controller_allocate_producer_id().await);
            }
            ControllerOp::ProducerIdBound { reply } => {
                let _ = reply.send(self.controller_producer_id_bound());
            }
            ControllerOp::AlterTopicConfigs {
                topic,
                configs,
                validate_only,
                reply,
            } => {
                if let Some(refused) = self.refuse_cluster_copy_change(&topic) {
                    let _ = reply.send(refused);
                    return;
                }
                let change = |catalog: &Catalog| catalog.with_configs(&topic, configs);
                let _ = reply.send(
                    self.controller_change_topic(&topic, validate_only, change)
                        .await,
                );
            }
            ControllerOp::AlterBrokerConfigs {
                entity,
                update,
                validate_only,
                reply,
            } => {
                let outcome = self
                    .controller_alter_broker_configs(entity, update, validate_only)
                    .await;
                let _ = reply.send(outcome);
            }
            ControllerOp::AlterGroupConfigs {
                group,
                update,
                validate_only,
                reply,
            } => {
                let outcome = self
                    .controller_alter_group_configs(&group, update, validate_only)
                    .await;
                let _ = reply.send(outcome);
            }
            ControllerOp::AlterAcls { update, reply } => {
                let _ = reply.send(self.controller_alter_acls(update).await);
            }
            ControllerOp::CreatePartitions {
                topic,
                count,
                validate_only,
                reply,
            } => {
                if let Some(refused) = self.refuse_cluster_copy_change(&topic) {
                    let _ = reply.send(refused);
                    return;
                }
                let change = |catalog: &Catalog| {
                    if count > self.config.topic_defaults.partitions_max {
                        return Err(CatalogError::InvalidPartitions {
                            count,
                            reason: format!(
                                "at most {} partitions are allowed",
                                self.config.topic_defaults.partitions_max
                            ),
                        });
                    }
                    catalog.with_partitions(&topic, count)
                };
                let _ = reply.send(
                    self.controller_change_topic(&topic, validate_only, change)
                        .await,
                );
            }
        }
    }

    /// A local copy of a metadata-log topic follows the log (shard::cluster_topics): it
    /// changes through the active controller (the handlers forward such changes), and one
    /// made here would be reverted or would outgrow the log. Reaching this means this
    /// broker's view of the log is behind (or the log dropped the topic): NOT_CONTROLLER,
    /// which clients retry after refreshing their metadata.
    fn refuse_cluster_copy_change(&self, topic: &str) -> Option<TopicOutcome> {
        self.catalog().topic(topic).filter(|t| t.cluster)?;
        let message = "cluster mode: this topic changes through the active controller, and \
                       this broker's view of the metadata log does not show it yet; retry";
        Some(outcome(
            topic.to_string(),
            ErrorCode::NotController,
            Some(message.into()),
        ))
    }

    pub(super) async fn controller_create_topics(
        self: &Rc<Self>,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let Ok(_permit) = self.controller().lock.acquire_permit(1).await else {
            return topics
                .into_iter()
                .map(|t| outcome(t.name, ErrorCode::NotController, None))
                .collect();
        };
        let defaults = &self.config.topic_defaults;
        let mut catalog = (*self.catalog()).clone();
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in topics {
            let partitions = if topic.partitions == -1 {
                defaults.num_partitions
            } else {
                topic.partitions
            };
            if partitions < 1 || partitions > defaults.partitions_max {
                let message = format!(
                    "Number of partitions must be between 1 and {}, got {partitions}",
                    defaults.partitions_max
                );
                outcomes.push(outcome(
                    topic.name,
                    ErrorCode::InvalidPartitions,
                    Some(message),
                ));
                continue;
            }
            if let Err(error) = validate_topic_name(&topic.name) {
                outcomes.push(outcome(
                    topic.name,
                    catalog_error_code(&error),
                    Some(error.to_string()),
                ));
                continue;
            }
            let meta = TopicMeta {
                name: topic.name.clone(),
                id: *uuid::Uuid::new_v4().as_bytes(),
                partitions,
                configs: topic.configs,
                internal: topic.name.starts_with("__"),
                cluster: false,
            };
            match catalog.with_topic(meta.clone()) {
                Ok(next) => {
                    if !validate_only {
                        catalog = next;
                    }
                    outcomes.push(TopicOutcome {
                        name: topic.name,
                        error: ErrorCode::None,
                        message: None,
                        topic: Some(meta),
                    });
                }
                Err(error) => {
                    outcomes.push(outcome(
                        topic.name,
                        catalog_error_code(&error),
                        Some(error.to_string()),
                    ));
                }
            }
        }
        if catalog.version != self.catalog().version {
            if let Err(error) = save_catalog(&self.controller().data_dir, &catalog).await {
                tracing::error!(%error, "cannot persist catalog");
                return outcomes
                    .into_iter()
                    .map(|o| {
                        outcome(
                            o.name,
                            ErrorCode::KafkaStorageError,
                            Some(error.to_string()),
                        )
                    })
                    .collect();
            }
            for created in outcomes.iter().filter_map(|o| o.topic.as_ref()) {
                tracing::info!(topic = %created.name, partitions = created.partitions, "topic created");
            }
            self.broadcast_catalog(Arc::new(catalog)).await;
        }
        outcomes
    }

    pub(super) async fn controller_delete_topics(
        self: &Rc<Self>,
        names: Vec<String>,
    ) -> Vec<TopicOutcome> {
        let Ok(_permit) = self.controller().lock.acquire_permit(1).await else {
            return names
                .into_iter()
                .map(|name| outcome(name, ErrorCode::NotController, None))
                .collect();
        };
        let mut catalog = (*self.catalog()).clone();
        let mut outcomes = Vec::with_capacity(names.len());
        for name in names {
            match catalog.without_topic(&name) {
                Ok(next) => {
                    let removed = catalog.topic(&name).cloned();
                    catalog = next;
                    outcomes.push(TopicOutcome {
                        name,
                        error: ErrorCode::None,
                        message: None,
                        topic: removed,
                    });
                }
                Err(error) => outcomes.push(outcome(name, catalog_error_code(&error), None)),
            }
        }
        if catalog.version != self.catalog().version {
            if let Err(error) = save_catalog(&self.controller().data_dir, &catalog).await {
                tracing::error!(%error, "cannot persist catalog");
                return outcomes
                    .into_iter()
                    .map(|o| {
                        outcome(
                            o.name,
                            ErrorCode::KafkaStorageError,
                            Some(error.to_string()),
                        )
                    })
                    .collect();
            }
            for deleted in outcomes.iter().filter(|o| o.topic.is_some()) {
                tracing::info!(topic = %deleted.name, "topic deleted");
            }
            self.broadcast_catalog(Arc::new(catalog)).await;
            self.forget_finished_deletions().await;
        }
        outcomes
    }

    /// Drops from the catalog's `deleting` list every topic none of whose partition
    /// directories is left (a shard that could not remove one leaves it listed, and
    /// start-up retries).
    async fn forget_finished_deletions(self: &Rc<Self>) {
        let mut catalog = (*self.catalog()).clone();
        let data_dir = &self.controller().data_dir;
        for topic in catalog.deleting().to_vec() {
            let dirs: Vec<PathBuf> = (0..topic.partitions)
                .map(|index| {
                    let partition = TopicPartition::new(topic.name.as_str(), index);
                    data_dir.join(partition.dir_name())
                })
                .collect();
            let left = run_off_shard(BlockingOp::CheckPartitionDirs, move || {
                dirs.iter().any(|dir| dir.exists())
            })
            .await;
            if left {
                tracing::warn!(topic = %topic.name, id = %topic_id_hex(&topic.id), "deleted topic has directories left; start-up will remove them");
                continue;
            }
            catalog = catalog.deletion_finished(&topic.id);
        }
        if catalog.deleting().len() == self.catalog().deleting().len() {
            return;
        }
        if let Err(error) = save_catalog(data_dir, &catalog).await {
            tracing::warn!(%error, "cannot record finished deletions; start-up will");
            return;
        }
        self.broadcast_catalog(Arc::new(catalog)).await;
    }

    /// Applies one catalog change to one topic: validate, persist, broadcast.
    pub(super) async fn controller_change_topic(
        self: &Rc<Self>,
        topic: &str,
        validate_only: bool,
        change: impl FnOnce(&Catalog) -> Result<Catalog, CatalogError>,
    ) -> TopicOutcome {
        let Ok(_permit) = self.controller().lock.acquire_permit(1).await else {
            return outcome(topic.to_string(), ErrorCode::NotController, None);
        };
        let current = self.catalog();
        let next = match change(&current) {
            Ok(next) => next,
            Err(error) => {
                return outcome(
                    topic.to_string(),
                    catalog_error_code(&error),
                    Some(error.to_string()),
                );
            }
        };
        if !validate_only {
            if let Err(error) = save_catalog(&self.controller().data_dir, &next).await {
                tracing::error!(%error, "cannot persist catalog");
                return outcome(
                    topic.to_string(),
                    ErrorCode::KafkaStorageError,
                    Some(error.to_string()),
                );
            }
            tracing::info!(%topic, "topic changed");
            self.broadcast_catalog(Arc::new(next)).await;
        }
        TopicOutcome {
            name: topic.to_string(),
            error: ErrorCode::None,
            message: None,
            topic: self.catalog().topic(topic).cloned(),
        }
    }

    /// Replaces one dynamic broker-config entity: validate, persist, broadcast (every shard
    /// re-derives its logs' settings before this answers).
    async fn controller_alter_broker_configs(
        self: &Rc<Self>,
        entity: BrokerEntity,
        update: BrokerConfigUpdate,
        validate_only: bool,
    ) -> (ErrorCode, Option<String>) {
        let Ok(_permit) = self.controller().lock.acquire_permit(1).await else {
            return (ErrorCode::NotController, None);
        };
        let configs = match update(self.dynamic_configs().entity(entity)) {
            Ok(configs) => configs,
            Err(message) => return (ErrorCode::InvalidRequest, Some(message)),
        };
        let next = match self
            .dynamic_configs()
            .with_entity(entity, configs, &self.config)
        {
            Ok(next) => next,
            Err(error) => {
                let code = match error {
                    DynamicConfigError::NotDynamic(_) => ErrorCode::InvalidRequest,
                    DynamicConfigError::Io { .. } | DynamicConfigError::Corrupt { .. } => {
                        ErrorCode::KafkaStorageError
                    }
                    _ => ErrorCode::InvalidConfig,
                };
                return (code, Some(error.to_string()));
            }
        };
        if validate_only {
            return (ErrorCode::None, None);
        }
        let (data_dir, saved) = (self.controller().data_dir.clone(), next.clone());
        let save = move || saved.save(&data_dir);
        if let Err(error) = run_off_shard(BlockingOp::DynamicConfigSave, save).await {
            tracing::error!(%error, "cannot persist dynamic broker configs");
            return (ErrorCode::KafkaStorageError, Some(error.to_string()));
        }
        tracing::info!(?entity, configs = ?next.entity(entity), "dynamic broker configs changed");
        self.broadcast_dynamic_configs(Arc::new(next)).await;
        (ErrorCode::None, None)
    }

    /// Replaces group `group`'s config overrides: validate against the broker's bounds,
    /// save the catalog that holds them, broadcast it (the group's coordinator shard applies
    /// them from the member's next heartbeat on).
    async fn controller_alter_group_configs(
        self: &Rc<Self>,
        group: &str,
        update: BrokerConfigUpdate,
        validate_only: bool,
    ) -> (ErrorCode, Option<String>) {
        let Ok(_permit) = self.controller().lock.acquire_permit(1).await else {
            return (ErrorCode::NotController, None);
        };
        let current = self.catalog();
        let empty = std::collections::BTreeMap::new();
        let configs = match update(current.group_configs(group).unwrap_or(&empty)) {
            Ok(configs) => configs,
            Err(message) => return (ErrorCode::InvalidRequest, Some(message)),
        };
        if let Err(error) = group_config::validate(&configs, &self.config.group) {
            return (ErrorCode::InvalidConfig, Some(error.to_string()));
        }
        if validate_only {
            return (ErrorCode::None, None);
        }
        let next = current.with_group_configs(group, configs);
        if let Err(error) = save_catalog(&self.controller().data_dir, &next).await {
            tracing::error!(%error, "cannot persist catalog");
            return (ErrorCode::KafkaStorageError, Some(error.to_string()));
        }
        tracing::info!(%group, configs = ?next.group_configs(group), "group configs changed");
        self.broadcast_catalog(Arc::new(next)).await;
        (ErrorCode::None, None)
    }

    /// Applies an ACL change (see `ControllerOp::AlterAcls`): saves the catalog that holds
    /// the new set and broadcasts it before answering with what was removed per filter.
    async fn controller_alter_acls(
        self: &Rc<Self>,
        update: crate::shard::AclUpdate,
    ) -> crate::shard::AclChangeOutcome {
        let Ok(_permit) = self.controller().lock.acquire_permit(1).await else {
            return Err((ErrorCode::NotController, String::new()));
        };
        let current = self.catalog();
        let (mut acls, removed) = update(current.acls());
        acls.sort();
        acls.dedup();
        if acls == current.acls() {
            return Ok(removed);
        }
        let next = current.with_acls(acls);
        if let Err(error) = save_catalog(&self.controller().data_dir, &next).await {
            tracing::error!(%error, "cannot persist catalog");
            return Err((ErrorCode::KafkaStorageError, error.to_string()));
        }
        tracing::info!(acls = next.acls().len(), "ACLs changed");
        self.broadcast_catalog(Arc::new(next)).await;
        Ok(removed)
    }

    async fn broadcast_dynamic_configs(self: &Rc<Self>, configs: Arc<DynamicBrokerConfigs>) {
        let mut pending = Vec::new();
        for target in (0..self.shard_count).map(ShardId).filter(|s| *s != self.id) {
            let snapshot = configs.clone();
            pending.push(self.request(target, move |reply| {
                ShardMessage::ApplyDynamicConfigs(snapshot, reply)
            }));
        }
        self.apply_dynamic_configs(configs);
        for outcome in futures::future::join_all(pending).await {
            if let Err(error) = outcome {
                tracing::error!(shard = %self.id, %error, "dynamic config broadcast failed");
            }
        }
    }

    /// Cluster mode (the caller holds `cluster_producer_ids_lock`): the next id of the block the
    /// active controller committed for this broker, asking for a new block when it is used
    /// up. Ids are unique across the cluster; a block's unused rest is lost at restart, as in
    /// Kafka. COORDINATOR_NOT_AVAILABLE (retriable) while no controller answers.
    async fn allocate_cluster_producer_id(&self) -> Result<i64, ErrorCode> {
        let controller = self.controller();
        let (next, end) = controller.cluster_producer_ids.get();
        if next < end {
            controller.cluster_producer_ids.set((next + 1, end));
            return Ok(next);
        }
        let unavailable = ErrorCode::CoordinatorNotAvailable;
        let broker_epoch = crate::quorum::view::broker_epoch().ok_or(unavailable)?;
        // Ids below the local bound may have been handed out before this data dir joined
        // the cluster (meta.json's blocks): the cluster's block starts above them.
        let request = crate::quorum::frame::ControllerRequest::AllocateProducerIds {
            node_id: self.config.server.node_id,
            broker_epoch,
            floor: controller.next_producer_id.get(),
        };
        let deadline = std::time::Instant::now() + CLUSTER_PRODUCER_IDS_WAIT;
        let response = crate::quorum::forwarder::forward(request, deadline)
            .await
            .map_err(|code| {
                tracing::info!(code, "no producer-id block from the controller");
                unavailable
            })?;
        let block = match response.producer_ids {
            Some(block) if response.error_code == 0 && block.size > 0 => block,
            _ => {
                tracing::info!(
                    code = response.error_code,
                    "the controller gave no producer-id block"
                );
                return Err(unavailable);
            }
        };
        let first = block.first_producer_id;
        let end = first.saturating_add(block.size);
        tracing::info!(first, end, "producer-id block from the controller");
        controller.cluster_producer_ids.set((first + 1, end));
        Ok(first)
    }

    /// Every producer id below this was (or, before a restart, may have been) handed out.
    pub(super) fn controller_producer_id_bound(&self) -> i64 {
        self.controller().next_producer_id.get()
    }

    pub(super) async fn controller_allocate_producer_id(&self) -> Result<i64, ErrorCode> {
        let controller = self.controller();
        if crate::quorum::view::cluster_topics().is_some() {
            // Its own lock: a block request to the controller must not hold catalog changes.
            let Ok(_permit) = controller.cluster_producer_ids_lock.acquire_permit(1).await else {
                return Err(ErrorCode::NotController);
            };
            return self.allocate_cluster_producer_id().await;
        }
        let Ok(_permit) = controller.lock.acquire_permit(1).await else {
            return Err(ErrorCode::NotController);
        };
        let id = controller.next_producer_id.get();
        if id >= controller.producer_id_block_end.get() {
            let block_end = id + PRODUCER_ID_BLOCK;
            let meta = BrokerMeta {
                producer_id_block_end: block_end,
                node_id: controller.node_id,
            };
            let data_dir = controller.data_dir.clone();
            run_off_shard(BlockingOp::BrokerMetaSave, move || meta.save(&data_dir))
                .await
                .map_err(|error| {
                    tracing::error!(%error, "cannot persist producer id block");
                    ErrorCode::KafkaStorageError
                })?;
            controller.producer_id_block_end.set(block_end);
        }
        controller.next_producer_id.set(id + 1);
        Ok(id)
    }
}
