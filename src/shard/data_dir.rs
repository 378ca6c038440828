//! The data dir as a whole: what start-up checks before any shard opens a log, and the
//! identity of partition directories (`partition.metadata`).
//!
//! Start-up (`prepare`) fails safe: a missing or unreadable `topics.json` or `meta.json` in a
//! data dir that holds data, or a partition directory whose identity is unknown (no or an
//! unreadable `partition.metadata`, a topic id or partition the catalog does not have),
//! stops it with an error naming the file and the `shardlog data-dir` command that
//! recovers. A data dir whose `meta.json` names another node id than the configured one is
//! refused too. Nothing is deleted or adopted because the catalog lacks it. A new, empty data
//! dir is set up (catalog with the internal topics, `meta.json`) with no configuration.
//! Deletions a crash interrupted (the catalog's `deleting` list, `*.deleted` tombstones)
//! are finished before the shards start.
//!
//! Owns: the survey and classification of a data dir, its lock file, `partition.metadata`.
//! May import: config, metadata, storage (directory operations). Blocking `std::fs` calls:
//! it runs on the main thread before the executors start, in the `shardlog data-dir`
//! tools, and (`claim_partition_dir`) on a shard's blocking pool (`storage::run_off_shard`)
//! when the shard first opens a partition.
//! Invariants: `prepare` changes nothing on disk unless every directory is accounted for;
//! a directory is only ever deleted when the catalog's `deleting` list names its topic id.

use crate::config::Config;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::{
    BrokerMeta, BrokerMetaError, CATALOG_FILE, Catalog, CatalogError, META_FILE, TopicId,
    TopicMeta, parse_topic_id, topic_id_hex, validate_topic_name,
};
use crate::storage::{PROBE_FILE_PREFIX, TOMBSTONE_SUFFIX, max_producer_id, remove_partition_dir};
use crate::txn::TRANSACTIONS_TOPIC;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// File in each partition dir naming the topic id it belongs to (as Kafka's
/// `partition.metadata`), so a re-created topic never reads a deleted topic's data.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// Suffix `shardlog data-dir quarantine` gives the directories it moves aside.
pub const QUARANTINE_SUFFIX: &str = ".quarantined";
/// Held (flock) by the broker and the `shardlog data-dir` tools.
const LOCK_FILE: &str = ".lock";
/// Segment size of the internal compacted topics (Kafka's default for them: 100 MiB).
const INTERNAL_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// How many directory names an error lists before "and N more".
const NAMES_SHOWN_MAX: usize = 10;

