//! Topic catalog, topic and group configs; partition → shard placement.
//!
//! Owns: `<data_dir>/topics.json` (the catalog), `<data_dir>/meta.json` (broker identity
//! and the producer-id high mark), `<data_dir>/dynamic_broker_configs.json` and
//! `<data_dir>/scram_credentials.json` (SASL users). May import: `crate::model`,
//! `crate::config`, `crate::security` (credential types). No I/O beyond those files.
//! Runs on: the controller shard (0) mutates the catalog and broadcasts immutable snapshots;
//! every shard reads its snapshot.
//! Invariants: topic names are unique and valid Kafka names; topic ids are unique; a
//! catalog `version` only grows.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod broker_config;
mod broker_meta;
mod catalog;
pub mod dynamic_broker_config;
pub mod group_config;
pub mod placement;
pub mod scram_credentials;
pub mod topic_config;

pub use broker_meta::{BrokerMeta, BrokerMetaError, META_FILE, PRODUCER_ID_BLOCK};
pub use catalog::{
    CATALOG_FILE, Catalog, CatalogError, TopicId, TopicMeta, parse_topic_id, topic_id_hex,
    validate_topic_name, write_atomically,
};
pub use dynamic_broker_config::{BrokerEntity, DynamicBrokerConfigs, DynamicConfigError};
pub use placement::shard_for;
