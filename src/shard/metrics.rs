//! Per-shard counters and latency histograms, updated with plain `Cell`s on the shard that
//! owns them and gathered as a `Send` snapshot for `/metrics`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// Upper bounds of the request-latency histogram buckets, seconds (Prometheus `le`).
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0,
];

#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    /// Cumulative counts per bucket of `LATENCY_BUCKETS_SECONDS`, then +Inf.
    pub buckets: [u64; LATENCY_BUCKETS_SECONDS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    fn record(&mut self, seconds: f64) {
        let index = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        for bucket in &mut self.buckets[index..] {
            *bucket += 1;
        }
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// Counters one shard keeps. Only its own executor touches them.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    requests: RefCell<BTreeMap<&'static str, LatencyHistogram>>,
    connections_open: Cell<u64>,
    connections_accepted: Cell<u64>,
    connections_refused: Cell<u64>,
    connections_closed: RefCell<BTreeMap<&'static str, u64>>,
    bytes_received: Cell<u64>,
    bytes_sent: Cell<u64>,
    produce_bytes: Cell<u64>,
    produce_rejected: Cell<u64>,
    fetch_bytes: Cell<u64>,
}

/// A copy of one shard's counters, sent to the shard that renders `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub shard: usize,
    pub requests: BTreeMap<&'static str, LatencyHistogram>,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub connections_closed: BTreeMap<&'static str, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub produce_bytes: u64,
    pub produce_rejected: u64,
    pub fetch_bytes: u64,
    /// (topic, partition) -> (log start offset, high watermark, size bytes).
    pub partitions: BTreeMap<(String, i32), (i64, i64, u64)>,
    /// (group, topic, partition) -> committed offset, for groups coordinated here.
    pub committed: BTreeMap<(String, String, i32), i64>,
    /// group -> (state, members).
    pub groups: BTreeMap<String, (&'static str, usize)>,
    /// Summed over this shard's logs: fdatasync calls, bytes written, unwritten bytes.
    pub log_syncs: u64,
    pub log_bytes_written: u64,
    pub log_pending_bytes: u64,
    /// The shard's batch cache: (budget, used, hits, misses, evictions).
    pub cache: (u64, u64, u64, u64, u64),
}

fn add(cell: &Cell<u64>, amount: u64) {
    cell.set(cell.get().saturating_add(amount));
}

impl ShardMetrics {
    pub fn request_done(&self, api: &'static str, seconds: f64) {
        self.requests
            .borrow_mut()
            .entry(api)
            .or_default()
            .record(seconds);
    }

    pub fn connection_opened(&self) {
        add(&self.connections_accepted, 1);
        add(&self.connections_open, 1);
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_open
            .set(self.connections_open.get().saturating_sub(1));
        *self
            .connections_closed
            .borrow_mut()
            .entry(reason)
            .or_default() += 1;
    }

    pub fn connection_refused(&self) {
        add(&self.connections_refused, 1);
    }

    pub fn bytes_received(&self, bytes: usize) {
        add(&self.bytes_received, bytes as u64);
    }

    pub fn bytes_sent(&self, bytes: usize) {
        add(&self.bytes_sent, bytes as u64);
    }

    pub fn produced(&self, bytes: usize, rejected: bool) {
        add(&self.produce_bytes, bytes as u64);
        if rejected {
            add(&self.produce_rejected, 1);
        }
    }

    pub fn fetched(&self, bytes: usize) {
        add(&self.fetch_bytes, bytes as u64);
    }

    pub fn snapshot(&self, shard: usize) -> MetricsSnapshot {
        MetricsSnapshot {
            shard,
            requests: self.requests.borrow().clone(),
            connections_open: self.connections_open.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_refused: self.connections_refused.get(),
            connections_closed: self.connections_closed.borrow().clone(),
            bytes_received: self.bytes_received.get(),
            bytes_sent: self.bytes_sent.get(),
            produce_bytes: self.produce_bytes.get(),
            produce_rejected: self.produce_rejected.get(),
            fetch_bytes: self.fetch_bytes.get(),
            ..MetricsSnapshot::default()
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders all shards' snapshots in the Prometheus text exposition format.
pub fn render_prometheus(snapshots: &[MetricsSnapshot]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let counter =
        |out: &mut String, name: &str, help: &str, kind: &str, values: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in values {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
    let per_shard = |f: &dyn Fn(&MetricsSnapshot) -> u64| -> Vec<(String, String)> {
        snapshots
            .iter()
            .map(|s| (format!("shard=\"{}\"", s.shard), f(s).to_string()))
            .collect()
    };
    counter(
        &mut out,
        "shardlog_connections_open",
        "Open client connections.",
        "gauge",
        per_shard(&|s| s.connections_open),
    );
    counter(
        &mut out,
        "shardlog_connections_accepted_total",
        "Accepted client connections.",
        "counter",
        per_shard(&|s| s.connections_accepted),
    );
    counter(
        &mut out,
        "shardlog_connections_refused_total",
        "Connections refused at the per-shard limit.",
        "counter",
        per_shard(&|s| s.connections_refused),
    );
    let closed = snapshots
        .iter()
        .flat_map(|s| {
            s.connections_closed.iter().map(move |(reason, n)| {
                (
                    format!("shard=\"{}\",reason=\"{reason}\"", s.shard),
                    n.to_string(),
                )
            })
        })
        .collect();
    counter(
        &mut out,
        "shardlog_connections_closed_total",
        "Closed connections by reason (malformed and oversized requests included).",
        "counter",
        closed,
    );
    counter(
        &mut out,
        "shardlog_bytes_received_total",
        "Request bytes read from clients.",
        "counter",
        per_shard(&|s| s.bytes_received),
    );
    counter(
        &mut out,
        "shardlog_bytes_sent_total",
        "Response bytes written to clients.",
        "counter",
        per_shard(&|s| s.bytes_sent),
    );
    counter(
        &mut out,
        "shardlog_produce_bytes_total",
        "Record batch bytes appended by Produce.",
        "counter",
        per_shard(&|s| s.produce_bytes),
    );
    counter(
        &mut out,
        "shardlog_produce_rejected_total",
        "Partition appends rejected with an error.",
        "counter",
        per_shard(&|s| s.produce_rejected),
    );
    counter(
        &mut out,
        "shardlog_fetch_bytes_total",
        "Record bytes returned by Fetch.",
        "counter",
        per_shard(&|s| s.fetch_bytes),
    );
    let _ = writeln!(
        out,
        "# HELP shardlog_request_duration_seconds Request handling time by API.\n# TYPE shardlog_request_duration_seconds histogram"
    );
    for snapshot in snapshots {
        for (api, histogram) in &snapshot.requests {
            let labels = format!("shard=\"{}\",api=\"{api}\"", snapshot.shard);
            for (bound, count) in LATENCY_BUCKETS_SECONDS.iter().zip(histogram.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "shardlog_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "shardlog_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "shardlog_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(
                out,
                "shardlog_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
    }
    counter(
        &mut out,
        "shardlog_log_syncs_total",
        "fdatasync calls on segment files (group commit).",
        "counter",
        per_shard(&|s| s.log_syncs),
    );
    counter(
        &mut out,
        "shardlog_log_bytes_written_total",
        "Bytes written to segment files with O_DIRECT.",
        "counter",
        per_shard(&|s| s.log_bytes_written),
    );
    counter(
        &mut out,
        "shardlog_log_pending_bytes",
        "Appended bytes not yet written.",
        "gauge",
        per_shard(&|s| s.log_pending_bytes),
    );
    counter(
        &mut out,
        "shardlog_batch_cache_budget_bytes",
        "Batch cache budget.",
        "gauge",
        per_shard(&|s| s.cache.0),
    );
    counter(
        &mut out,
        "shardlog_batch_cache_used_bytes",
        "Batch cache bytes in use.",
        "gauge",
        per_shard(&|s| s.cache.1),
    );
    counter(
        &mut out,
        "shardlog_batch_cache_hits_total",
        "Batches served from memory.",
        "counter",
        per_shard(&|s| s.cache.2),
    );
    counter(
        &mut out,
        "shardlog_batch_cache_misses_total",
        "Batches read from disk.",
        "counter",
        per_shard(&|s| s.cache.3),
    );
    counter(
        &mut out,
        "shardlog_batch_cache_evictions_total",
        "Batches evicted from the cache.",
        "counter",
        per_shard(&|s| s.cache.4),
    );
    let mut high_watermarks = BTreeMap::new();
    let (mut starts, mut highs, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for snapshot in snapshots {
        for ((topic, partition), (start, high, size)) in &snapshot.partitions {
            let labels = format!(
                "topic=\"{}\",partition=\"{partition}\",shard=\"{}\"",
                escape(topic),
                snapshot.shard
            );
            starts.push((labels.clone(), start.to_string()));
            highs.push((labels.clone(), high.to_string()));
            sizes.push((labels, size.to_string()));
            high_watermarks.insert((topic.clone(), *partition), *high);
        }
    }
    counter(
        &mut out,
        "shardlog_partition_log_start_offset",
        "First offset still in the log.",
        "gauge",
        starts,
    );
    counter(
        &mut out,
        "shardlog_partition_high_watermark",
        "Offset after the last readable record.",
        "gauge",
        highs,
    );
    counter(
        &mut out,
        "shardlog_partition_size_bytes",
        "Bytes of the partition's segments.",
        "gauge",
        sizes,
    );
    let mut lags = Vec::new();
    for snapshot in snapshots {
        for ((group, topic, partition), committed) in &snapshot.committed {
            if let Some(high) = high_watermarks.get(&(topic.clone(), *partition)) {
                let labels = format!(
                    "group=\"{}\",topic=\"{}\",partition=\"{partition}\"",
                    escape(group),
                    escape(topic)
                );
                lags.push((labels, (high - committed).max(0).to_string()));
            }
        }
    }
    counter(
        &mut out,
        "shardlog_group_lag",
        "High watermark minus committed offset.",
        "gauge",
        lags,
    );
    let members = snapshots
        .iter()
        .flat_map(|s| {
            s.groups.iter().map(|(group, (state, members))| {
                (
                    format!("group=\"{}\",state=\"{state}\"", escape(group)),
                    members.to_string(),
                )
            })
        })
        .collect();
    counter(
        &mut out,
        "shardlog_group_members",
        "Members of each consumer group.",
        "gauge",
        members,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(0.0002);
        histogram.record(0.5);
        histogram.record(60.0);
        assert_eq!(histogram.buckets[0], 0);
        assert_eq!(histogram.buckets[1], 1);
        assert_eq!(histogram.buckets[10], 2);
        assert_eq!(histogram.buckets[12], 3);
        assert_eq!(histogram.count, 3);
    }
}
