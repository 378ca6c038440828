//! The JSON result of `bench-harness run` (schema documented in docs/benchmarking.md).
//!
//! Owns: the result types, their (de)serialisation and the median summary over repeats.
//! Imports: `workload`, `stats`. Invariant: `summary` is recomputed from `repeats` by
//! `BenchResult::summarize`, never edited by hand.

use crate::stats::{LatencySummary, median, ratio};
use crate::workload::{BackgroundKind, IdleMode, Rate, Workload};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    pub schema_version: u32,
    pub tool: String,
    pub workload_file: String,
    pub workload: Workload,
    pub environment: Environment,
    pub repeats: Vec<RepeatResult>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Environment {
    pub hostname: String,
    pub cpus: usize,
    pub kernel: String,
    /// "started shardlog ..." or "external HOST:PORT".
    pub broker: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_at_unix: u64,
    /// Artificial delay injected by `--broker-delay-us` (0 in real runs), microseconds.
    #[serde(default)]
    pub injected_delay_us: u64,
    /// Per-send producer sleep injected by `--throttle-producer-us` (0 in real runs), µs.
    #[serde(default)]
    pub injected_throttle_us: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepeatResult {
    pub index: u32,
    /// The producers' total target rate in the measured phase; null at max rate.
    pub target_rate_msgs_per_sec: Option<f64>,
    /// Max-rate probe that resolved a "NN%" rate, messages per second.
    pub probe_msgs_per_sec: Option<f64>,
    pub measured_seconds: f64,
    pub publish: Throughput,
    pub consume: Throughput,
    /// send -> acknowledgement, microseconds.
    pub publish_latency_us: LatencySummary,
    /// send timestamp in the payload -> consumer receive, microseconds.
    pub end_to_end_latency_us: LatencySummary,
    pub errors: Errors,
    pub baselines: Baselines,
    pub ratios: Ratios,
    /// Only when the harness started the broker.
    pub broker_process: Option<ProcessUsage>,
    /// Who used the CPUs during the measured phase.
    #[serde(default)]
    pub cpu: CpuUse,
    pub timeseries: Vec<TimePoint>,
    /// Workloads with `[background]`: both sides of the repeat. The fields above are then
    /// the "with background" side's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceRepeat>,
}

/// One repeat of a `[background]` workload: the same measured load on a fresh broker alone
/// ("idle") and on another with the background activity (maintenance, hostile clients,
/// topic creation; the JSON key `maintenance` predates the other kinds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceRepeat {
    pub kind: BackgroundKind,
    pub idle_mode: IdleMode,
    /// Which side ran first ("idle" or "with_background"); alternates between repeats.
    pub first: String,
    pub idle: MaintenanceSide,
    pub with_background: MaintenanceSide,
    /// with_background / idle publish latency.
    pub ratios: LatencyRatios,
    /// with_background / idle end-to-end latency (absent in results of older versions).
    #[serde(default)]
    pub end_to_end_ratios: LatencyRatios,
}

/// The measured load of one side, and what the background activity did on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceSide {
    pub measured_seconds: f64,
    pub publish: Throughput,
    /// Without the curve.
    pub publish_latency_us: LatencySummary,
    pub end_to_end_latency_us: LatencySummary,
    pub errors_publish: u64,
    pub errors_consume: u64,
    pub broker_process: Option<ProcessUsage>,
    pub cpu: CpuUse,
    /// None on the idle side with idle = "none".
    pub background: Option<BackgroundReport>,
    /// Maintenance lines in the started broker's log (None for an external broker).
    pub broker_log: Option<MaintenanceLog>,
    /// The highest one-second publish p99 of the measured phase, microseconds: a stall of
    /// a second or two shows here even when the whole phase's p99 hides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_second_publish_p99_us: Option<f64>,
    /// The started broker's sampled RSS and its configured memory budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// `kind = "hostile"`: the backlog (both sides) and the hostile clients (with side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostile: Option<HostileReport>,
    /// `kind = "create-topics"`: the topics created during the measured phase (with side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_topics: Option<CreateTopicsReport>,
}