#[derive(Debug, Error)]
pub enum DataDirError {
    #[error("data dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data dir {dir} is in use by another shardlog process (it holds {dir}/{LOCK_FILE}); stop it first"
    )]
    Locked { dir: PathBuf },
    #[error(
        "{dir}/{CATALOG_FILE} is missing, but the data dir holds partition data ({evidence}). Starting would forget every topic and discard its data, so start-up stops here; nothing was changed. Rebuild the catalog from the partition directories with `shardlog data-dir recover-catalog --data-dir {dir}` (docs/operations.md, \"Recovering a data dir\")"
    )]
    CatalogMissing { dir: PathBuf, evidence: String },
    #[error(
        "{source}. Start-up stops here; nothing was changed. Rebuild it from the partition directories with `shardlog data-dir recover-catalog --data-dir {dir}` (the damaged file is kept as {CATALOG_FILE}.damaged; docs/operations.md, \"Recovering a data dir\")"
    )]
    CatalogUnreadable { dir: PathBuf, source: CatalogError },
    #[error(
        "{dir}/{META_FILE} is missing, but partition {partition} holds producer id {producer_id}: the producer-id block it records would restart at 0 and hand out producer ids again. Start-up stops here; nothing was changed. Rebuild it from the highest producer id in the logs with `shardlog data-dir recover-catalog --data-dir {dir}` (docs/operations.md, \"Recovering a data dir\")"
    )]
    MetaMissing {
        dir: PathBuf,
        partition: String,
        producer_id: i64,
    },
    #[error(
        "{source}. Start-up stops here; nothing was changed. Rebuild it from the highest producer id in the logs with `shardlog data-dir recover-catalog --data-dir {dir}` (docs/operations.md, \"Recovering a data dir\")"
    )]
    MetaUnreadable {
        dir: PathBuf,
        source: BrokerMetaError,
    },
    #[error(
        "{count} partition director{plural} in {dir} cannot be identified: {list}. Start-up would have to adopt or discard them, so it stops here; nothing was changed. Inspect with `shardlog data-dir check --data-dir {dir}`; restore a topics.json that knows them, or move them aside with `shardlog data-dir quarantine --data-dir {dir} --all-unidentified` (nothing is deleted; docs/operations.md, \"Recovering a data dir\")",
        plural = if *count == 1 { "y" } else { "ies" }
    )]
    Unidentified {
        dir: PathBuf,
        count: usize,
        list: String,
    },
    #[error(
        "{dir}/{META_FILE} says this data dir belongs to node {stored}, but this broker is node {configured} (`server.node_id`, `--node-id`). Serving one node's data under another id would mix two brokers' logs and producer ids, so start-up stops here; nothing was changed. Start with `--node-id {stored}`, or give node {configured} its own data dir"
    )]
    NodeIdMismatch {
        dir: PathBuf,
        stored: i32,
        configured: i32,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Meta(#[from] BrokerMetaError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An exclusive `flock` on `<data_dir>/.lock`, released when dropped (or the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

pub fn lock(data_dir: &Path) -> Result<DataDirLock, DataDirError> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(DataDirError::Locked {
                dir: data_dir.to_path_buf(),
            });
        }
        return Err(DataDirError::Io {
            path,
            source: error,
        });
    }
    Ok(DataDirLock { _file: file })
}

/// What a partition directory says about whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `partition.metadata` names this topic id.
    Id(TopicId),
    /// No `partition.metadata` and no data files: a claim interrupted before it wrote one.
    Empty,
    /// No `partition.metadata`, but `files` other files.
    Missing { files: usize },
    /// `partition.metadata` cannot be read or parsed.
    Unreadable(String),
}

/// Files of a partition dir that hold nothing (temp files, the polling probe).
fn is_scratch(name: &str) -> bool {
    name.ends_with(".tmp") || name.starts_with(PROBE_FILE_PREFIX)
}

pub fn read_identity(dir: &Path) -> Identity {
    let marker = dir.join(PARTITION_METADATA_FILE);
    match std::fs::read(&marker) {
        Ok(bytes) => match std::str::from_utf8(&bytes).ok().and_then(parse_topic_id) {
            Some(id) => Identity::Id(id),
            None => Identity::Unreadable("not a topic id".to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let files = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| !is_scratch(&e.file_name().to_string_lossy()))
                        .count()
                })
                .unwrap_or(0);
            if files == 0 {
                Identity::Empty
            } else {
                Identity::Missing { files }
            }
        }
        Err(e) => Identity::Unreadable(e.to_string()),
    }
}

/// A directory named like a partition (`<topic>-<partition>`).
#[derive(Debug, Clone)]
pub struct PartitionDir {
    pub name: String,
    pub topic: String,
    pub partition: i32,
    pub identity: Identity,
}

/// `<topic>-<partition>` with a valid topic name and a non-negative partition number.
pub fn parse_partition_dir_name(name: &str) -> Option<(String, i32)> {
    let (topic, number) = name.rsplit_once('-')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition: i32 = number.parse().ok()?;
    validate_topic_name(topic).ok()?;
    Some((topic.to_string(), partition))
}

/// Where a partition directory stands against a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// A partition of a topic in the catalog (or an empty dir of one).
    Live,
    /// A partition of a topic being deleted; `tag` names its tombstone.
    Deleting { tag: String },
    /// Unknown: never adopted, never deleted.
    Unidentified { reason: String },
}

