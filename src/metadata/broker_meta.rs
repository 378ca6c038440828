//! `meta.json`: what this broker must remember across restarts outside the catalog: the end
//! of the last reserved producer-id block, so producer ids never repeat, and the node id the
//! data dir belongs to (Kafka's `meta.properties` `node.id`), so a data dir is never served
//! under another node's id.
//!
//! Owns: the file's format, load and atomic save. May import: `super::catalog`
//! (`write_atomically`). Runs on: the main thread at start-up and the controller shard's
//! blocking pool (blocking `std::fs` calls: never on a shard thread).
//! Invariants: `producer_id_block_end` only grows; the file is written (block end 0) when a
//! data dir is created, so a later absence is loss, not a fresh start.

use super::catalog::write_atomically;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const META_FILE: &str = "meta.json";
/// Producer ids the controller reserves (and persists) at a time.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Error)]
pub enum BrokerMetaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    /// Every producer id below this may have been handed out.
    pub producer_id_block_end: i64,
    /// The node that owns this data dir; absent in files from releases before it was kept
    /// (start-up then records the configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<i32>,
}

impl BrokerMeta {
    /// Reads `<data_dir>/meta.json`; `Ok(None)` if there is none.
    pub fn load(data_dir: &Path) -> Result<Option<BrokerMeta>, BrokerMetaError> {
        let path = data_dir.join(META_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BrokerMetaError::Io { path, source }),
        };
        let meta: BrokerMeta =
            serde_json::from_str(&text).map_err(|e| BrokerMetaError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if meta.producer_id_block_end < 0 {
            return Err(BrokerMetaError::Corrupt {
                path,
                reason: format!(
                    "negative producer id block end {}",
                    meta.producer_id_block_end
                ),
            });
        }
        Ok(Some(meta))
    }

    /// Atomically replaces `<data_dir>/meta.json`.
    pub fn save(&self, data_dir: &Path) -> Result<(), BrokerMetaError> {
        let path = data_dir.join(META_FILE);
        let text = serde_json::to_vec(self).map_err(|e| BrokerMetaError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, &text).map_err(|source| BrokerMetaError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_missing_and_corrupt() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        assert_eq!(BrokerMeta::load(dir.path()).unwrap(), None);
        let meta = BrokerMeta {
            producer_id_block_end: 3000,
            node_id: Some(2),
        };
        meta.save(dir.path()).unwrap();
        assert_eq!(BrokerMeta::load(dir.path()).unwrap(), Some(meta));
        // A file from before the node id was kept.
        std::fs::write(
            dir.path().join(META_FILE),
            b"{\"producer_id_block_end\": 1000}",
        )
        .unwrap();
        let old = BrokerMeta::load(dir.path()).unwrap().unwrap();
        assert_eq!((old.producer_id_block_end, old.node_id), (1000, None));
        std::fs::write(dir.path().join(META_FILE), b"{").unwrap();
        assert!(matches!(
            BrokerMeta::load(dir.path()),
            Err(BrokerMetaError::Corrupt { .. })
        ));
    }
}