/// A started broker's memory during one load: VmRSS sampled about every 100 ms from the
/// start of the warm-up to the end of the measured phase, and the budgets it enforces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    pub samples: u64,
    /// The largest sample, bytes.
    pub rss_max_bytes: u64,
    /// The first sample (start of the warm-up, after topic setup) and the last, bytes.
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    /// Peak RSS over the broker's whole life (VmHWM, setup included), bytes.
    pub rss_peak_bytes: Option<u64>,
    /// Sum over shards and pools of `shardlog_memory_budget_bytes` from /metrics after the
    /// load (request + response memory, batch cache, write buffers), bytes; None when
    /// /metrics could not be read (e.g. an external broker).
    pub budget_bytes: Option<u64>,
    /// The same per pool, summed over shards.
    pub budget_pools: BTreeMap<String, u64>,
}

/// `kind = "hostile"` on one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostileReport {
    /// The topic the fetchers read, filled before the warm-up on both sides.
    pub backlog: BacklogReport,
    /// Raw connections held open, per kind (empty on the idle side).
    pub connections: Vec<HeldConnections>,
    /// The librdkafka consumers with huge fetch limits (None on the idle side or without
    /// such consumers).
    pub big_fetch: Option<BigFetchReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BacklogReport {
    pub topic: String,
    pub partitions: u32,
    /// Acknowledged messages and payload bytes.
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub errors: u64,
}

/// Hostile connections of one kind over the whole load (warm-up and measure).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldConnections {
    /// "declared_frame", "trickle", "fetch_pipeline", "idle" or "admin".
    pub kind: String,
    /// Connections the workload asks for.
    pub target: u32,
    /// Connections opened, reconnects included.
    pub opened: u64,
    /// Connections the broker closed (seen as end of stream or a reset). A connection whose
    /// unread answers fill the socket never sees the close, so it is not counted.
    pub closed_by_broker: u64,
    /// Admin connections among them that were answered 503 (connection limit) first.
    pub refused: u64,
    pub connect_errors: u64,
    /// Bytes sent over all of them.
    pub bytes_sent: u64,
    /// Still open when the load ended.
    pub open_at_end: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BigFetchReport {
    pub consumers: u32,
    /// Messages and bytes read over the whole load.
    pub messages: u64,
    pub bytes: u64,
    pub mb_per_sec: f64,
    /// Times a consumer read the whole backlog and started again from the beginning.
    pub passes: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

/// `kind = "create-topics"` on the "with" side: each topic created in the measured phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateTopicsReport {
    pub partitions: u32,
    /// Each CreateTopics call, request to answer, milliseconds.
    pub create_ms: Vec<f64>,
    /// From each CreateTopics answer until Metadata showed every partition led, ms.
    pub ready_ms: Vec<f64>,
    /// Each DeleteTopics call (repeat mode, in the measured phase), ms.
    pub delete_ms: Vec<f64>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackgroundReport {
    pub topic: String,
    pub topic_configs: BTreeMap<String, String>,
    /// Acknowledged background writes in the measured phase.
    pub writes: Throughput,
    /// Acknowledged background writes over the whole load (warm-up and measure).
    pub writes_total: u64,
    /// Background send -> ack p99 in the measured phase, microseconds.
    pub publish_p99_us: f64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Sums over the topic's partitions at the end of the load, from ListOffsets (earliest
    /// and latest): a log start offset above 0 shows retention deleted segments.
    pub log_start_offset: Option<i64>,
    pub high_watermark: Option<i64>,
}

/// Counted from shardlog's log: "compacted" and "retention deleted segments" lines (both
/// sides' brokers; the measured topics never compact or expire within a run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceLog {
    pub compaction_passes: u64,
    pub compaction_records_removed: u64,
    pub compaction_bytes_read: u64,
    pub compaction_bytes_written: u64,
    /// Retention runs that deleted something, and the segments they deleted.
    pub retention_runs: u64,
    pub retention_segments_deleted: u64,
}

/// with_background / idle, per percentile of publish latency (None when idle is 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyRatios {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p99_9: Option<f64>,
}

impl LatencyRatios {
    pub fn of(idle: &LatencySummary, with_background: &LatencySummary) -> LatencyRatios {
        let valid = |x: f64| (idle.count > 0 && with_background.count > 0).then_some(x);
        LatencyRatios {
            p50: valid(with_background.p50).and_then(|w| ratio(w, idle.p50)),
            p99: valid(with_background.p99).and_then(|w| ratio(w, idle.p99)),
            p99_9: valid(with_background.p99_9).and_then(|w| ratio(w, idle.p99_9)),
        }
    }

