//! Per-shard counters and latency histograms, updated with plain `Cell`s on the shard that
//! owns them and gathered as a `Send` snapshot for `/metrics`.
//!
//! Owns: `ShardMetrics` (the counters), `MetricsSnapshot` (their copy), the label enums
//! (`reasons`) and the Prometheus text rendering (`render`).
//! May import: model, storage (error and stats types). Runs on: every shard; a shard's
//! `ShardMetrics` is touched only by its own executor.
//! Invariants: counters only grow (saturating); labels come from fixed enums or from
//! catalog names, which are escaped when rendered.

mod reasons;
mod render;
mod stages;

pub use crate::model::histogram::{LatencyHistogram, REQUEST_BUCKETS_SECONDS};
pub use reasons::{DelayReason, MemoryPool, RejectReason};
pub use render::render_prometheus;
pub use stages::{FetchStage, FetchStages, ProduceStage, ProduceStages};

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// Counters one shard keeps. Only its own executor touches them.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    requests: RefCell<BTreeMap<&'static str, LatencyHistogram>>,
    produce_stages: RefCell<ProduceStages>,
    fetch_stages: RefCell<FetchStages>,
    connections_open: Cell<u64>,
    connections_accepted: Cell<u64>,
    connections_refused: Cell<u64>,
    connections_closed: RefCell<BTreeMap<&'static str, u64>>,
    bytes_received: Cell<u64>,
    bytes_sent: Cell<u64>,
    produce_bytes: Cell<u64>,
    produce_rejected: Cell<u64>,
    fetch_bytes: Cell<u64>,
    rejected: RefCell<BTreeMap<RejectReason, u64>>,
    delayed: RefCell<BTreeMap<DelayReason, u64>>,
    startup_seconds: Cell<f64>,
}

/// One memory budget's size and use on a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryGauge {
    pub pool: MemoryPool,
    pub budget_bytes: u64,
    pub in_use_bytes: u64,
}

/// Messages this shard exchanged with one peer over the channel mesh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshPeerCounts {
    pub peer: usize,
    /// Messages this shard put into its channel to `peer`.
    pub sent: u64,
    /// Messages this shard took out of `peer`'s channel to it.
    pub received: u64,
}

/// A copy of one shard's counters, sent to the shard that renders `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub shard: usize,
    pub requests: BTreeMap<&'static str, LatencyHistogram>,
    /// Produce stage durations (`write` is filled in from the storage stats).
    pub produce_stages: ProduceStages,
    pub fetch_stages: FetchStages,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub connections_closed: BTreeMap<&'static str, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub produce_bytes: u64,
    pub produce_rejected: u64,
    pub fetch_bytes: u64,
    /// Refused, dropped or failed requests and connections by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Requests that had to wait for a limit, by reason.
    pub delayed: BTreeMap<DelayReason, u64>,
    /// (topic, partition) -> (log start offset, high watermark, size bytes).
    pub partitions: BTreeMap<(String, i32), (i64, i64, u64)>,
    /// (topic, partition) -> known corrupt batches (only partitions with some).
    pub corrupt_batches: BTreeMap<(String, i32), u64>,
    /// (topic, partition) -> why it has no open log (`OfflineReason::as_str`).
    pub offline: BTreeMap<(String, i32), &'static str>,
    /// Bytes the scrub has checked on this shard.
    pub scrubbed_bytes: u64,
    /// (group, topic, partition) -> committed offset, for groups coordinated here.
    pub committed: BTreeMap<(String, String, i32), i64>,
    /// group -> (state, members).
    pub groups: BTreeMap<String, (&'static str, usize)>,
    /// Summed over this shard's logs: fdatasync calls, bytes written, unwritten bytes.
    pub log_syncs: u64,
    pub log_bytes_written: u64,
    pub log_pending_bytes: u64,
    /// fdatasync durations of this shard's segment files (all logs, ever opened here).
    pub log_sync_latency: Option<LatencyHistogram>,
    /// The shard's batch cache: (budget, used, hits, misses, evictions).
    pub cache: (u64, u64, u64, u64, u64),
    /// Every memory budget of the shard.
    pub memory: Vec<MemoryGauge>,
    /// Channel-mesh traffic per peer shard (this shard excluded).
    pub mesh: Vec<MeshPeerCounts>,
    /// Capacity of each shard-to-shard channel, messages.
    pub mesh_capacity: u64,
    /// Seconds from the start of the executor pool to the end of this shard's start-up.
    pub startup_seconds: f64,
}