pub fn standing(dir: &PartitionDir, catalog: &Catalog) -> Standing {
    let unidentified = |reason: String| Standing::Unidentified { reason };
    let live = catalog.topic(&dir.topic);
    let deleting = |id: &TopicId| {
        catalog
            .deleting()
            .iter()
            .any(|t| t.name == dir.topic && &t.id == id)
    };
    match (&dir.identity, live) {
        (Identity::Id(id), _) if deleting(id) => Standing::Deleting {
            tag: topic_id_hex(id),
        },
        (Identity::Id(id), Some(topic)) if *id == topic.id => {
            if dir.partition < topic.partitions {
                Standing::Live
            } else {
                unidentified(format!(
                    "partition {} is beyond the topic's {} partitions",
                    dir.partition, topic.partitions
                ))
            }
        }
        (Identity::Id(id), Some(topic)) => unidentified(format!(
            "{PARTITION_METADATA_FILE} names topic id {}, but {CATALOG_FILE} has {} for `{}`",
            topic_id_hex(id),
            topic_id_hex(&topic.id),
            topic.name
        )),
        (Identity::Id(id), None) => unidentified(format!(
            "topic `{}` (id {}) is not in {CATALOG_FILE}",
            dir.topic,
            topic_id_hex(id)
        )),
        (Identity::Empty, Some(topic)) if dir.partition < topic.partitions => Standing::Live,
        (Identity::Empty, _) => unidentified(format!(
            "empty, and no partition {} of `{}` in {CATALOG_FILE}",
            dir.partition, dir.topic
        )),
        (Identity::Missing { files }, _) => unidentified(format!(
            "no {PARTITION_METADATA_FILE}, but {files} other files"
        )),
        (Identity::Unreadable(reason), _) => {
            unidentified(format!("unreadable {PARTITION_METADATA_FILE}: {reason}"))
        }
    }
}

/// Everything in a data dir that start-up cares about; reading it changes nothing.
pub struct Survey {
    pub dir: PathBuf,
    pub catalog: Result<Option<Catalog>, CatalogError>,
    pub meta: Result<Option<BrokerMeta>, BrokerMetaError>,
    pub partitions: Vec<PartitionDir>,
    /// `*.deleted` directories: deletions a crash interrupted after the rename.
    pub tombstones: Vec<String>,
    /// `.iopoll-probe*` files a crash left behind.
    pub probes: Vec<String>,
}

pub fn survey(dir: &Path) -> Result<Survey, DataDirError> {
    let mut survey = Survey {
        dir: dir.to_path_buf(),
        catalog: Catalog::load(dir),
        meta: BrokerMeta::load(dir),
        partitions: Vec::new(),
        tombstones: Vec::new(),
        probes: Vec::new(),
    };
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map_err(io_error(&entry.path()))?.is_dir();
        if !is_dir {
            if name.starts_with(PROBE_FILE_PREFIX) {
                survey.probes.push(name);
            }
            continue;
        }
        if name.ends_with(TOMBSTONE_SUFFIX) {
            survey.tombstones.push(name);
        } else if let Some((topic, partition)) = parse_partition_dir_name(&name) {
            let identity = read_identity(&entry.path());
            survey.partitions.push(PartitionDir {
                name,
                topic,
                partition,
                identity,
            });
        }
    }
    survey.partitions.sort_by(|a, b| a.name.cmp(&b.name));
    survey.tombstones.sort();
    Ok(survey)
}

impl Survey {
    /// No catalog, no partition data, no producer id ever reserved: a new data dir.
    pub fn is_fresh(&self) -> bool {
        let no_meta = matches!(self.meta, Ok(None))
            || matches!(self.meta, Ok(Some(meta)) if meta.producer_id_block_end == 0);
        matches!(self.catalog, Ok(None))
            && no_meta
            && self.partitions.is_empty()
            && self.tombstones.is_empty()
    }

    /// Partition dirs that are not live or being deleted, with why.
    pub fn unidentified(&self, catalog: &Catalog) -> Vec<(String, String)> {
        self.partitions
            .iter()
            .filter_map(|dir| match standing(dir, catalog) {
                Standing::Unidentified { reason } => Some((dir.name.clone(), reason)),
                _ => None,
            })
            .collect()
    }

