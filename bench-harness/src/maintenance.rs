//! Maintenance under load (`[background]`, issue 7): the background writer that keeps the
//! broker's log compaction or retention busy during a run, and the evidence that it did.
//!
//! Owns: the background writer thread (a `producer` with its own control, stats and client
//! events, so its numbers never mix with the measured load's) and the parsing of shardlog's
//! maintenance log lines. Imports: `control`, `producer`, `result`, `workload`.
//! Runs on the coordinating thread; the writer on a thread of its own. Invariant: a started
//! writer is joined by `finish` (or on drop), so it never outlives its load.

use crate::control::{ClientEvents, LoadStats, Phase, RunControl};
use crate::producer::{self, ProducerSpec};
use crate::result::{BackgroundReport, MaintenanceLog, Throughput};
use crate::stats::{LatencyHistogram, MB, per_second};
use crate::workload::Workload;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// Producer index written into background payload headers (never a measured producer's).
const BACKGROUND_PRODUCER_INDEX: u32 = u32::MAX;

/// Which topic the background writer writes to, with which configs.
#[derive(Debug, Clone)]
pub struct WriterPlan {
    pub topic: String,
    pub topic_configs: BTreeMap<String, String>,
    /// The writer as a workload of its own (`Maintenance::writer_workload`).
    pub writer: Arc<Workload>,
}

pub struct BackgroundWriter {
    plan: WriterPlan,
    control: Arc<RunControl>,
    stats: Arc<LoadStats>,
    events: Arc<ClientEvents>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// (messages, bytes) when the measured phase started and ended.
    measure_start: (u64, u64),
    measure_end: (u64, u64),
    measure_seconds: f64,
}

impl BackgroundWriter {
    /// Starts writing at the plan's rate, in the warm-up phase (not measured).
    pub fn start(
        plan: &WriterPlan,
        bootstrap: &str,
        run_tag: u32,
    ) -> anyhow::Result<BackgroundWriter> {
        let control = Arc::new(RunControl::new(1, 0));
        let rate = match plan.writer.producers.rate {
            crate::workload::Rate::Fixed(rate) => Some(rate),
            _ => None,
        };
        control.set_total_rate(rate);
        control.set_phase(Phase::Warmup);
        let stats = Arc::new(LoadStats::default());
        let events = Arc::new(ClientEvents::new(false));
        let spec = ProducerSpec {
            index: BACKGROUND_PRODUCER_INDEX,
            topic: plan.topic.clone(),
            bootstrap: bootstrap.to_string(),
            workload: plan.writer.clone(),
            run_tag: run_tag ^ 0x5a5a_5a5a,
            seed: u64::from(run_tag) << 1 | 1,
        };
        let (c, s, e) = (control.clone(), stats.clone(), events.clone());
        let handle = std::thread::Builder::new()
            .name("background-writer".into())
            .spawn(move || producer::run(spec, c, s, e))?;
        Ok(BackgroundWriter {
            plan: plan.clone(),
            control,
            stats,
            events,
            handle: Some(handle),
            measure_start: (0, 0),
            measure_end: (0, 0),
            measure_seconds: 0.0,
        })
    }

    /// Follows the measured load's phase: counts and latency cover its measured phase.
    pub fn set_phase(&mut self, phase: Phase) {
        match phase {
            Phase::Measure => self.measure_start = self.stats.count(),
            Phase::Done if self.control.phase() == Phase::Measure => {
                self.measure_end = self.stats.count()
            }
            _ => {}
        }
        self.control.set_phase(phase);
    }

    pub fn set_measured_seconds(&mut self, seconds: f64) {
        self.measure_seconds = seconds;
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Stops the writer (flushing what it sent) and reports what it did.
    pub fn finish(mut self) -> anyhow::Result<BackgroundReport> {
        self.set_phase(Phase::Done);
        if let Some(handle) = self.handle.take() {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => anyhow::bail!("background writer panicked"),
            }
        }
        let (messages, bytes) = (
            self.measure_end.0.saturating_sub(self.measure_start.0),
            self.measure_end.1.saturating_sub(self.measure_start.1),
        );
        let mut latency = LatencyHistogram::new();
        self.stats.merge_measured(&mut latency);
        Ok(BackgroundReport {
            topic: self.plan.topic.clone(),
            topic_configs: self.plan.topic_configs.clone(),
            writes: Throughput {
                messages,
                bytes,
                msgs_per_sec: per_second(messages as f64, self.measure_seconds),
                mb_per_sec: per_second(bytes as f64, self.measure_seconds) / MB,
            },
            writes_total: self.stats.count().0,
            publish_p99_us: latency.summary().p99,
            errors: self.stats.errors.load(Ordering::Relaxed),
            error_samples: self.events.samples(),
            log_start_offset: None,
            high_watermark: None,
        })
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.control.set_phase(Phase::Done);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Counts shardlog's maintenance log lines (tracing's text format, ANSI colours or not).
pub fn parse_broker_log(text: &str) -> MaintenanceLog {
    let mut log = MaintenanceLog::default();
    for raw in text.lines() {
        let line = strip_ansi(raw);
        if line.contains(" compacted ") && line.contains("records_removed=") {
            log.compaction_passes += 1;
            log.compaction_records_removed += field(&line, "records_removed");
            log.compaction_bytes_read += field(&line, "bytes_read");
            log.compaction_bytes_written += field(&line, "bytes_written");
        } else if line.contains("retention deleted segments") {
            log.retention_runs += 1;
            log.retention_segments_deleted += field(&line, "deleted");
        }
    }
    log
}

/// The numeric value of ` name=N` in a log line, 0 when absent.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .filter_map(|token| token.strip_prefix(name)?.strip_prefix('='))
        .find_map(|value| value.parse().ok())
        .unwrap_or(0)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_lines_are_counted_with_and_without_colours() {
        let text = "\
2025-01-01T00:00:00Z  INFO shardlog::storage::compaction: compacted dir=/d/t-0 rewritten=3 \
written=1 records_removed=900 tombstones_removed=0 bytes_read=1000000 bytes_written=100000
\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mshardlog::shard::pool\u{1b}[0m\u{1b}[2m:\
\u{1b}[0m retention deleted segments \u{1b}[3mshard\u{1b}[0m\u{1b}[2m=\u{1b}[0m1 \
\u{1b}[3mpartition\u{1b}[0m\u{1b}[2m=\u{1b}[0mt-1 \u{1b}[3mdeleted\u{1b}[0m\u{1b}[2m=\u{1b}[0m2
2025-01-01T00:00:01Z  INFO shardlog::shard::pool: retention deleted segments shard=0 \
partition=t-0 deleted=5
2025-01-01T00:00:02Z  INFO shardlog::storage::compaction: compacted dir=/d/t-1 rewritten=2 \
written=1 records_removed=100 tombstones_removed=0 bytes_read=10 bytes_written=5
2025-01-01T00:00:03Z  INFO shardlog: topic deleted topic=compacted-things
";
        let log = parse_broker_log(text);
        assert_eq!(log.compaction_passes, 2);
        assert_eq!(log.compaction_records_removed, 1000);
        assert_eq!(log.compaction_bytes_read, 1_000_010);
        assert_eq!(log.compaction_bytes_written, 100_005);
        assert_eq!(log.retention_runs, 2);
        assert_eq!(log.retention_segments_deleted, 7);
        assert_eq!(parse_broker_log(""), MaintenanceLog::default());
    }
}