fn add(cell: &Cell<u64>, amount: u64) {
    cell.set(cell.get().saturating_add(amount));
}

fn bump<K: Ord>(map: &RefCell<BTreeMap<K, u64>>, key: K) {
    let mut map = map.borrow_mut();
    let count = map.entry(key).or_default();
    *count = count.saturating_add(1);
}

impl ShardMetrics {
    pub fn request_done(&self, api: &'static str, seconds: f64) {
        self.requests
            .borrow_mut()
            .entry(api)
            .or_default()
            .record(seconds);
    }

    /// A produce stage that took `seconds` (per partition append or per request).
    pub fn produce_stage(&self, stage: ProduceStage, seconds: f64) {
        self.produce_stages
            .borrow_mut()
            .record(stage.index(), seconds);
    }

    /// A fetch stage that took `seconds`.
    pub fn fetch_stage(&self, stage: FetchStage, seconds: f64) {
        self.fetch_stages
            .borrow_mut()
            .record(stage.index(), seconds);
    }

    pub fn connection_opened(&self) {
        add(&self.connections_accepted, 1);
        add(&self.connections_open, 1);
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_open
            .set(self.connections_open.get().saturating_sub(1));
        bump(&self.connections_closed, reason);
    }

    /// A connection refused at a limit (also counted under its reject reason).
    pub fn connection_refused(&self, reason: RejectReason) {
        add(&self.connections_refused, 1);
        self.rejected(reason);
    }

    pub fn bytes_received(&self, bytes: usize) {
        add(&self.bytes_received, bytes as u64);
    }

    pub fn bytes_sent(&self, bytes: usize) {
        add(&self.bytes_sent, bytes as u64);
    }

    /// A partition's produce data handled on its owner: appended, or refused for `rejected`.
    pub fn produced(&self, bytes: usize, rejected: Option<RejectReason>) {
        match rejected {
            None => add(&self.produce_bytes, bytes as u64),
            Some(reason) => {
                add(&self.produce_rejected, 1);
                self.rejected(reason);
            }
        }
    }

    pub fn fetched(&self, bytes: usize) {
        add(&self.fetch_bytes, bytes as u64);
    }

    /// A request or connection refused, dropped or failed.
    pub fn rejected(&self, reason: RejectReason) {
        bump(&self.rejected, reason);
    }

    /// A request that waits for a limit instead of proceeding at once.
    pub fn delayed(&self, reason: DelayReason) {
        bump(&self.delayed, reason);
    }

    /// This shard finished its start-up `seconds` after the executor pool started.
    pub fn startup_finished(&self, seconds: f64) {
        self.startup_seconds.set(seconds);
    }

    pub fn snapshot(&self, shard: usize) -> MetricsSnapshot {
        MetricsSnapshot {
            shard,
            requests: self.requests.borrow().clone(),
            produce_stages: self.produce_stages.borrow().clone(),
            fetch_stages: self.fetch_stages.borrow().clone(),
            connections_open: self.connections_open.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_refused: self.connections_refused.get(),
            connections_closed: self.connections_closed.borrow().clone(),
            bytes_received: self.bytes_received.get(),
            bytes_sent: self.bytes_sent.get(),
            produce_bytes: self.produce_bytes.get(),
            produce_rejected: self.produce_rejected.get(),
            fetch_bytes: self.fetch_bytes.get(),
            rejected: self.rejected.borrow().clone(),
            delayed: self.delayed.borrow().clone(),
            startup_seconds: self.startup_seconds.get(),
            ..MetricsSnapshot::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_under_their_reason_and_the_old_families() {
        let metrics = ShardMetrics::default();
        metrics.connection_refused(RejectReason::ConnectionLimitPerIp);
        metrics.produced(10, Some(RejectReason::DiskFull));
        metrics.produced(10, None);
        metrics.delayed(DelayReason::MemoryBudget);
        metrics.delayed(DelayReason::MemoryBudget);
        let snapshot = metrics.snapshot(3);
        assert_eq!(snapshot.connections_refused, 1);
        assert_eq!(snapshot.produce_rejected, 1);
        assert_eq!(snapshot.produce_bytes, 10);
        assert_eq!(snapshot.rejected[&RejectReason::ConnectionLimitPerIp], 1);
        assert_eq!(snapshot.rejected[&RejectReason::DiskFull], 1);
        assert_eq!(snapshot.delayed[&DelayReason::MemoryBudget], 2);
    }
}