    /// The first reason start-up must stop, if any. `Ok` carries the catalog and meta.
    pub fn check(&self) -> Result<(Catalog, BrokerMeta), DataDirError> {
        let dir = self.dir.clone();
        let catalog = match &self.catalog {
            Ok(Some(catalog)) => catalog.clone(),
            Ok(None) if self.is_fresh() => Catalog::default(),
            Ok(None) => {
                let evidence = self.evidence();
                return Err(DataDirError::CatalogMissing { dir, evidence });
            }
            Err(error) => {
                let source = reload_error(&self.dir, error);
                return Err(DataDirError::CatalogUnreadable { dir, source });
            }
        };
        let meta = match &self.meta {
            Ok(Some(meta)) => *meta,
            Ok(None) if self.is_fresh() => BrokerMeta::default(),
            Ok(None) => match self.highest_producer_id()? {
                // A data dir written before meta.json existed (or one that never saw an
                // idempotent or transactional producer): no producer id was ever handed out
                // that a restart at block 0 could repeat.
                None => BrokerMeta::default(),
                Some((partition, producer_id)) => {
                    return Err(DataDirError::MetaMissing {
                        dir,
                        partition,
                        producer_id,
                    });
                }
            },
            Err(_) => {
                let source = match BrokerMeta::load(&self.dir) {
                    Err(error) => error,
                    Ok(_) => BrokerMetaError::Corrupt {
                        path: self.dir.join(META_FILE),
                        reason: "changed while reading".to_string(),
                    },
                };
                return Err(DataDirError::MetaUnreadable { dir, source });
            }
        };
        let unidentified = self.unidentified(&catalog);
        if !unidentified.is_empty() {
            return Err(DataDirError::Unidentified {
                dir,
                count: unidentified.len(),
                list: name_list(&unidentified),
            });
        }
        Ok((catalog, meta))
    }

    /// The highest producer id stamped in any partition's segments, with that partition.
    fn highest_producer_id(&self) -> Result<Option<(String, i64)>, DataDirError> {
        let mut highest: Option<(String, i64)> = None;
        for partition in &self.partitions {
            let path = self.dir.join(&partition.name);
            let found = max_producer_id(&path).map_err(|error| DataDirError::Io {
                path: path.clone(),
                source: std::io::Error::other(error.to_string()),
            })?;
            if let Some(id) = found
                && highest.as_ref().is_none_or(|(_, max)| id > *max)
            {
                highest = Some((partition.name.clone(), id));
            }
        }
        Ok(highest)
    }

    fn evidence(&self) -> String {
        // The user's topics first: they are what an operator recognises.
        let mut dirs: Vec<&PartitionDir> = self.partitions.iter().collect();
        dirs.sort_by_key(|d| (d.topic.starts_with("__"), d.name.clone()));
        let names: Vec<(String, String)> = dirs
            .into_iter()
            .map(|d| (d.name.clone(), String::new()))
            .chain(self.tombstones.iter().map(|t| (t.clone(), String::new())))
            .collect();
        if names.is_empty() {
            return format!("{META_FILE} records producer ids");
        }
        format!("partition directories {}", name_list(&names))
    }
}

/// `CatalogError` is not `Clone`; read it again for the error (same file, same answer).
fn reload_error(dir: &Path, first: &CatalogError) -> CatalogError {
    match Catalog::load(dir) {
        Err(error) => error,
        Ok(_) => CatalogError::Corrupt {
            path: dir.join(CATALOG_FILE),
            reason: first.to_string(),
        },
    }
}

/// "a (why), b (why), ... and N more".
fn name_list(names: &[(String, String)]) -> String {
    let mut shown: Vec<String> = names
        .iter()
        .take(NAMES_SHOWN_MAX)
        .map(|(name, why)| {
            if why.is_empty() {
                name.clone()
            } else {
                format!("{name} ({why})")
            }
        })
        .collect();
    if names.len() > NAMES_SHOWN_MAX {
        shown.push(format!("and {} more", names.len() - NAMES_SHOWN_MAX));
    }
    shown.join(", ")
}

