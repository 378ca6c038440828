//! Typed messages between shards (over the glommio channel mesh) and their results. All
//! payloads are `Send`: `Bytes` for record data, `Arc` for immutable catalog snapshots.
//! Replies travel back on one-shot channels (glommio wakes tasks from foreign threads).

use crate::metadata::{Catalog, TopicMeta};
use crate::model::{ErrorCode, Offset, TopicPartition};
use bytes::Bytes;
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub type Reply<T> = oneshot::Sender<T>;

pub enum ShardMessage {
    /// Append to partitions owned by the receiver. The receiver appends in arrival order
    /// (stage 1) before taking its next message, then replies when the acks level is met.
    Produce(ProduceOp),
    Read(ReadOp),
    WaitForData(WaitOp),
    ListOffsets(ListOffsetsOp),
    /// Catalog changes; only shard 0 (the controller) receives these.
    Controller(ControllerOp),
    /// A new catalog snapshot: open logs for new partitions this shard owns, remove deleted.
    ApplyCatalog(Arc<Catalog>, Reply<()>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

pub struct ProducePartition {
    pub partition: TopicPartition,
    pub records: Bytes,
}

#[derive(Debug, Clone)]
pub struct ProducePartitionResult {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

pub struct ProduceOp {
    pub partitions: Vec<ProducePartition>,
    pub acks: Acks,
    pub reply: Reply<Vec<ProducePartitionResult>>,
}

#[derive(Debug, Clone)]
pub struct ReadPartition {
    pub partition: TopicPartition,
    pub offset: Offset,
    pub max_bytes: usize,
    pub read_committed: bool,
}

#[derive(Debug, Clone)]
pub struct ReadPartitionResult {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub batches: Vec<Bytes>,
}

impl ReadPartitionResult {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

pub struct ReadOp {
    pub partitions: Vec<ReadPartition>,
    pub reply: Reply<Vec<ReadPartitionResult>>,
}

/// Completes when any listed partition's log end passes its offset, or after `timeout`.
pub struct WaitOp {
    pub partitions: Vec<(TopicPartition, Offset)>,
    pub timeout: Duration,
    pub reply: Reply<()>,
}

#[derive(Debug, Clone)]
pub struct ListOffsetsPartition {
    pub partition: TopicPartition,
    /// -1 latest, -2 earliest, -3 max timestamp, >= 0 a timestamp.
    pub timestamp: i64,
    pub read_committed: bool,
}

#[derive(Debug, Clone)]
pub struct ListOffsetsResult {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub timestamp: i64,
    pub offset: i64,
}

pub struct ListOffsetsOp {
    pub partitions: Vec<ListOffsetsPartition>,
    pub reply: Reply<Vec<ListOffsetsResult>>,
}

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// Result of one topic in a CreateTopics/DeleteTopics call.
#[derive(Debug, Clone)]
pub struct TopicOutcome {
    pub name: String,
    pub error: ErrorCode,
    pub message: Option<String>,
    pub topic: Option<TopicMeta>,
}

pub enum ControllerOp {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    DeleteTopics {
        names: Vec<String>,
        reply: Reply<Vec<TopicOutcome>>,
    },
    AllocateProducerId {
        reply: Reply<Result<i64, ErrorCode>>,
    },
}