    /// Per-percentile medians of per-repeat ratios.
    pub fn median_of(all: &[&LatencyRatios]) -> LatencyRatios {
        LatencyRatios {
            p50: median_option(all.iter().map(|r| r.p50)),
            p99: median_option(all.iter().map(|r| r.p99)),
            p99_9: median_option(all.iter().map(|r| r.p99_9)),
        }
    }
}

/// Medians over the repeats of a `[background]` workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceSummary {
    pub kind: BackgroundKind,
    pub idle_mode: IdleMode,
    pub idle_publish_msgs_per_sec: f64,
    pub with_background_publish_msgs_per_sec: f64,
    /// Field-wise medians, no curve.
    pub idle_publish_latency_us: LatencySummary,
    pub with_background_publish_latency_us: LatencySummary,
    /// Medians of the per-repeat ratios (not ratios of the medians).
    pub ratios: LatencyRatios,
    /// Background writes per second in the measured phase, with background.
    pub background_msgs_per_sec: f64,
    /// Medians of the "with background" side's evidence that maintenance ran.
    pub log_start_offset: Option<f64>,
    pub compaction_records_removed: Option<f64>,
    pub retention_segments_deleted: Option<f64>,
    /// End-to-end latency medians and the medians of the per-repeat ratios.
    #[serde(default)]
    pub idle_end_to_end_latency_us: LatencySummary,
    #[serde(default)]
    pub with_background_end_to_end_latency_us: LatencySummary,
    #[serde(default)]
    pub end_to_end_ratios: LatencyRatios,
    /// Medians of each side's largest sampled broker RSS, and of the memory budget the
    /// "with" side's broker reported, bytes.
    #[serde(default)]
    pub idle_rss_max_bytes: Option<f64>,
    #[serde(default)]
    pub with_background_rss_max_bytes: Option<f64>,
    #[serde(default)]
    pub memory_budget_bytes: Option<f64>,
    /// Medians of each side's cores used by other processes (machine load).
    #[serde(default)]
    pub idle_other_processes_cores: Option<f64>,
    #[serde(default)]
    pub with_background_other_processes_cores: Option<f64>,
    /// `create-topics`: CreateTopics calls over all repeats, their median and largest
    /// duration, milliseconds.
    #[serde(default)]
    pub create_topics_calls: Option<u64>,
    #[serde(default)]
    pub create_topics_median_ms: Option<f64>,
    #[serde(default)]
    pub create_topics_max_ms: Option<f64>,
}

