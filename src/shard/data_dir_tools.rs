//! The `shardlog data-dir` recovery tools, run while no broker uses the data dir (they take
//! its lock): `recover_catalog` rebuilds a missing or unreadable `topics.json` from the
//! partition directories and `meta.json` from the highest producer id in the logs;
//! `quarantine` moves partition directories of unknown identity aside; `adopt` writes the
//! `partition.metadata` an operator vouches for; `repair` accepts the loss a damaged
//! partition log reports so it opens again without reusing offsets.
//!
//! Owns: these operations and their reports. May import: config, metadata, storage,
//! `super::data_dir`. Runs on: the main thread of the `shardlog` CLI (`repair` runs one
//! glommio executor to recover the log exactly as a shard would).
//! Invariants: nothing is deleted: a damaged file is kept as `<name>.damaged`, a
//! quarantined directory as `<name>.quarantined`.

use super::data_dir::{
    self, DataDirError, Identity, QUARANTINE_SUFFIX, Standing, internal_topic_configs,
};
use crate::config::Config;
use crate::metadata::{
    BrokerMeta, CATALOG_FILE, Catalog, META_FILE, PRODUCER_ID_BLOCK, TopicId, TopicMeta,
};
use crate::storage::{
    BatchCache, LogConfig, PartitionLog, RepairReport, StorageError, max_producer_id,
    repair_damaged,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Blocks skipped past the highest producer id found when `meta.json` is rebuilt: ids the
/// lost file had reserved may have been handed to producers that never wrote a batch.
pub const RECOVERED_PRODUCER_ID_MARGIN_BLOCKS: i64 = 10;
/// I/O memory of the executor `repair` runs recovery on.
const REPAIR_IO_MEMORY_BYTES: usize = 1 << 20;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `recover_catalog` did.
#[derive(Debug, Default)]
pub struct CatalogRecovery {
    /// Topics written to the rebuilt catalog: (name, partitions). Empty: kept as it was.
    pub topics: Vec<(String, i32)>,
    /// The rebuilt producer-id block end (None: `meta.json` was kept).
    pub producer_id_block_end: Option<i64>,
    /// Unreadable files renamed to `<name>.damaged`.
    pub kept_damaged: Vec<PathBuf>,
    /// Directories that could not be attributed to a topic, with why; start-up still
    /// refuses them until they are quarantined.
    pub unidentified: Vec<(String, String)>,
}

/// Rebuilds whichever of `topics.json` and `meta.json` is missing or unreadable (the
/// unreadable file is kept as `<name>.damaged`). Topics come from the partition
/// directories' `partition.metadata` (configs are not recoverable: defaults, except the
/// internal topics' compaction); the producer-id block end is the highest producer id in
/// any segment, rounded up to a block, plus `RECOVERED_PRODUCER_ID_MARGIN_BLOCKS` blocks.
pub fn recover_catalog(data_dir: &Path) -> Result<CatalogRecovery, DataDirError> {
    let _lock = data_dir::lock(data_dir)?;
    let survey = data_dir::survey(data_dir)?;
    let mut report = CatalogRecovery::default();
    let catalog = match &survey.catalog {
        Ok(Some(catalog)) => catalog.clone(),
        readable => {
            if readable.is_err() {
                report
                    .kept_damaged
                    .push(keep_damaged(data_dir, CATALOG_FILE)?);
            }
            let catalog = catalog_from_dirs(&survey.partitions)?;
            report.topics = catalog
                .topics()
                .map(|t| (t.name.clone(), t.partitions))
                .collect();
            catalog.save(data_dir)?;
            catalog
        }
    };
    if !matches!(survey.meta, Ok(Some(_))) || !report.topics.is_empty() {
        if survey.meta.is_err() {
            report.kept_damaged.push(keep_damaged(data_dir, META_FILE)?);
        }
        let block_end = recovered_block_end(data_dir, &survey.partitions, &survey.meta)?;
        // The node id survives when the old file is readable; otherwise the next start
        // records the configured one.
        let node_id = match &survey.meta {
            Ok(Some(meta)) => meta.node_id,
            _ => None,
        };
        BrokerMeta {
            producer_id_block_end: block_end,
            node_id,
        }
        .save(data_dir)?;
        report.producer_id_block_end = Some(block_end);
    }
    report.unidentified = survey.unidentified(&catalog);
    Ok(report)
}

/// Renames `<dir>/<name>` to `<name>.damaged` (numbered if that exists).
fn keep_damaged(dir: &Path, name: &str) -> Result<PathBuf, DataDirError> {
    let from = dir.join(name);
    let mut to = dir.join(format!("{name}.damaged"));
    let mut attempt = 1;
    while to.exists() {
        to = dir.join(format!("{name}.damaged.{attempt}"));
        attempt += 1;
    }
    std::fs::rename(&from, &to).map_err(io_error(&from))?;
    Ok(to)
}

/// A catalog with one topic per topic id found in `partition.metadata` files. Two ids for
/// one name is a conflict the operator must settle (quarantine one).
fn catalog_from_dirs(dirs: &[data_dir::PartitionDir]) -> Result<Catalog, DataDirError> {
    let mut topics: BTreeMap<String, (TopicId, i32)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for dir in dirs {
        let Identity::Id(id) = dir.identity else {
            continue;
        };
        let entry = topics.entry(dir.topic.clone()).or_insert((id, 0));
        if entry.0 != id {
            conflicts.push((
                dir.name.clone(),
                "another topic id of the same name".to_string(),
            ));
            continue;
        }
        entry.1 = entry.1.max(dir.partition + 1);
    }
    if !conflicts.is_empty() {
        return Err(DataDirError::Unidentified {
            dir: PathBuf::new(),
            count: conflicts.len(),
            list: conflicts
                .iter()
                .map(|(n, why)| format!("{n} ({why})"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut catalog = Catalog::default();
    for (name, (id, partitions)) in topics {
        let internal = name.starts_with("__");
        let configs = if internal {
            internal_topic_configs()
        } else {
            BTreeMap::new()
        };
        catalog = catalog.with_topic(TopicMeta {
            name,
            id,
            partitions,
            configs,
            internal,
            cluster: false,
        })?;
    }
    Ok(catalog)
}

fn recovered_block_end(
    data_dir: &Path,
    dirs: &[data_dir::PartitionDir],
    meta: &Result<Option<BrokerMeta>, crate::metadata::BrokerMetaError>,
) -> Result<i64, DataDirError> {
    let mut highest: Option<i64> = None;
    for dir in dirs {
        let found =
            max_producer_id(&data_dir.join(&dir.name)).map_err(|error| DataDirError::Io {
                path: data_dir.join(&dir.name),
                source: std::io::Error::other(error.to_string()),
            })?;
        highest = highest.max(found);
    }
    let next = highest.map_or(0, |id| id + 1);
    let rounded = (next + PRODUCER_ID_BLOCK - 1) / PRODUCER_ID_BLOCK * PRODUCER_ID_BLOCK;
    let recovered = rounded + RECOVERED_PRODUCER_ID_MARGIN_BLOCKS * PRODUCER_ID_BLOCK;
    let kept = match meta {
        Ok(Some(meta)) => meta.producer_id_block_end,
        _ => 0,
    };
    Ok(recovered.max(kept))
}

/// What `quarantine` did.
#[derive(Debug, Default)]
pub struct QuarantineReport {
    /// (old name, new name).
    pub moved: Vec<(String, String)>,
    /// Unidentified directories named like a partition the catalog has, left in place by
    /// `--all-unidentified` (moving them would restart that partition empty at offset 0):
    /// (name, why).
    pub skipped: Vec<(String, String)>,
}

/// Moves partition directories aside as `<name>.quarantined` (numbered if taken): the
/// named ones, or with `names` empty every unidentified one except those named like a
/// partition the catalog has (see `QuarantineReport::skipped`; `adopt` or name them).
/// Live partitions are refused: use `repair` for a damaged one.
pub fn quarantine(data_dir: &Path, names: &[String]) -> Result<QuarantineReport, DataDirError> {
    let _lock = data_dir::lock(data_dir)?;
    let survey = data_dir::survey(data_dir)?;
    let Ok(Some(catalog)) = &survey.catalog else {
        return Err(DataDirError::CatalogMissing {
            dir: data_dir.to_path_buf(),
            evidence:
                "run recover-catalog first: without a catalog every directory is unidentified"
                    .to_string(),
        });
    };
    for name in names {
        if !survey.partitions.iter().any(|d| &d.name == name) {
            return Err(DataDirError::Io {
                path: data_dir.join(name),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
    }
    let mut report = QuarantineReport::default();
    for dir in &survey.partitions {
        let named = names.iter().any(|n| n == &dir.name);
        if !names.is_empty() && !named {
            continue;
        }
        let partition_of_catalog = catalog
            .topic(&dir.topic)
            .is_some_and(|t| dir.partition < t.partitions);
        match data_dir::standing(dir, catalog) {
            Standing::Live if named => {
                return Err(DataDirError::Io {
                    path: data_dir.join(&dir.name),
                    source: std::io::Error::other(
                        "a partition of a topic in the catalog; use `shardlog data-dir repair` for a damaged one",
                    ),
                });
            }
            Standing::Live => {}
            Standing::Unidentified { reason } if partition_of_catalog && !named => {
                report.skipped.push((dir.name.clone(), reason));
            }
            Standing::Unidentified { .. } | Standing::Deleting { .. } => {
                let to = quarantine_one(data_dir, &dir.name)?;
                report.moved.push((dir.name.clone(), to));
            }
        }
    }
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(data_dir))?;
    Ok(report)
}

fn quarantine_one(data_dir: &Path, name: &str) -> Result<String, DataDirError> {
    let mut to = format!("{name}{QUARANTINE_SUFFIX}");
    let mut attempt = 1;
    while data_dir.join(&to).exists() {
        to = format!("{name}{QUARANTINE_SUFFIX}-{attempt}");
        attempt += 1;
    }
    let from = data_dir.join(name);
    std::fs::rename(&from, data_dir.join(&to)).map_err(io_error(&from))?;
    tracing::warn!(from = %name, to = %to, "partition directory quarantined");
    Ok(to)
}

/// Writes `partition.metadata` into `<data_dir>/<name>` with the topic id the catalog has
/// for its topic: the operator's statement that a directory which lost (or has an
/// unreadable) `partition.metadata` holds that topic's data. Refused for a directory that
/// names another topic id, or whose topic or partition the catalog does not have.
pub fn adopt(data_dir: &Path, name: &str) -> Result<TopicId, DataDirError> {
    let _lock = data_dir::lock(data_dir)?;
    let survey = data_dir::survey(data_dir)?;
    let refuse = |why: String| DataDirError::Io {
        path: data_dir.join(name),
        source: std::io::Error::other(why),
    };
    let Ok(Some(catalog)) = &survey.catalog else {
        return Err(refuse(
            "no readable topics.json: run recover-catalog first".to_string(),
        ));
    };
    let Some(dir) = survey.partitions.iter().find(|d| d.name == name) else {
        return Err(refuse("not a partition directory".to_string()));
    };
    let Some(topic) = catalog
        .topic(&dir.topic)
        .filter(|t| dir.partition < t.partitions)
    else {
        return Err(refuse(format!(
            "{CATALOG_FILE} has no partition {} of `{}`",
            dir.partition, dir.topic
        )));
    };
    match &dir.identity {
        Identity::Id(id) if *id == topic.id => return Ok(topic.id),
        Identity::Id(_) => {
            return Err(refuse(
                "its partition.metadata names another topic id; quarantine it instead".to_string(),
            ));
        }
        Identity::Empty | Identity::Missing { .. } | Identity::Unreadable(_) => {}
    }
    let marker = data_dir.join(name).join(data_dir::PARTITION_METADATA_FILE);
    crate::metadata::write_atomically(&marker, crate::metadata::topic_id_hex(&topic.id).as_bytes())
        .map_err(io_error(&marker))?;
    Ok(topic.id)
}

/// What `repair` found.
#[derive(Debug)]
pub enum RepairOutcome {
    /// The log opens: nothing to repair (recovery may have cut a torn tail, as a broker
    /// would).
    NotDamaged {
        log_end: i64,
    },
    Repaired(RepairReport),
}

/// Opens the partition log in `<data_dir>/<name>` as a shard would; if it reports
/// `Damaged`, keeps the damaged segment aside and lets the log continue at the offset it
/// had reached (`storage::repair_damaged`). The offsets in between are lost.
pub fn repair(config: &Config, name: &str) -> Result<RepairOutcome, DataDirError> {
    let data_dir = &config.storage.data_dir;
    let _lock = data_dir::lock(data_dir)?;
    let dir = data_dir.join(name);
    if data_dir::parse_partition_dir_name(name).is_none() || !dir.is_dir() {
        return Err(DataDirError::Io {
            path: dir,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let log_config = LogConfig::from_storage(&config.storage);
    let opened = open_once(&dir, log_config).map_err(|reason| DataDirError::Io {
        path: dir.clone(),
        source: std::io::Error::other(reason),
    })?;
    match opened {
        Ok(log_end) => Ok(RepairOutcome::NotDamaged { log_end }),
        Err(StorageError::Damaged {
            segment,
            valid_bytes,
            expected,
            ..
        }) => repair_damaged(&dir, segment.as_deref(), valid_bytes, expected)
            .map(RepairOutcome::Repaired)
            .map_err(|error| DataDirError::Io {
                path: dir,
                source: std::io::Error::other(error.to_string()),
            }),
        Err(error) => Err(DataDirError::Io {
            path: dir,
            source: std::io::Error::other(error.to_string()),
        }),
    }
}

/// Opens and closes the log on a one-off executor; the outer error is the executor's.
fn open_once(dir: &Path, config: LogConfig) -> Result<Result<i64, StorageError>, String> {
    let dir = dir.to_path_buf();
    crate::storage::one_off_executor()
        .io_memory(REPAIR_IO_MEMORY_BYTES)
        .spawn(move || async move {
            let cache = Rc::new(BatchCache::new(REPAIR_IO_MEMORY_BYTES as u64));
            let log = PartitionLog::open(&dir, config, cache, Rc::default()).await?;
            let log_end = log.log_end_offset().value();
            log.close().await?;
            Ok(log_end)
        })
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::topic_id_hex;
    use crate::model::batch::CRC_COVERED_FROM;
    use crate::model::batch::test_support::build_batch;

    /// A partition dir with `partition.metadata` for `id` (None: without) and one segment
    /// holding a batch of `producer_id`.
    fn partition(root: &Path, name: &str, id: Option<&TopicId>, producer_id: i64) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(id) = id {
            std::fs::write(dir.join("partition.metadata"), topic_id_hex(id)).unwrap();
        }
        let mut batch = build_batch(&[b"value"], 1000);
        batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(dir.join("00000000000000000000.log"), batch).unwrap();
    }

    fn id() -> TopicId {
        *uuid::Uuid::new_v4().as_bytes()
    }

    #[test]
    fn recover_catalog_rebuilds_topics_and_producer_ids_and_keeps_damaged_files() {
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let (orders, offsets) = (id(), id());
        partition(root.path(), "orders-0", Some(&orders), 1234);
        partition(root.path(), "orders-2", Some(&orders), 7);
        partition(root.path(), "__consumer_offsets-0", Some(&offsets), -1);
        partition(root.path(), "lost-0", None, 5);
        std::fs::write(root.path().join(CATALOG_FILE), b"{ broken").unwrap();
        let report = recover_catalog(root.path()).unwrap();
        assert_eq!(
            report.topics,
            vec![
                ("__consumer_offsets".to_string(), 1),
                ("orders".to_string(), 3)
            ]
        );
        assert_eq!(report.kept_damaged.len(), 1);
        assert!(root.path().join("topics.json.damaged").exists());
        // 1234 + 1 rounded up to a block, plus the margin.
        assert_eq!(
            report.producer_id_block_end,
            Some(2000 + 10 * PRODUCER_ID_BLOCK)
        );
        assert_eq!(report.unidentified.len(), 1, "{:?}", report.unidentified);
        let catalog = Catalog::load(root.path()).unwrap().unwrap();
        assert_eq!(catalog.topic("orders").unwrap().id, orders);
        let internal = catalog.topic("__consumer_offsets").unwrap();
        assert!(internal.internal);
        assert_eq!(internal.configs["cleanup.policy"], "compact");
        let meta = BrokerMeta::load(root.path()).unwrap().unwrap();
        assert_eq!(meta.producer_id_block_end, 12_000);
    }

    #[test]
    fn quarantine_moves_unknown_dirs_and_leaves_lookalikes_of_catalog_partitions() {
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let orders = id();
        partition(root.path(), "orders-0", Some(&orders), -1);
        partition(root.path(), "orders-1", None, -1);
        partition(root.path(), "gone-0", Some(&id()), -1);
        let topic = TopicMeta {
            name: "orders".to_string(),
            id: orders,
            partitions: 2,
            configs: BTreeMap::new(),
            internal: false,
            cluster: false,
        };
        Catalog::default()
            .with_topic(topic)
            .unwrap()
            .save(root.path())
            .unwrap();
        BrokerMeta::default().save(root.path()).unwrap();
        let report = quarantine(root.path(), &[]).unwrap();
        assert_eq!(
            report.moved,
            vec![("gone-0".to_string(), "gone-0.quarantined".to_string())]
        );
        assert_eq!(report.skipped.len(), 1);
        assert!(
            root.path()
                .join("gone-0.quarantined/00000000000000000000.log")
                .exists()
        );
        assert!(
            quarantine(root.path(), &["orders-0".to_string()]).is_err(),
            "live"
        );
        // The lookalike is the topic's after all: adopt it.
        assert_eq!(adopt(root.path(), "orders-1").unwrap(), orders);
        let survey = data_dir::survey(root.path()).unwrap();
        assert!(survey.check().is_ok(), "{:?}", survey.check().err());
    }
}