/// The refusal when `meta` names another node than `configured`.
fn node_id_mismatch(dir: &Path, meta: &BrokerMeta, configured: i32) -> Option<DataDirError> {
    let stored = meta.node_id?;
    (stored != configured).then(|| DataDirError::NodeIdMismatch {
        dir: dir.to_path_buf(),
        stored,
        configured,
    })
}

/// The node-id check of `prepare` alone, read-only, for what must not touch another node's
/// data dir even before `prepare` runs (cluster mode starts its raft log first). A missing
/// `meta.json` passes here (`prepare` decides about it); an unreadable one is refused.
pub fn check_node_id(config: &Config) -> Result<(), DataDirError> {
    let dir = &config.storage.data_dir;
    match BrokerMeta::load(dir) {
        Ok(None) => Ok(()),
        Ok(Some(meta)) => node_id_mismatch(dir, &meta, config.server.node_id).map_or(Ok(()), Err),
        Err(source) => Err(DataDirError::MetaUnreadable {
            dir: dir.clone(),
            source,
        }),
    }
}

/// What start-up hands the shards.
pub struct Prepared {
    pub catalog: Catalog,
    pub meta: BrokerMeta,
    /// Held for as long as the broker runs.
    pub lock: DataDirLock,
}

/// Checks the data dir before any shard starts (see the module docs), sets up a new one,
/// and finishes interrupted deletions.
pub fn prepare(config: &Config) -> Result<Prepared, DataDirError> {
    let dir = &config.storage.data_dir;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let lock = lock(dir)?;
    let survey = survey(dir)?;
    let (catalog, mut meta) = survey.check()?;
    let fresh = survey.is_fresh();
    let configured = config.server.node_id;
    let mut save_meta = false;
    if let Some(error) = node_id_mismatch(dir, &meta, configured) {
        return Err(error);
    }
    match meta.node_id {
        Some(_) => {}
        None => {
            if matches!(survey.meta, Ok(Some(_))) {
                tracing::warn!(dir = %dir.display(), node_id = configured, "{META_FILE} records no node id (an earlier release): this data dir now belongs to node {configured}");
            }
            meta.node_id = Some(configured);
            save_meta = true;
        }
    }
    if matches!(survey.meta, Ok(None)) {
        // A new data dir: meta.json first, so from here on a missing catalog is no longer a
        // new data dir. A data dir from a release before meta.json (`check` found no
        // producer id in its logs): written now, block end 0.
        if !fresh {
            tracing::warn!(dir = %dir.display(), "{META_FILE} missing and no producer id in any log: written with producer ids starting at 0 (a data dir from a release before {META_FILE})");
        }
        save_meta = true;
    }
    if save_meta {
        meta.save(dir)?;
    }
    let mut catalog = ensure_internal_topics(catalog, config)?;
    remove_leftovers(dir, &survey);
    for topic in catalog.deleting().to_vec() {
        catalog = finish_deletion(dir, &survey, catalog, &topic);
    }
    if fresh {
        tracing::info!(dir = %dir.display(), "new data dir set up");
    }
    Ok(Prepared {
        catalog,
        meta,
        lock,
    })
}

/// Creates `__consumer_offsets` and `__transaction_state` (compacted, internal) if the
/// catalog lacks them (a new data dir). In cluster mode both are topics of the metadata log
/// instead (created when the first group or transactional id looks for its coordinator,
/// copied here by `cluster_topics`), so they are not created as this broker's own.
fn ensure_internal_topics(mut catalog: Catalog, config: &Config) -> Result<Catalog, DataDirError> {
    let cluster_mode = config.cluster.cluster_mode();
    let internal = [
        (OFFSETS_TOPIC, config.group.offsets_topic_partitions),
        (
            TRANSACTIONS_TOPIC,
            config.transaction.state_topic_partitions,
        ),
    ];
    let mut changed = false;
    for (name, partitions) in internal {
        if catalog.topic(name).is_some() || cluster_mode {
            continue;
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: *uuid::Uuid::new_v4().as_bytes(),
            partitions,
            configs: internal_topic_configs(),
            internal: true,
            cluster: false,
        };
        catalog = catalog.with_topic(meta)?;
        changed = true;
    }
    if changed {
        catalog.save(&config.storage.data_dir)?;
    }
    Ok(catalog)
}

