//! The topic catalog: names, ids, partition counts and configs, and per-group config
//! overrides (`group_config`, single-broker mode), persisted as JSON with an
//! atomic replace (write temp, fsync, rename, fsync dir). Snapshots are immutable: a change
//! produces a new `Catalog` with a higher `version`. `load` and `save` block (`std::fs`): the
//! main thread calls them at start-up, the controller shard only through its blocking pool
//! (`storage::run_off_shard`).
//!
//! Deleting a topic is two catalog changes: `without_topic` moves it to `deleting` (saved
//! before any partition directory is touched), and `deletion_finished` drops it once every
//! directory is gone. A crash in between leaves the record, so start-up finishes the job.

use super::topic_config::{self, TopicConfigError};
use crate::model::TopicName;
use crate::security::acl::AclBinding;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub type TopicId = [u8; 16];

pub const CATALOG_FILE: &str = "topics.json";
/// Longest legal topic name (Kafka: 249).
pub const TOPIC_NAME_MAX: usize = 249;

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("topic `{0}` is marked for deletion")]
    MarkedForDeletion(String),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: {reason}")]
    InvalidPartitions { count: i32, reason: String },
    #[error(transparent)]
    InvalidConfig(#[from] TopicConfigError),
    #[error("catalog file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// Kafka topic id (a UUID), as 32 hex digits on disk.
    #[serde(with = "hex_id")]
    pub id: TopicId,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    /// Cluster mode: this is the local copy of a topic of the metadata log (created,
    /// grown and deleted by the catalog's reconciliation with it, never by this broker
    /// alone). Absent for topics that are this broker's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub version: u64,
    /// Cluster mode: the metadata-log index of the last topic table this catalog was
    /// reconciled with (`shard::cluster_topics`); a table below it is never trusted (its log
    /// was replaced or is still replaying). 0 outside cluster mode.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub metadata_index: u64,
    topics: BTreeMap<String, TopicMeta>,
    /// Deleted topics whose partition directories may still exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deleting: Vec<TopicMeta>,
    /// Per-group config overrides (GROUP resources), by group id; a group without
    /// overrides has no entry. Validated by `group_config::validate` before they get here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// ACL bindings (CreateAcls / DeleteAcls), checked by `AclBinding::new` before they get
    /// here; the authorizer reads them (`security::acl`).
    /// Sorted, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    acls: Vec<AclBinding>,
    #[serde(skip)]
    by_id: HashMap<TopicId, String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Kafka's rule: 1..=249 chars of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    let invalid = |reason| CatalogError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > TOPIC_NAME_MAX {
        return Err(invalid("longer than 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed"));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(legal) {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

impl Catalog {
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicMeta> {
        self.by_id.get(id).and_then(|name| self.topics.get(name))
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.values()
    }

    pub fn topic_names(&self) -> impl Iterator<Item = TopicName> + '_ {
        self.topics.keys().map(|name| TopicName::new(name))
    }

    /// Deleted topics whose partition directories may still exist.
    pub fn deleting(&self) -> &[TopicMeta] {
        &self.deleting
    }

    /// A new catalog that no longer records the deletion of topic `id` (its directories
    /// are gone).
    pub fn deletion_finished(&self, id: &TopicId) -> Catalog {
        let mut next = self.clone();
        next.deleting.retain(|t| &t.id != id);
        next.version += 1;
        next
    }

    /// A new catalog with `meta` added.
    pub fn with_topic(&self, meta: TopicMeta) -> Result<Catalog, CatalogError> {
        validate_topic_name(&meta.name)?;
        if self.topics.contains_key(&meta.name) {
            return Err(CatalogError::TopicExists(meta.name));
        }
        if self.deleting.iter().any(|t| t.name == meta.name) {
            return Err(CatalogError::MarkedForDeletion(meta.name));
        }
        if meta.partitions < 1 {
            return Err(CatalogError::InvalidPartitions {
                count: meta.partitions,
                reason: "must be at least 1".to_string(),
            });
        }
        topic_config::validate_all(&meta.configs)?;
        let mut next = self.clone();
        next.version += 1;
        next.by_id.insert(meta.id, meta.name.clone());
        next.topics.insert(meta.name.clone(), meta);
        Ok(next)
    }

    /// A new catalog without topic `name`, which is recorded in `deleting` until
    /// `deletion_finished`.
    pub fn without_topic(&self, name: &str) -> Result<Catalog, CatalogError> {
        let mut next = self.clone();
        let removed = next
            .topics
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        next.by_id.remove(&removed.id);
        next.deleting.push(removed);
        next.version += 1;
        Ok(next)
    }

    /// A new catalog with `name`'s partition count raised to `partitions`.
    pub fn with_partitions(&self, name: &str, partitions: i32) -> Result<Catalog, CatalogError> {
        let mut next = self.clone();
        let topic = next
            .topics
            .get_mut(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        if partitions <= topic.partitions {
            return Err(CatalogError::InvalidPartitions {
                count: partitions,
                reason: format!("topic already has {} partitions", topic.partitions),
            });
        }
        topic.partitions = partitions;
        next.version += 1;
        Ok(next)
    }

    /// A new catalog where topic `name` is marked a local copy of a metadata-log topic.
    pub fn with_cluster_copy(&self, name: &str) -> Result<Catalog, CatalogError> {
        let mut next = self.clone();
        let topic = next
            .topics
            .get_mut(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        topic.cluster = true;
        next.version += 1;
        Ok(next)
    }

    /// A new catalog that records metadata-log index `index` as reconciled (never lowers it).
    pub fn with_metadata_index(&self, index: u64) -> Catalog {
        let mut next = self.clone();
        if index > next.metadata_index {
            next.metadata_index = index;
            next.version += 1;
        }
        next
    }

    /// A new catalog with `name`'s configs replaced.
    pub fn with_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Catalog, CatalogError> {
        topic_config::validate_all(&configs)?;
        let mut next = self.clone();
        let topic = next
            .topics
            .get_mut(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        topic.configs = configs;
        next.version += 1;
        Ok(next)
    }

    /// Group `group_id`'s config overrides, if it has any.
    pub fn group_configs(&self, group_id: &str) -> Option<&BTreeMap<String, String>> {
        self.group_configs.get(group_id)
    }

    /// The groups that have config overrides.
    pub fn groups_with_configs(&self) -> impl Iterator<Item = &str> {
        self.group_configs.keys().map(String::as_str)
    }

    /// Every ACL binding.
    pub fn acls(&self) -> &[AclBinding] {
        &self.acls
    }

    /// A new catalog with the ACL set replaced (sorted, duplicates dropped).
    pub fn with_acls(&self, mut acls: Vec<AclBinding>) -> Catalog {
        acls.sort();
        acls.dedup();
        let mut next = self.clone();
        next.acls = acls;
        next.version += 1;
        next
    }

    /// Every group's overrides (cluster mode compares them with the metadata log's).
    pub fn all_group_configs(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.group_configs
    }

    /// A new catalog with every group's overrides replaced by `configs` (cluster mode: the
    /// metadata log's, which the controller checked).
    pub fn with_all_group_configs(
        &self,
        configs: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Catalog {
        let mut next = self.clone();
        next.group_configs = configs;
        next.group_configs
            .retain(|_, overrides| !overrides.is_empty());
        next.version += 1;
        next
    }

    /// A new catalog with group `group_id`'s overrides replaced (an empty set drops them).
    /// The caller validated `configs` (`group_config::validate`).
    pub fn with_group_configs(&self, group_id: &str, configs: BTreeMap<String, String>) -> Catalog {
        let mut next = self.clone();
        if configs.is_empty() {
            next.group_configs.remove(group_id);
        } else {
            next.group_configs.insert(group_id.to_string(), configs);
        }
        next.version += 1;
        next
    }

    /// Reads `<data_dir>/topics.json`; `Ok(None)` if there is none.
    pub fn load(data_dir: &Path) -> Result<Option<Catalog>, CatalogError> {
        let path = data_dir.join(CATALOG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CatalogError::Io { path, source }),
        };
        let mut catalog: Catalog =
            serde_json::from_str(&text).map_err(|e| CatalogError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        catalog.by_id = catalog
            .topics
            .values()
            .map(|meta| (meta.id, meta.name.clone()))
            .collect();
        Ok(Some(catalog))
    }

    /// Atomically replaces the catalog file.
    pub fn save(&self, data_dir: &Path) -> Result<(), CatalogError> {
        let path = data_dir.join(CATALOG_FILE);
        let text = serde_json::to_vec_pretty(self).map_err(|e| CatalogError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, &text).map_err(|source| CatalogError::Io { path, source })
    }
}

/// A topic id as 32 lowercase hex digits (its form in `topics.json` and `partition.metadata`).
pub fn topic_id_hex(id: &TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 32 hex digits back into a topic id.
pub fn parse_topic_id(text: &str) -> Option<TopicId> {
    let text = text.trim();
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 16];
    for (index, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(id)
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

mod hex_id {
    use super::TopicId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &TopicId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::topic_id_hex(id))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TopicId, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_topic_id(&text)
            .ok_or_else(|| serde::de::Error::custom("topic id must be 32 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> TopicMeta {
        TopicMeta {
            name: name.to_string(),
            id: *uuid::Uuid::new_v4().as_bytes(),
            partitions: 3,
            configs: BTreeMap::new(),
            internal: false,
            cluster: false,
        }
    }

    #[test]
    fn add_remove_and_persist() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let catalog = Catalog::default().with_topic(meta("orders")).unwrap();
        assert!(catalog.with_topic(meta("orders")).is_err());
        catalog.save(dir.path()).unwrap();
        let loaded = Catalog::load(dir.path()).unwrap().unwrap();
        let orders = loaded.topic("orders").unwrap();
        assert_eq!(orders.partitions, 3);
        assert_eq!(loaded.topic_by_id(&orders.id).unwrap().name, "orders");
        let emptied = loaded.without_topic("orders").unwrap();
        assert!(emptied.topic("orders").is_none());
        assert!(emptied.version > loaded.version);
        assert!(Catalog::load(&dir.path().join("absent")).unwrap().is_none());
    }

    #[test]
    fn a_deleted_topic_is_recorded_until_its_directories_are_gone() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let catalog = Catalog::default().with_topic(meta("orders")).unwrap();
        let id = catalog.topic("orders").unwrap().id;
        let deleting = catalog.without_topic("orders").unwrap();
        assert_eq!(deleting.deleting().len(), 1);
        assert!(matches!(
            deleting.with_topic(meta("orders")),
            Err(CatalogError::MarkedForDeletion(_))
        ));
        deleting.save(dir.path()).unwrap();
        let loaded = Catalog::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.deleting()[0].id, id);
        let done = loaded.deletion_finished(&id);
        assert!(done.deleting().is_empty());
        assert!(done.with_topic(meta("orders")).is_ok());
    }

    #[test]
    fn group_config_overrides_persist_and_an_empty_set_drops_them() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let overrides: BTreeMap<String, String> = [(
            "consumer.heartbeat.interval.ms".to_string(),
            "6000".to_string(),
        )]
        .into();
        let catalog = Catalog::default().with_group_configs("g", overrides.clone());
        catalog.save(dir.path()).unwrap();
        let loaded = Catalog::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.group_configs("g"), Some(&overrides));
        assert_eq!(loaded.groups_with_configs().collect::<Vec<_>>(), ["g"]);
        let dropped = loaded.with_group_configs("g", BTreeMap::new());
        assert!(dropped.group_configs("g").is_none());
        assert!(dropped.version > loaded.version);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", ".", "..", "a/b", "spaces here", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
        assert!(validate_topic_name("ok.topic_name-1").is_ok());
    }
}
