//! Renders all shards' snapshots in the Prometheus text exposition format (version 0.0.4):
//! each family's `# HELP` and `# TYPE` exactly once, then its samples; label values escaped
//! (backslash, double quote, newline); histogram buckets cumulative with a final `+Inf`.

use super::{FetchStage, LatencyHistogram, MetricsSnapshot, ProduceStage};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Escapes a label value (Prometheus text format).
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `name="value",...` with every value escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out
}

fn shard_label(shard: usize) -> String {
    labels(&[("shard", &shard.to_string())])
}

/// The exposition being written; remembers which families it has announced.
struct Exposition {
    out: String,
    announced: BTreeSet<&'static str>,
}

impl Exposition {
    fn announce(&mut self, name: &'static str, kind: Kind, help: &str) {
        let first = self.announced.insert(name);
        assert!(first, "metric family {name} rendered twice");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// A counter or gauge family: `(labels, value)` per series.
    fn family<V: std::fmt::Display>(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (String, V)>,
    ) {
        self.announce(name, kind, help);
        for (labels, value) in samples {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A histogram family: `(labels, histogram)` per series.
    fn histograms<'a>(
        &mut self,
        name: &'static str,
        help: &str,
        series: impl IntoIterator<Item = (String, &'a LatencyHistogram)>,
    ) {
        self.announce(name, Kind::Histogram, help);
        for (labels, histogram) in series {
            let out = &mut self.out;
            for (bound, count) in histogram.cumulative() {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let count = histogram.count();
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum_seconds());
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }

    /// A family with one series per shard.
    fn per_shard(
        &mut self,
        snapshots: &[MetricsSnapshot],
        name: &'static str,
        kind: Kind,
        help: &str,
        value: impl Fn(&MetricsSnapshot) -> u64,
    ) {
        let samples = snapshots.iter().map(|s| (shard_label(s.shard), value(s)));
        self.family(name, kind, help, samples);
    }
}

/// Renders all shards' snapshots in the Prometheus text exposition format.
pub fn render_prometheus(snapshots: &[MetricsSnapshot]) -> String {
    let mut exposition = Exposition {
        out: String::new(),
        announced: BTreeSet::new(),
    };
    connections(&mut exposition, snapshots);
    requests(&mut exposition, snapshots);
    limits(&mut exposition, snapshots);
    log(&mut exposition, snapshots);
    mesh(&mut exposition, snapshots);
    partitions_and_groups(&mut exposition, snapshots);
    exposition.out
}

fn connections(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    e.family(
        "shardlog_startup_duration_seconds",
        Kind::Gauge,
        "Seconds from the start of the executor pool to the end of this shard's start-up.",
        snapshots
            .iter()
            .map(|s| (shard_label(s.shard), s.startup_seconds)),
    );
    e.per_shard(
        snapshots,
        "shardlog_connections_open",
        Kind::Gauge,
        "Open client connections.",
        |s| s.connections_open,
    );
    e.per_shard(
        snapshots,
        "shardlog_connections_accepted_total",
        Kind::Counter,
        "Accepted client connections.",
        |s| s.connections_accepted,
    );
    e.per_shard(
        snapshots,
        "shardlog_connections_refused_total",
        Kind::Counter,
        "Connections refused at the per-shard or per-IP limit.",
        |s| s.connections_refused,
    );
    let closed = snapshots.iter().flat_map(|s| {
        s.connections_closed.iter().map(move |(reason, n)| {
            let shard = s.shard.to_string();
            (labels(&[("shard", &shard), ("reason", reason)]), *n)
        })
    });
    e.family(
        "shardlog_connections_closed_total",
        Kind::Counter,
        "Closed connections by reason (malformed and oversized requests included).",
        closed,
    );
}

fn requests(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    e.per_shard(
        snapshots,
        "shardlog_bytes_received_total",
        Kind::Counter,
        "Request bytes read from clients.",
        |s| s.bytes_received,
    );
    e.per_shard(
        snapshots,
        "shardlog_bytes_sent_total",
        Kind::Counter,
        "Response bytes written to clients.",
        |s| s.bytes_sent,
    );
    e.per_shard(
        snapshots,
        "shardlog_produce_bytes_total",
        Kind::Counter,
        "Record batch bytes appended by Produce.",
        |s| s.produce_bytes,
    );
    e.per_shard(
        snapshots,
        "shardlog_produce_rejected_total",
        Kind::Counter,
        "Partition appends rejected with an error.",
        |s| s.produce_rejected,
    );
    e.per_shard(
        snapshots,
        "shardlog_fetch_bytes_total",
        Kind::Counter,
        "Record bytes returned by Fetch.",
        |s| s.fetch_bytes,
    );
    let series = snapshots.iter().flat_map(|s| {
        s.requests.iter().map(move |(api, histogram)| {
            let shard = s.shard.to_string();
            (labels(&[("shard", &shard), ("api", api)]), histogram)
        })
    });
    e.histograms(
        "shardlog_request_duration_seconds",
        "Request handling time by API.",
        series,
    );
    let produce = snapshots.iter().flat_map(|s| {
        ProduceStage::ALL.iter().filter_map(move |stage| {
            let shard = s.shard.to_string();
            let histogram = s.produce_stages.get(stage.index())?;
            Some((
                labels(&[("shard", &shard), ("stage", stage.as_str())]),
                histogram,
            ))
        })
    });
    e.histograms(
        "shardlog_produce_stage_duration_seconds",
        "Time of each stage of a produce (see docs/operations.md for the boundaries).",
        produce,
    );
    let fetch = snapshots.iter().flat_map(|s| {
        FetchStage::ALL.iter().filter_map(move |stage| {
            let shard = s.shard.to_string();
            let histogram = s.fetch_stages.get(stage.index())?;
            Some((
                labels(&[("shard", &shard), ("stage", stage.as_str())]),
                histogram,
            ))
        })
    });
    e.histograms(
        "shardlog_fetch_stage_duration_seconds",
        "Time of each stage of a fetch (see docs/operations.md for the boundaries).",
        fetch,
    );
}

fn limits(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    let rejected = snapshots.iter().flat_map(|s| {
        s.rejected.iter().map(move |(reason, n)| {
            let shard = s.shard.to_string();
            (
                labels(&[("shard", &shard), ("reason", reason.as_str())]),
                *n,
            )
        })
    });
    e.family(
        "shardlog_requests_rejected_total",
        Kind::Counter,
        "Requests and connections refused, dropped or failed, by reason.",
        rejected,
    );
    let delayed = snapshots.iter().flat_map(|s| {
        s.delayed.iter().map(move |(reason, n)| {
            let shard = s.shard.to_string();
            (
                labels(&[("shard", &shard), ("reason", reason.as_str())]),
                *n,
            )
        })
    });
    e.family(
        "shardlog_requests_delayed_total",
        Kind::Counter,
        "Requests that waited for a limit (back-pressure), by reason.",
        delayed,
    );
    let gauges = |budget: bool| {
        snapshots.iter().flat_map(move |s| {
            s.memory.iter().map(move |gauge| {
                let shard = s.shard.to_string();
                let value = if budget {
                    gauge.budget_bytes
                } else {
                    gauge.in_use_bytes
                };
                (
                    labels(&[("shard", &shard), ("pool", gauge.pool.as_str())]),
                    value,
                )
            })
        })
    };
    e.family(
        "shardlog_memory_budget_bytes",
        Kind::Gauge,
        "Size of each enforced memory budget.",
        gauges(true),
    );
    e.family(
        "shardlog_memory_in_use_bytes",
        Kind::Gauge,
        "Bytes of each memory budget in use.",
        gauges(false),
    );
}

fn log(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    e.per_shard(
        snapshots,
        "shardlog_log_syncs_total",
        Kind::Counter,
        "fdatasync calls on segment files (group commit).",
        |s| s.log_syncs,
    );
    let syncs = snapshots.iter().filter_map(|s| {
        s.log_sync_latency
            .as_ref()
            .map(|histogram| (shard_label(s.shard), histogram))
    });
    e.histograms(
        "shardlog_log_sync_duration_seconds",
        "Time of each fdatasync of a segment file (group commit and segment roll).",
        syncs,
    );
    e.per_shard(
        snapshots,
        "shardlog_log_bytes_written_total",
        Kind::Counter,
        "Bytes written to segment files with O_DIRECT.",
        |s| s.log_bytes_written,
    );
    e.per_shard(
        snapshots,
        "shardlog_log_pending_bytes",
        Kind::Gauge,
        "Appended bytes not yet written.",
        |s| s.log_pending_bytes,
    );
    e.per_shard(
        snapshots,
        "shardlog_batch_cache_budget_bytes",
        Kind::Gauge,
        "Batch cache budget.",
        |s| s.cache.0,
    );
    e.per_shard(
        snapshots,
        "shardlog_batch_cache_used_bytes",
        Kind::Gauge,
        "Batch cache bytes in use.",
        |s| s.cache.1,
    );
    e.per_shard(
        snapshots,
        "shardlog_batch_cache_hits_total",
        Kind::Counter,
        "Batches served from memory.",
        |s| s.cache.2,
    );
    e.per_shard(
        snapshots,
        "shardlog_batch_cache_misses_total",
        Kind::Counter,
        "Batches read from disk.",
        |s| s.cache.3,
    );
    e.per_shard(
        snapshots,
        "shardlog_batch_cache_evictions_total",
        Kind::Counter,
        "Batches evicted from the cache.",
        |s| s.cache.4,
    );
}

/// Queue depth from shard A to peer B is A's sent count minus B's received-from-A count,
/// from two snapshots taken at slightly different moments: approximate, floored at 0.
fn mesh(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    let received: BTreeMap<(usize, usize), u64> = snapshots
        .iter()
        .flat_map(|s| s.mesh.iter().map(move |p| ((s.shard, p.peer), p.received)))
        .collect();
    let pair = |s: &MetricsSnapshot, peer: usize| {
        labels(&[("shard", &s.shard.to_string()), ("peer", &peer.to_string())])
    };
    let received = &received;
    let depths = snapshots.iter().flat_map(|s| {
        s.mesh.iter().filter_map(move |p| {
            let taken = received.get(&(p.peer, s.shard))?;
            Some((pair(s, p.peer), p.sent.saturating_sub(*taken)))
        })
    });
    e.family(
        "shardlog_mesh_queue_depth",
        Kind::Gauge,
        "Messages this shard sent to a peer shard not yet received there (approximate).",
        depths,
    );
    e.per_shard(
        snapshots,
        "shardlog_mesh_queue_capacity",
        Kind::Gauge,
        "Capacity of each shard-to-shard channel, messages.",
        |s| s.mesh_capacity,
    );
    let sent = snapshots
        .iter()
        .flat_map(|s| s.mesh.iter().map(move |p| (pair(s, p.peer), p.sent)));
    e.family(
        "shardlog_mesh_messages_sent_total",
        Kind::Counter,
        "Messages sent to a peer shard over the channel mesh.",
        sent,
    );
}

fn partitions_and_groups(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    let mut high_watermarks = BTreeMap::new();
    let (mut starts, mut highs, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for snapshot in snapshots {
        let shard = snapshot.shard.to_string();
        for ((topic, partition), (start, high, size)) in &snapshot.partitions {
            let partition_label = partition.to_string();
            let labels = labels(&[
                ("topic", topic),
                ("partition", &partition_label),
                ("shard", &shard),
            ]);
            starts.push((labels.clone(), *start));
            highs.push((labels.clone(), *high));
            sizes.push((labels, *size as i64));
            high_watermarks.insert((topic.clone(), *partition), *high);
        }
    }
    e.family(
        "shardlog_partition_log_start_offset",
        Kind::Gauge,
        "First offset still in the log.",
        starts,
    );
    e.family(
        "shardlog_partition_high_watermark",
        Kind::Gauge,
        "Offset after the last readable record.",
        highs,
    );
    e.family(
        "shardlog_partition_size_bytes",
        Kind::Gauge,
        "Bytes of the partition's segments.",
        sizes,
    );
    integrity(e, snapshots);
    let mut lags = Vec::new();
    for snapshot in snapshots {
        for ((group, topic, partition), committed) in &snapshot.committed {
            if let Some(high) = high_watermarks.get(&(topic.clone(), *partition)) {
                let partition = partition.to_string();
                let labels = labels(&[
                    ("group", group),
                    ("topic", topic),
                    ("partition", &partition),
                ]);
                lags.push((labels, (high - committed).max(0)));
            }
        }
    }
    e.family(
        "shardlog_group_lag",
        Kind::Gauge,
        "High watermark minus committed offset.",
        lags,
    );
    let members = snapshots.iter().flat_map(|s| {
        s.groups.iter().map(|(group, (state, members))| {
            (labels(&[("group", group), ("state", state)]), *members)
        })
    });
    e.family(
        "shardlog_group_members",
        Kind::Gauge,
        "Members of each consumer group.",
        members,
    );
}

/// Corrupt batches, offline partitions, scrub progress.
fn integrity(e: &mut Exposition, snapshots: &[MetricsSnapshot]) {
    let (mut corrupt, mut offline) = (Vec::new(), Vec::new());
    for snapshot in snapshots {
        let shard = snapshot.shard.to_string();
        for ((topic, partition), count) in &snapshot.corrupt_batches {
            let partition = partition.to_string();
            let labels = labels(&[
                ("topic", topic),
                ("partition", &partition),
                ("shard", &shard),
            ]);
            corrupt.push((labels, *count));
        }
        for ((topic, partition), reason) in &snapshot.offline {
            let partition = partition.to_string();
            let labels = labels(&[
                ("topic", topic),
                ("partition", &partition),
                ("shard", &shard),
                ("reason", reason),
            ]);
            offline.push((labels, 1u64));
        }
    }
    e.family(
        "shardlog_partition_corrupt_batches",
        Kind::Gauge,
        "Batches of the partition known to be corrupt (found at open, by the scrub or by a read); never served.",
        corrupt,
    );
    e.family(
        "shardlog_partition_offline",
        Kind::Gauge,
        "1 for each partition of the catalog without an open log, by reason.",
        offline,
    );
    let offline_counts = snapshots
        .iter()
        .map(|s| (shard_label(s.shard), s.offline.len()));
    e.family(
        "shardlog_partitions_offline",
        Kind::Gauge,
        "Partitions of the catalog owned by the shard without an open log.",
        offline_counts,
    );
    e.per_shard(
        snapshots,
        "shardlog_scrub_bytes_total",
        Kind::Counter,
        "Bytes of finished segments the scrub has re-checked.",
        |s| s.scrubbed_bytes,
    );
}

#[cfg(test)]
mod tests {
    use super::super::{
        DelayReason, MemoryGauge, MemoryPool, MeshPeerCounts, RejectReason, ShardMetrics,
    };
    use super::*;
    use crate::model::histogram::SYNC_BUCKETS_SECONDS;

    fn sample_snapshots() -> Vec<MetricsSnapshot> {
        let metrics = ShardMetrics::default();
        metrics.request_done("Produce", 0.003);
        metrics.request_done("Produce", 0.2);
        metrics.rejected(RejectReason::RequestTooLarge);
        metrics.delayed(DelayReason::InflightLimit);
        metrics.startup_finished(0.25);
        let mut zero = metrics.snapshot(0);
        let mut sync = LatencyHistogram::new(SYNC_BUCKETS_SECONDS);
        sync.record(0.0007);
        sync.record(0.03);
        zero.log_sync_latency = Some(sync);
        zero.memory = vec![MemoryGauge {
            pool: MemoryPool::Request,
            budget_bytes: 100,
            in_use_bytes: 40,
        }];
        zero.mesh = vec![MeshPeerCounts {
            peer: 1,
            sent: 10,
            received: 7,
        }];
        zero.mesh_capacity = 1024;
        zero.partitions
            .insert(("we\"ird\\top\nic".to_string(), 0), (0, 5, 100));
        zero.corrupt_batches.insert(("t".to_string(), 1), 2);
        zero.offline.insert(("t".to_string(), 2), "damaged");
        zero.scrubbed_bytes = 4096;
        let mut one = ShardMetrics::default().snapshot(1);
        one.mesh = vec![MeshPeerCounts {
            peer: 0,
            sent: 7,
            received: 8,
        }];
        one.log_sync_latency = Some(LatencyHistogram::new(SYNC_BUCKETS_SECONDS));
        vec![zero, one]
    }

    #[test]
    fn every_family_has_help_and_type_exactly_once() {
        let text = render_prometheus(&sample_snapshots());
        let mut helps = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("#"), Some("HELP"), Some(name)) => *helps.entry(name).or_insert(0) += 1,
                (Some("#"), Some("TYPE"), Some(name)) => *types.entry(name).or_insert(0) += 1,
                _ => {}
            }
        }
        assert!(helps.values().all(|n| *n == 1), "{helps:?}");
        assert_eq!(
            helps.keys().collect::<Vec<_>>(),
            types.keys().collect::<Vec<_>>()
        );
        for family in [
            "shardlog_log_sync_duration_seconds",
            "shardlog_memory_budget_bytes",
            "shardlog_memory_in_use_bytes",
            "shardlog_requests_rejected_total",
            "shardlog_requests_delayed_total",
            "shardlog_mesh_queue_depth",
            "shardlog_mesh_queue_capacity",
            "shardlog_mesh_messages_sent_total",
            "shardlog_produce_rejected_total",
            "shardlog_connections_refused_total",
        ] {
            assert_eq!(helps.get(family), Some(&1), "{family} missing");
        }
        // Every sample belongs to the family announced before it.
        let mut current = "";
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("# TYPE ") {
                current = name.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(current), "{line} outside {current}");
            }
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let text = render_prometheus(&sample_snapshots());
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("shardlog_log_sync_duration_seconds_bucket{shard=\"0\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), SYNC_BUCKETS_SECONDS.len() + 1);
        assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(buckets.last(), Some(&2));
        assert!(
            text.contains("shardlog_log_sync_duration_seconds_bucket{shard=\"0\",le=\"+Inf\"} 2\n")
        );
        assert!(text.contains("shardlog_log_sync_duration_seconds_count{shard=\"0\"} 2\n"));
        assert!(text.contains("shardlog_log_sync_duration_seconds_count{shard=\"1\"} 0\n"));
        assert!(text.contains(
            "shardlog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.005\"} 1\n"
        ));
    }

    /// docs/operations.md lists every family and every reason label.
    #[test]
    fn operations_doc_lists_every_family_and_reason() {
        let doc = include_str!("../../../docs/operations.md");
        let text = render_prometheus(&sample_snapshots());
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(doc.contains(&format!("`{name}`")), "{name} not in docs");
            }
        }
        for reason in RejectReason::ALL.map(RejectReason::as_str) {
            assert!(doc.contains(&format!("`{reason}`")), "{reason} not in docs");
        }
        for reason in DelayReason::ALL.map(DelayReason::as_str) {
            assert!(doc.contains(&format!("`{reason}`")), "{reason} not in docs");
        }
        for pool in MemoryPool::ALL.map(MemoryPool::as_str) {
            assert!(doc.contains(&format!("`{pool}`")), "{pool} not in docs");
        }
        for reason in crate::shard::OfflineReason::ALL.map(crate::shard::OfflineReason::as_str) {
            assert!(doc.contains(&format!("`{reason}`")), "{reason} not in docs");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let text = render_prometheus(&sample_snapshots());
        assert!(text.contains("topic=\"we\\\"ird\\\\top\\nic\""), "{text}");
        assert!(!text.contains("top\nic"));
    }

    #[test]
    fn new_families_render_their_labels() {
        let text = render_prometheus(&sample_snapshots());
        for expected in [
            "shardlog_requests_rejected_total{shard=\"0\",reason=\"request_too_large\"} 1\n",
            "shardlog_requests_delayed_total{shard=\"0\",reason=\"inflight_limit\"} 1\n",
            "shardlog_memory_budget_bytes{shard=\"0\",pool=\"request\"} 100\n",
            "shardlog_memory_in_use_bytes{shard=\"0\",pool=\"request\"} 40\n",
            // 0 sent 10 to 1, 1 received 8 from 0.
            "shardlog_mesh_queue_depth{shard=\"0\",peer=\"1\"} 2\n",
            // 1 sent 7 to 0, 0 received 7 from 1.
            "shardlog_mesh_queue_depth{shard=\"1\",peer=\"0\"} 0\n",
            "shardlog_mesh_queue_capacity{shard=\"0\"} 1024\n",
            "shardlog_mesh_messages_sent_total{shard=\"0\",peer=\"1\"} 10\n",
            "shardlog_partition_corrupt_batches{topic=\"t\",partition=\"1\",shard=\"0\"} 2\n",
            "shardlog_partition_offline{topic=\"t\",partition=\"2\",shard=\"0\",reason=\"damaged\"} 1\n",
            "shardlog_partitions_offline{shard=\"1\"} 0\n",
            "shardlog_scrub_bytes_total{shard=\"0\"} 4096\n",
            "shardlog_startup_duration_seconds{shard=\"0\"} 0.25\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
