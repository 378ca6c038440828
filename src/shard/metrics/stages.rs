//! The stages of a produce and of a fetch that `/metrics` times on their own
//! (`shardlog_produce_stage_duration_seconds`, `shardlog_fetch_stage_duration_seconds`).
//! Where each boundary is in the code is documented in docs/operations.md.
//!
//! Owns: `ProduceStage`, `FetchStage` and their `stage` label values, and `StageHistograms`
//! (one histogram per stage, `STAGE_BUCKETS_SECONDS`). May import: model.
//! Runs on: every shard, inside its `ShardMetrics`.

use crate::model::histogram::{LatencyHistogram, STAGE_BUCKETS_SECONDS};

/// A stage of a produce, timed per partition append (the first five) or per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProduceStage {
    /// From the start of the request's handling (decoded) to the start of this partition's
    /// append on its owner shard: producer checks, the mesh hop, earlier partitions.
    QueueWait,
    /// The append: validation, stamping, placing the batch in the partition's write buffer
    /// (with any wait for room in that buffer).
    Append,
    /// One O_DIRECT write of a segment chunk, submission to completion (per write, not per
    /// request: group-written batches share one).
    Write,
    /// acks=1: from the end of the append until the batch is flushed (written to disk).
    FlushWait,
    /// acks=all: from the end of the append until the batch is synced (fdatasync returned).
    SyncWait,
    /// acks=all in cluster mode: from synced until the in-sync replicas have the batch.
    ReplicationWait,
    /// Building and encoding the response once every partition is done.
    ResponseEncode,
    /// Writing the encoded response to the socket.
    ResponseWrite,
}

impl ProduceStage {
    pub const ALL: [ProduceStage; 8] = [
        ProduceStage::QueueWait,
        ProduceStage::Append,
        ProduceStage::Write,
        ProduceStage::FlushWait,
        ProduceStage::SyncWait,
        ProduceStage::ReplicationWait,
        ProduceStage::ResponseEncode,
        ProduceStage::ResponseWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProduceStage::QueueWait => "queue_wait",
            ProduceStage::Append => "append",
            ProduceStage::Write => "write",
            ProduceStage::FlushWait => "flush_wait",
            ProduceStage::SyncWait => "sync_wait",
            ProduceStage::ReplicationWait => "replication_wait",
            ProduceStage::ResponseEncode => "response_encode",
            ProduceStage::ResponseWrite => "response_write",
        }
    }
}

/// A stage of a fetch, timed per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FetchStage {
    /// One pass over the requested partitions on their owner shards (batch cache or disk).
    Read,
    /// A long poll waiting for data (until min_bytes is there or max_wait ends).
    Wait,
    /// Waiting for response memory to read data that is on disk.
    MemoryWait,
    /// Encoding the response (header, partition entries; record bytes are not copied).
    ResponseEncode,
    /// Writing the response to the socket.
    ResponseWrite,
}

impl FetchStage {
    pub const ALL: [FetchStage; 5] = [
        FetchStage::Read,
        FetchStage::Wait,
        FetchStage::MemoryWait,
        FetchStage::ResponseEncode,
        FetchStage::ResponseWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FetchStage::Read => "read",
            FetchStage::Wait => "wait",
            FetchStage::MemoryWait => "memory_wait",
            FetchStage::ResponseEncode => "response_encode",
            FetchStage::ResponseWrite => "response_write",
        }
    }
}

/// One histogram per stage of `N` stages, indexed by the stage's position in its `ALL`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageHistograms<const N: usize> {
    histograms: [LatencyHistogram; N],
}

impl<const N: usize> Default for StageHistograms<N> {
    fn default() -> Self {
        StageHistograms {
            histograms: std::array::from_fn(|_| LatencyHistogram::new(STAGE_BUCKETS_SECONDS)),
        }
    }
}

impl<const N: usize> StageHistograms<N> {
    pub fn record(&mut self, index: usize, seconds: f64) {
        if let Some(histogram) = self.histograms.get_mut(index) {
            histogram.record(seconds);
        }
    }

    pub fn get(&self, index: usize) -> Option<&LatencyHistogram> {
        self.histograms.get(index)
    }

    pub fn set(&mut self, index: usize, histogram: LatencyHistogram) {
        if let Some(slot) = self.histograms.get_mut(index) {
            *slot = histogram;
        }
    }
}

pub type ProduceStages = StageHistograms<{ ProduceStage::ALL.len() }>;
pub type FetchStages = StageHistograms<{ FetchStage::ALL.len() }>;

impl ProduceStage {
    pub fn index(self) -> usize {
        self as usize
    }
}

impl FetchStage {
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_index_their_all_order_and_have_distinct_labels() {
        for (position, stage) in ProduceStage::ALL.iter().enumerate() {
            assert_eq!(stage.index(), position);
        }
        for (position, stage) in FetchStage::ALL.iter().enumerate() {
            assert_eq!(stage.index(), position);
        }
        let mut labels: Vec<&str> = ProduceStage::ALL.iter().map(|s| s.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ProduceStage::ALL.len());
    }

    #[test]
    fn a_record_lands_in_its_stage_only() {
        let mut stages = ProduceStages::default();
        stages.record(ProduceStage::Append.index(), 0.000_003);
        stages.record(ProduceStage::Append.index(), 0.002);
        let append = stages.get(ProduceStage::Append.index());
        assert_eq!(append.map(LatencyHistogram::count), Some(2));
        assert_eq!(
            append.and_then(|h| h.cumulative().next()),
            Some((0.000005, 1))
        );
        let queue = stages.get(ProduceStage::QueueWait.index());
        assert_eq!(queue.map(LatencyHistogram::count), Some(0));
    }
}