/// As Kafka's offsets.topic.segment.bytes and transaction.state.log.segment.bytes: small
/// segments, so closed ones exist for the cleaner to compact.
pub(crate) fn internal_topic_configs() -> std::collections::BTreeMap<String, String> {
    [
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            INTERNAL_SEGMENT_BYTES.to_string(),
        ),
    ]
    .into()
}

/// Tombstones and probe files of an earlier run. Failures are logged: they hold no data
/// and the next start tries again.
fn remove_leftovers(dir: &Path, survey: &Survey) {
    for name in &survey.tombstones {
        let path = dir.join(name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!(dir = %path.display(), "finished an interrupted deletion"),
            Err(error) => tracing::warn!(dir = %path.display(), %error, "cannot remove tombstone"),
        }
    }
    for name in &survey.probes {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// Deletes the remaining directories of a deleted topic, then drops it from `deleting`
/// (kept there, and retried at the next start, if a directory could not be removed).
fn finish_deletion(dir: &Path, survey: &Survey, catalog: Catalog, topic: &TopicMeta) -> Catalog {
    let tag = topic_id_hex(&topic.id);
    let mut done = true;
    for partition in survey.partitions.iter() {
        if standing(partition, &catalog) != (Standing::Deleting { tag: tag.clone() }) {
            continue;
        }
        if let Err(error) = remove_partition_dir(&dir.join(&partition.name), &tag) {
            tracing::error!(dir = %partition.name, %error, "cannot finish deleting a partition");
            done = false;
        } else {
            tracing::info!(dir = %partition.name, topic = %topic.name, "finished an interrupted deletion");
        }
    }
    if !done {
        return catalog;
    }
    let next = catalog.deletion_finished(&topic.id);
    match next.save(dir) {
        Ok(()) => next,
        Err(error) => {
            tracing::warn!(%error, topic = %topic.name, "cannot record the finished deletion; retried at the next start");
            catalog
        }
    }
}

/// Why a partition directory cannot be used for a topic.
#[derive(Debug, Error)]
#[error("partition directory {dir} cannot be used: {reason}")]
pub struct ClaimError {
    pub dir: PathBuf,
    pub reason: String,
    /// The directory is another's or unknown (never the topic's data), as opposed to an
    /// I/O failure.
    pub unidentified: bool,
}

/// Makes `dir` the directory of topic `id`: creates it with its `partition.metadata`, or
/// finds it already marked for `id` (or empty, from an interrupted claim). A directory of
/// another or an unknown topic is refused, never wiped or adopted.
pub fn claim_partition_dir(dir: &Path, id: &TopicId) -> Result<(), ClaimError> {
    let refuse = |reason: String, unidentified| ClaimError {
        dir: dir.to_path_buf(),
        reason,
        unidentified,
    };
    let exists = dir.exists();
    if exists {
        match read_identity(dir) {
            Identity::Id(found) if found == *id => return Ok(()),
            Identity::Empty => {}
            Identity::Id(found) => {
                let reason = format!(
                    "{PARTITION_METADATA_FILE} names topic id {}, not {}",
                    topic_id_hex(&found),
                    topic_id_hex(id)
                );
                return Err(refuse(reason, true));
            }
            Identity::Missing { files } => {
                let reason = format!("no {PARTITION_METADATA_FILE}, but {files} other files");
                return Err(refuse(reason, true));
            }
            Identity::Unreadable(reason) => {
                return Err(refuse(
                    format!("unreadable {PARTITION_METADATA_FILE}: {reason}"),
                    true,
                ));
            }
        }
    }
    let io = |e: std::io::Error| refuse(e.to_string(), false);
    std::fs::create_dir_all(dir).map_err(io)?;
    let marker = dir.join(PARTITION_METADATA_FILE);
    crate::metadata::write_atomically(&marker, topic_id_hex(id).as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicMeta {
        TopicMeta {
            name: name.to_string(),
            id: *uuid::Uuid::new_v4().as_bytes(),
            partitions,
            configs: Default::default(),
            internal: false,
            cluster: false,
        }
    }

    #[test]
    fn partition_dir_names() {
        assert_eq!(
            parse_partition_dir_name("orders-12"),
            Some(("orders".to_string(), 12))
        );
        assert_eq!(
            parse_partition_dir_name("a-b-0"),
            Some(("a-b".to_string(), 0))
        );
        for not in [
            "orders",
            "orders-",
            "orders-1.deleted",
            "x-1.quarantined",
            "lost+found",
        ] {
            assert_eq!(parse_partition_dir_name(not), None, "{not}");
        }
    }

    #[test]
    fn claims_new_and_own_dirs_and_refuses_others() {
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let (mine, other) = (topic("t", 1).id, topic("t", 1).id);
        let dir = root.path().join("t-0");
        claim_partition_dir(&dir, &mine).unwrap();
        claim_partition_dir(&dir, &mine).unwrap();
        assert!(claim_partition_dir(&dir, &other).unwrap_err().unidentified);
        std::fs::write(dir.join("00000000000000000000.log"), b"data").unwrap();
        std::fs::remove_file(dir.join(PARTITION_METADATA_FILE)).unwrap();
        let refused = claim_partition_dir(&dir, &mine).unwrap_err();
        assert!(
            refused.reason.contains("no partition.metadata"),
            "{refused}"
        );
        assert!(
            dir.join("00000000000000000000.log").exists(),
            "data touched"
        );
        let empty = root.path().join("t-1");
        std::fs::create_dir_all(&empty).unwrap();
        claim_partition_dir(&empty, &mine).unwrap();
        assert_eq!(read_identity(&empty), Identity::Id(mine));
    }

    #[test]
    fn standing_against_the_catalog() {
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let live = topic("live", 2);
        let gone = topic("gone", 1);
        let catalog = Catalog::default()
            .with_topic(live.clone())
            .unwrap()
            .with_topic(gone.clone())
            .unwrap()
            .without_topic("gone")
            .unwrap();
        let dir = |name: &str, identity| PartitionDir {
            name: name.to_string(),
            topic: parse_partition_dir_name(name).unwrap().0,
            partition: parse_partition_dir_name(name).unwrap().1,
            identity,
        };
        assert_eq!(
            standing(&dir("live-1", Identity::Id(live.id)), &catalog),
            Standing::Live
        );
        assert_eq!(
            standing(&dir("live-1", Identity::Empty), &catalog),
            Standing::Live
        );
        assert!(matches!(
            standing(&dir("gone-0", Identity::Id(gone.id)), &catalog),
            Standing::Deleting { .. }
        ));
        for unknown in [
            dir("live-2", Identity::Id(live.id)),
            dir("live-0", Identity::Id(gone.id)),
            dir("live-0", Identity::Missing { files: 3 }),
            dir("gone-0", Identity::Missing { files: 3 }),
            dir("other-0", Identity::Id(live.id)),
            dir("live-0", Identity::Unreadable("x".into())),
        ] {
            assert!(
                matches!(standing(&unknown, &catalog), Standing::Unidentified { .. }),
                "{unknown:?}"
            );
        }
        drop(root);
    }

    #[test]
    fn a_new_data_dir_is_fresh_and_one_with_data_but_no_catalog_is_not() {
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let dir = root.path();
        assert!(survey(dir).unwrap().is_fresh());
        std::fs::create_dir_all(dir.join("orders-0")).unwrap();
        std::fs::write(dir.join("orders-0/00000000000000000000.log"), b"x").unwrap();
        let survey = survey(dir).unwrap();
        assert!(!survey.is_fresh());
        let error = survey.check().unwrap_err().to_string();
        assert!(error.contains("topics.json is missing"), "{error}");
        assert!(
            error.contains("shardlog data-dir recover-catalog"),
            "{error}"
        );
        assert!(error.contains("orders-0"), "{error}");
    }
}
