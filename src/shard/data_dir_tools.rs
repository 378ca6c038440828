//! The `shardlog data-dir` recovery tools, run while no broker uses the data dir (they take
//! its lock): `recover_catalog` rebuilds a missing or unreadable `topics.json` from the
//! partition directories and `meta.json` from the highest producer id in the logs;
//! `quarantine` moves partition directories of unknown identity aside; `repair` accepts
//! the loss a damaged partition log reports so it opens again without reusing offsets.
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
        BrokerMeta {
            producer_id_block_end: block_end,
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

/// Moves partition directories aside as `<name>.quarantined` (numbered if taken): the
/// named ones, or with `names` empty every unidentified one. Live partitions (those the
/// catalog knows) are refused: use `repair` for a damaged one. Returns the new names.
pub fn quarantine(
    data_dir: &Path,
    names: &[String],
) -> Result<Vec<(String, String)>, DataDirError> {
    let _lock = data_dir::lock(data_dir)?;
    let survey = data_dir::survey(data_dir)?;
    let catalog = match &survey.catalog {
        Ok(Some(catalog)) => catalog.clone(),
        _ => {
            return Err(DataDirError::CatalogMissing {
                dir: data_dir.to_path_buf(),
                evidence:
                    "run recover-catalog first: without a catalog every directory is unidentified"
                        .to_string(),
            });
        }
    };
    let mut moved = Vec::new();
    for dir in &survey.partitions {
        let wanted = names.is_empty() || names.iter().any(|n| n == &dir.name);
        if !wanted {
            continue;
        }
        match data_dir::standing(dir, &catalog) {
            Standing::Live if !names.is_empty() => {
                return Err(DataDirError::Io {
                    path: data_dir.join(&dir.name),
                    source: std::io::Error::other(
                        "a partition of a topic in the catalog; use `shardlog data-dir repair` for a damaged one",
                    ),
                });
            }
            Standing::Unidentified { .. } | Standing::Deleting { .. } => {
                let to = quarantine_one(data_dir, &dir.name)?;
                moved.push((dir.name.clone(), to));
            }
            Standing::Live => {}
        }
    }
    for name in names {
        if !survey.partitions.iter().any(|d| &d.name == name) {
            return Err(DataDirError::Io {
                path: data_dir.join(name),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
    }
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(data_dir))?;
    Ok(moved)
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
    glommio::LocalExecutorBuilder::default()
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
