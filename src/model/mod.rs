//! Core value types shared by every layer: offsets, partitions, shard ids and the
//! Kafka v2 record-batch header view.
//!
//! Owns: plain data, no I/O, no async. May import: nothing from this crate.
//! Invariants: an `Offset` is a Kafka log offset (>= 0 once assigned); a `ShardId`
//! is below the configured shard count.

pub mod batch;
pub mod compression;
pub mod error_code;
pub mod histogram;
pub mod leader_epochs;
pub mod records;
pub mod validation;

use std::fmt;
use std::sync::Arc;

pub use batch::{BatchError, Compression, RecordBatchHeader, TimestampType};
pub use error_code::ErrorCode;

/// A Kafka log offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn value(self) -> i64 {
        self.0
    }

    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The index of an executor (one per core) in the shard pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub usize);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A topic name. Cheap to clone and `Send`, so it can cross shards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(Arc<str>);

impl TopicName {
    pub fn new(name: &str) -> TopicName {
        TopicName(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TopicName {
    fn from(name: &str) -> TopicName {
        TopicName::new(name)
    }
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: TopicName,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<TopicName>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition's directory name under the data dir, as Kafka names it.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka's partition for a coordinator key (group id, transactional id):
/// `abs(javaHashCode(key)) % count`, with Java's `String.hashCode` over UTF-16 units.
pub fn coordinator_partition(key: &str, partition_count: i32) -> i32 {
    let hash = key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partition_count.max(1)
}