impl MaintenanceSummary {
    pub fn of(repeats: &[&MaintenanceRepeat]) -> Option<MaintenanceSummary> {
        let first = repeats.first()?;
        let idle = || repeats.iter().map(|r| &r.idle);
        let with = || repeats.iter().map(|r| &r.with_background);
        let logs = || with().filter_map(|s| s.broker_log.as_ref());
        let background = || with().filter_map(|s| s.background.as_ref());
        let latency = |sides: Vec<&MaintenanceSide>, end_to_end: bool| {
            LatencySummary::median_of(
                &sides
                    .iter()
                    .map(|s| match end_to_end {
                        true => &s.end_to_end_latency_us,
                        false => &s.publish_latency_us,
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let rss = |s: &MaintenanceSide| s.memory.as_ref().map(|m| m.rss_max_bytes as f64);
        let creates: Vec<f64> = with()
            .filter_map(|s| s.create_topics.as_ref())
            .flat_map(|c| c.create_ms.iter().copied())
            .collect();
        let has_creates = with().any(|s| s.create_topics.is_some());
        Some(MaintenanceSummary {
            kind: first.kind,
            idle_mode: first.idle_mode,
            idle_publish_msgs_per_sec: median(idle().map(|s| s.publish.msgs_per_sec)),
            with_background_publish_msgs_per_sec: median(with().map(|s| s.publish.msgs_per_sec)),
            idle_publish_latency_us: latency(idle().collect(), false),
            with_background_publish_latency_us: latency(with().collect(), false),
            ratios: LatencyRatios::median_of(
                &repeats.iter().map(|r| &r.ratios).collect::<Vec<_>>(),
            ),
            background_msgs_per_sec: median(background().map(|b| b.writes.msgs_per_sec)),
            log_start_offset: median_option(
                background().map(|b| b.log_start_offset.map(|o| o as f64)),
            ),
            compaction_records_removed: median_option(
                logs().map(|l| Some(l.compaction_records_removed as f64)),
            ),
            retention_segments_deleted: median_option(
                logs().map(|l| Some(l.retention_segments_deleted as f64)),
            ),
            idle_end_to_end_latency_us: latency(idle().collect(), true),
            with_background_end_to_end_latency_us: latency(with().collect(), true),
            end_to_end_ratios: LatencyRatios::median_of(
                &repeats
                    .iter()
                    .map(|r| &r.end_to_end_ratios)
                    .collect::<Vec<_>>(),
            ),
            idle_rss_max_bytes: median_option(idle().map(rss)),
            with_background_rss_max_bytes: median_option(with().map(rss)),
            memory_budget_bytes: median_option(
                with().map(|s| s.memory.as_ref()?.budget_bytes.map(|b| b as f64)),
            ),
            idle_other_processes_cores: median_option(idle().map(|s| s.cpu.other_processes_cores)),
            with_background_other_processes_cores: median_option(
                with().map(|s| s.cpu.other_processes_cores),
            ),
            create_topics_calls: has_creates.then_some(creates.len() as u64),
            create_topics_median_ms: (!creates.is_empty()).then(|| median(creates.clone())),
            create_topics_max_ms: creates.iter().copied().reduce(f64::max),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_sec: f64,
    /// 10^6 bytes per second of payload (keys and protocol overhead excluded).
    pub mb_per_sec: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Errors {
    /// Failed deliveries (delivery report with an error) in the whole run.
    pub publish: u64,
    /// Consumer errors (not counting end-of-partition events) in the whole run.
    pub consume: u64,
    /// The first few distinct error messages.
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// Directory the disk baselines wrote to (same filesystem as the broker's data).
    pub disk_dir: String,
    /// Sequential 1 MiB O_DIRECT writes of `disk_write_bytes`, then one fdatasync.
    pub disk_write_bytes: u64,
    pub disk_write_mb_per_sec: Option<f64>,
    /// 4 KiB O_DIRECT write + fdatasync round trips.
    pub fdatasync_p50_us: Option<f64>,
    pub fdatasync_p99_us: Option<f64>,
    /// One loopback TCP connection, writer thread to reader thread.
    pub tcp_bytes: u64,
    pub tcp_loopback_mb_per_sec: Option<f64>,
    /// Why a baseline is missing, if one is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Broker results as fractions of the in-run baselines (1.0 = as fast as the raw device).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// publish MB/s / O_DIRECT sequential write MB/s.
    pub publish_vs_disk: Option<f64>,
    /// publish MB/s / loopback TCP MB/s.
    pub publish_vs_tcp: Option<f64>,
    /// consume MB/s / loopback TCP MB/s.
    pub consume_vs_tcp: Option<f64>,
    /// Achieved publish rate / target rate (fixed-rate workloads only).
    pub rate_attainment: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// User + system CPU seconds the broker used in the measured phase.
    pub cpu_seconds: f64,
    /// Broker CPU microseconds per MB moved (published + consumed) in the measured phase.
    pub cpu_us_per_mb: Option<f64>,
    /// Peak resident set size over the broker's life, bytes.
    pub max_rss_bytes: u64,
}

/// Average cores busy during the measured phase (from /proc), by whom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// CPUs of the machine.
    pub cpus: usize,
    /// All CPUs, every process (not idle, not iowait).
    pub machine_busy_cores: Option<f64>,
    /// bench-harness itself (producers, consumers, librdkafka threads).
    pub harness_cores: Option<f64>,
    /// The started broker (None for an external broker).
    pub broker_cores: Option<f64>,
    /// Everything else: other users of a shared machine. None for an external broker.
    pub other_processes_cores: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimePoint {
    /// Seconds since the producers started.
    pub t: f64,
    pub phase: String,
    pub publish_msgs_per_sec: f64,
    pub publish_mb_per_sec: f64,
    pub consume_msgs_per_sec: f64,
    pub consume_mb_per_sec: f64,
    /// Publish p99 over this interval, microseconds (0 when nothing was acked).
    pub publish_p99_us: f64,
    /// The started broker's VmRSS at the sample, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rss_bytes: Option<u64>,
}

/// Medians over the repeats: what `compare` and the tables read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub repeats: u32,
    pub target_rate_msgs_per_sec: Option<f64>,
    pub publish: Throughput,
    pub consume: Throughput,
    pub publish_latency_us: LatencySummary,
    pub end_to_end_latency_us: LatencySummary,
    pub errors_publish: u64,
    pub errors_consume: u64,
    pub baselines: Baselines,
    pub ratios: Ratios,
    pub broker_cpu_us_per_mb: Option<f64>,
    /// Median cores used by other processes during the measured phases.
    #[serde(default)]
    pub other_processes_cores: Option<f64>,
    /// `[background]` workloads: idle vs with-background medians and ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceSummary>,
}

fn median_option(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| median(present))
}

fn median_throughput(items: &[&Throughput]) -> Throughput {
    Throughput {
        messages: median(items.iter().map(|t| t.messages as f64)).round() as u64,
        bytes: median(items.iter().map(|t| t.bytes as f64)).round() as u64,
        msgs_per_sec: median(items.iter().map(|t| t.msgs_per_sec)),
        mb_per_sec: median(items.iter().map(|t| t.mb_per_sec)),
    }
}

impl Summary {
    pub fn of(repeats: &[RepeatResult]) -> Summary {
        let r = repeats;
        let b: Vec<&Baselines> = r.iter().map(|x| &x.baselines).collect();
        let ratios = Ratios {
            publish_vs_disk: median_option(r.iter().map(|x| x.ratios.publish_vs_disk)),
            publish_vs_tcp: median_option(r.iter().map(|x| x.ratios.publish_vs_tcp)),
            consume_vs_tcp: median_option(r.iter().map(|x| x.ratios.consume_vs_tcp)),
            rate_attainment: median_option(r.iter().map(|x| x.ratios.rate_attainment)),
        };
        Summary {
            repeats: r.len() as u32,
            target_rate_msgs_per_sec: median_option(r.iter().map(|x| x.target_rate_msgs_per_sec)),
            publish: median_throughput(&r.iter().map(|x| &x.publish).collect::<Vec<_>>()),
            consume: median_throughput(&r.iter().map(|x| &x.consume).collect::<Vec<_>>()),
            publish_latency_us: LatencySummary::median_of(
                &r.iter().map(|x| &x.publish_latency_us).collect::<Vec<_>>(),
            ),
            end_to_end_latency_us: LatencySummary::median_of(
                &r.iter()
                    .map(|x| &x.end_to_end_latency_us)
                    .collect::<Vec<_>>(),
            ),
            errors_publish: r.iter().map(|x| x.errors.publish).sum(),
            errors_consume: r.iter().map(|x| x.errors.consume).sum(),
            baselines: Baselines {
                disk_dir: b.first().map(|x| x.disk_dir.clone()).unwrap_or_default(),
                disk_write_bytes: median(b.iter().map(|x| x.disk_write_bytes as f64)) as u64,
                disk_write_mb_per_sec: median_option(b.iter().map(|x| x.disk_write_mb_per_sec)),
                fdatasync_p50_us: median_option(b.iter().map(|x| x.fdatasync_p50_us)),
                fdatasync_p99_us: median_option(b.iter().map(|x| x.fdatasync_p99_us)),
                tcp_bytes: median(b.iter().map(|x| x.tcp_bytes as f64)) as u64,
                tcp_loopback_mb_per_sec: median_option(b.iter().map(|x| x.tcp_loopback_mb_per_sec)),
                notes: Vec::new(),
            },
            ratios,
            broker_cpu_us_per_mb: median_option(
                r.iter()
                    .map(|x| x.broker_process.as_ref().and_then(|p| p.cpu_us_per_mb)),
            ),
            other_processes_cores: median_option(r.iter().map(|x| x.cpu.other_processes_cores)),
            maintenance: MaintenanceSummary::of(
                &r.iter()
                    .filter_map(|x| x.maintenance.as_ref())
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

impl BenchResult {
    pub fn summarize(&mut self) {
        self.summary = Summary::of(&self.repeats);
    }

    pub fn is_max_rate(&self) -> bool {
        matches!(self.workload.producers.rate, Rate::Max)
    }

    pub fn load(path: &Path) -> anyhow::Result<BenchResult> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read result {}", path.display()))?;
        let result: BenchResult = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a bench-harness result", path.display()))?;
        anyhow::ensure!(
            result.schema_version == SCHEMA_VERSION,
            "{}: schema_version {} (this tool reads {SCHEMA_VERSION})",
            path.display(),
            result.schema_version
        );
        Ok(result)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeat(mb_per_sec: f64, p99: f64, disk: Option<f64>) -> RepeatResult {
        RepeatResult {
            publish: Throughput {
                mb_per_sec,
                ..Default::default()
            },
            publish_latency_us: LatencySummary {
                p99,
                ..Default::default()
            },
            ratios: Ratios {
                publish_vs_disk: disk.map(|d| mb_per_sec / d),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn latency(p50: f64, p99: f64, p99_9: f64) -> LatencySummary {
        LatencySummary {
            count: 1000,
            p50,
            p99,
            p99_9,
            ..Default::default()
        }
    }

    fn maintenance(idle: LatencySummary, with: LatencySummary) -> MaintenanceRepeat {
        MaintenanceRepeat {
            kind: BackgroundKind::Retention,
            idle_mode: IdleMode::None,
            first: "idle".into(),
            ratios: LatencyRatios::of(&idle, &with),
            end_to_end_ratios: LatencyRatios::default(),
            idle: MaintenanceSide {
                publish_latency_us: idle,
                ..Default::default()
            },
            with_background: MaintenanceSide {
                publish_latency_us: with,
                background: Some(BackgroundReport {
                    log_start_offset: Some(5000),
                    ..Default::default()
                }),
                broker_log: Some(MaintenanceLog {
                    retention_segments_deleted: 7,
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn latency_ratios_are_with_over_idle() {
        let r = LatencyRatios::of(
            &latency(1000.0, 4000.0, 8000.0),
            &latency(1500.0, 10000.0, 8000.0),
        );
        assert_eq!(r.p50, Some(1.5));
        assert_eq!(r.p99, Some(2.5));
        assert_eq!(r.p99_9, Some(1.0));
        // Nothing measured on a side: no ratio rather than 0 or infinity.
        let none = LatencyRatios::of(&LatencySummary::default(), &latency(1.0, 2.0, 3.0));
        assert_eq!(none, LatencyRatios::default());
        let zero = LatencyRatios::of(&latency(0.0, 1.0, 1.0), &latency(1.0, 1.0, 1.0));
        assert_eq!((zero.p50, zero.p99), (None, Some(1.0)));
    }

    #[test]
    fn maintenance_summary_takes_medians_of_per_repeat_ratios() {
        // Per-repeat p99 ratios 2.0, 1.0, 4.0: median 2.0. Per-repeat p50 ratios 3.0, 1.0,
        // 1.5: median 1.5, while the ratio of the median p50s would be 3000 / 1000 = 3.0.
        let repeats = [
            maintenance(
                latency(1000.0, 3000.0, 5000.0),
                latency(3000.0, 6000.0, 5000.0),
            ),
            maintenance(
                latency(500.0, 8000.0, 9000.0),
                latency(500.0, 8000.0, 9000.0),
            ),
            maintenance(
                latency(2000.0, 1000.0, 2000.0),
                latency(3000.0, 4000.0, 2000.0),
            ),
        ];
        let all: Vec<&MaintenanceRepeat> = repeats.iter().collect();
        let summary = MaintenanceSummary::of(&all).unwrap();
        assert_eq!(summary.ratios.p50, Some(1.5));
        assert_eq!(summary.ratios.p99, Some(2.0));
        assert_eq!(summary.ratios.p99_9, Some(1.0));
        assert_eq!(summary.idle_publish_latency_us.p99, 3000.0);
        assert_eq!(summary.with_background_publish_latency_us.p99, 6000.0);
        assert_eq!(summary.log_start_offset, Some(5000.0));
        assert_eq!(summary.retention_segments_deleted, Some(7.0));
        assert_eq!(summary.compaction_records_removed, Some(0.0));
        assert!(MaintenanceSummary::of(&[]).is_none());
        // Through the repeat summary and JSON.
        let results: Vec<RepeatResult> = repeats
            .iter()
            .map(|m| RepeatResult {
                maintenance: Some(m.clone()),
                ..Default::default()
            })
            .collect();
        let summary = Summary::of(&results);
        let json = serde_json::to_string(&summary).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back.maintenance.unwrap().ratios.p99, Some(2.0));
        // A plain result has no maintenance keys at all.
        let plain = serde_json::to_string(&Summary::of(&[RepeatResult::default()])).unwrap();
        assert!(!plain.contains("maintenance"), "{plain}");
    }

    #[test]
    fn summary_takes_medians_and_skips_missing_ratios() {
        let repeats = [
            repeat(100.0, 900.0, Some(1000.0)),
            repeat(300.0, 100.0, None),
            repeat(200.0, 500.0, Some(1000.0)),
        ];
        let summary = Summary::of(&repeats);
        assert_eq!(summary.repeats, 3);
        assert_eq!(summary.publish.mb_per_sec, 200.0);
        assert_eq!(summary.publish_latency_us.p99, 500.0);
        // Median of the two present ratios 0.1 and 0.2.
        assert!((summary.ratios.publish_vs_disk.unwrap() - 0.15).abs() < 1e-12);
        assert_eq!(summary.ratios.consume_vs_tcp, None);
    }

    fn side(rss_max: u64, other_cores: f64, create_ms: &[f64]) -> MaintenanceSide {
        MaintenanceSide {
            publish_latency_us: latency(1000.0, 2000.0, 3000.0),
            end_to_end_latency_us: latency(2000.0, 4000.0, 6000.0),
            cpu: CpuUse {
                other_processes_cores: Some(other_cores),
                ..Default::default()
            },
            memory: Some(MemoryReport {
                samples: 10,
                rss_max_bytes: rss_max,
                budget_bytes: Some(1 << 30),
                ..Default::default()
            }),
            create_topics: (!create_ms.is_empty()).then(|| CreateTopicsReport {
                partitions: 1000,
                create_ms: create_ms.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn isolation_summary_has_memory_end_to_end_and_create_topics_figures() {
        let repeat =
            |idle: MaintenanceSide, with: MaintenanceSide, e2e_p99: f64| MaintenanceRepeat {
                kind: BackgroundKind::CreateTopics,
                idle_mode: IdleMode::None,
                first: "idle".into(),
                ratios: LatencyRatios::of(&idle.publish_latency_us, &with.publish_latency_us),
                end_to_end_ratios: LatencyRatios {
                    p99: Some(e2e_p99),
                    ..Default::default()
                },
                idle,
                with_background: with,
            };
        let repeats = [
            repeat(side(100, 0.1, &[]), side(300, 0.5, &[2000.0, 9000.0]), 3.0),
            repeat(side(200, 0.3, &[]), side(500, 0.7, &[1000.0]), 1.0),
        ];
        let all: Vec<&MaintenanceRepeat> = repeats.iter().collect();
        let summary = MaintenanceSummary::of(&all).unwrap();
        assert_eq!(summary.kind, BackgroundKind::CreateTopics);
        assert_eq!(summary.end_to_end_ratios.p99, Some(2.0));
        assert_eq!(summary.with_background_end_to_end_latency_us.p99, 4000.0);
        assert_eq!(summary.idle_rss_max_bytes, Some(150.0));
        assert_eq!(summary.with_background_rss_max_bytes, Some(400.0));
        assert_eq!(summary.memory_budget_bytes, Some((1u64 << 30) as f64));
        assert_eq!(summary.idle_other_processes_cores, Some(0.2));
        assert_eq!(summary.with_background_other_processes_cores, Some(0.6));
        // Every call of every repeat: 1000, 2000, 9000 ms.
        assert_eq!(summary.create_topics_calls, Some(3));
        assert_eq!(summary.create_topics_median_ms, Some(2000.0));
        assert_eq!(summary.create_topics_max_ms, Some(9000.0));
        // Without create-topics reports the figures are absent, not zero.
        let plain = [repeat(side(1, 0.0, &[]), side(1, 0.0, &[]), 1.0)];
        let summary = MaintenanceSummary::of(&plain.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(summary.create_topics_calls, None);
        assert_eq!(summary.create_topics_max_ms, None);
    }

    #[test]
    fn results_written_before_the_new_kinds_still_load() {
        let repeat = maintenance(latency(1.0, 2.0, 3.0), latency(2.0, 4.0, 6.0));
        let mut json = serde_json::to_value(&repeat).unwrap();
        let object = json.as_object_mut().unwrap();
        assert_eq!(object["kind"], "retention");
        object.remove("end_to_end_ratios");
        // The new per-side keys are absent when unset.
        assert!(
            !object["with_background"]
                .as_object()
                .unwrap()
                .contains_key("memory")
        );
        let back: MaintenanceRepeat = serde_json::from_value(json).unwrap();
        assert_eq!(back.end_to_end_ratios, LatencyRatios::default());
        assert_eq!(back.ratios, repeat.ratios);
        let kind: BackgroundKind = serde_json::from_str("\"create-topics\"").unwrap();
        assert_eq!(kind, BackgroundKind::CreateTopics);
    }
}
