//! Shared run state between the coordinating thread and the load threads: the phase, the
//! producers' target rate, and what each load thread has counted so far.
//!
//! Owns: `RunControl`, `LoadStats` and `ClientEvents`. Imports: `stats`.
//! Invariant: only the coordinating thread writes the phase and the rate; load threads only
//! read them (relaxed atomics: a few microseconds of lag at a phase change is harmless).

use crate::stats::LatencyHistogram;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

const ERROR_SAMPLES_MAX: usize = 10;
/// librdkafka log lines echoed to stderr before going quiet (they still count).
const ECHOED_LOG_LINES_MAX: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Setup = 0,
    Backlog = 1,
    Warmup = 2,
    Measure = 3,
    Done = 4,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Setup,
            1 => Phase::Backlog,
            2 => Phase::Warmup,
            3 => Phase::Measure,
            _ => Phase::Done,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Backlog => "backlog",
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
            Phase::Done => "done",
        }
    }
}

pub struct RunControl {
    phase: AtomicU8,
    /// Total producer rate in milli-messages per second; 0 = max rate.
    rate_milli: AtomicU64,
    /// Bumped whenever the rate changes, so producers restart their pacing clock.
    rate_generation: AtomicU64,
    stop_consumers: AtomicBool,
    producer_count: u32,
    /// Artificial per-message delay for `--throttle-producer-us`, microseconds.
    pub throttle_us: u64,
}

impl RunControl {
    pub fn new(producer_count: u32, throttle_us: u64) -> RunControl {
        RunControl {
            phase: AtomicU8::new(Phase::Setup as u8),
            rate_milli: AtomicU64::new(0),
            rate_generation: AtomicU64::new(0),
            stop_consumers: AtomicBool::new(false),
            producer_count: producer_count.max(1),
            throttle_us,
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn is_measuring(&self) -> bool {
        self.phase() == Phase::Measure
    }

    /// Sets the total rate over all producers; None = max.
    pub fn set_total_rate(&self, rate: Option<f64>) {
        let milli = rate.map_or(0, |r| ((r * 1000.0).round() as u64).max(1));
        self.rate_milli.store(milli, Ordering::Relaxed);
        self.rate_generation.fetch_add(1, Ordering::Relaxed);
    }

    /// (generation, this producer's share of the rate in msgs/s or None for max).
    pub fn producer_rate(&self) -> (u64, Option<f64>) {
        let generation = self.rate_generation.load(Ordering::Relaxed);
        let milli = self.rate_milli.load(Ordering::Relaxed);
        let rate = (milli > 0).then(|| milli as f64 / 1000.0 / f64::from(self.producer_count));
        (generation, rate)
    }

    pub fn stop_consumers(&self) {
        self.stop_consumers.store(true, Ordering::Relaxed);
    }

    pub fn consumers_stopped(&self) -> bool {
        self.stop_consumers.load(Ordering::Relaxed)
    }
}

/// What one producer or consumer thread has counted. Counters cover the whole run; the
/// coordinating thread takes differences between snapshots.
#[derive(Default)]
pub struct LoadStats {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Set once a consumer has its partitions (assigned or joined).
    pub ready: AtomicBool,
    histograms: Mutex<Histograms>,
}

#[derive(Default)]
struct Histograms {
    /// Measured phase only.
    measured: LatencyHistogram,
    /// Since the coordinating thread last took it (for the per-second time series).
    interval: LatencyHistogram,
}

impl LoadStats {
    pub fn record(&self, bytes: u64, latency_ns: u64, measuring: bool) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        histograms.interval.record_ns(latency_ns);
        if measuring {
            histograms.measured.record_ns(latency_ns);
        }
    }

    pub fn count(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Adds the interval histogram to `into` and clears it.
    pub fn take_interval(&self, into: &mut LatencyHistogram) {
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        into.merge(&histograms.interval);
        histograms.interval.reset();
    }

    pub fn merge_measured(&self, into: &mut LatencyHistogram) {
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        into.merge(&histograms.measured);
    }
}

/// Errors and librdkafka warnings from every client in the run.
#[derive(Default)]
pub struct ClientEvents {
    samples: Mutex<Vec<String>>,
    log_lines: AtomicU64,
    /// Echo every librdkafka log line, debug included (`--librdkafka-debug`).
    echo_all: bool,
}

impl ClientEvents {
    pub fn new(echo_all: bool) -> ClientEvents {
        ClientEvents {
            echo_all,
            ..Default::default()
        }
    }

    /// The librdkafka log level to configure: warnings, or everything when echoing.
    pub fn log_level(&self) -> rdkafka::config::RDKafkaLogLevel {
        use rdkafka::config::RDKafkaLogLevel;
        if self.echo_all {
            RDKafkaLogLevel::Debug
        } else {
            RDKafkaLogLevel::Warning
        }
    }

    /// A librdkafka log line: warnings and worse are sampled; all are echoed when asked.
    pub fn log(&self, level: rdkafka::config::RDKafkaLogLevel, client: &str, line: String) {
        if is_warning_or_worse(level) {
            self.log_line(client, line);
        } else if self.echo_all {
            let millis = crate::payload::now_ns() as f64 / 1e6;
            eprintln!("[{millis:.3} ms librdkafka {client} {level:?}] {line}");
        }
    }

    pub fn sample(&self, message: String) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < ERROR_SAMPLES_MAX && !samples.contains(&message) {
            samples.push(message);
        }
    }

    /// A librdkafka warning or error log line: echoed (up to a limit) and sampled.
    pub fn log_line(&self, client: &str, line: String) {
        let seen = self.log_lines.fetch_add(1, Ordering::Relaxed);
        if seen < ECHOED_LOG_LINES_MAX || self.echo_all {
            eprintln!("\n[librdkafka {client}] {line}");
        }
        self.sample(format!("{client}: {line}"));
    }

    pub fn samples(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// librdkafka log levels worth surfacing: warnings and worse.
pub fn is_warning_or_worse(level: rdkafka::config::RDKafkaLogLevel) -> bool {
    use rdkafka::config::RDKafkaLogLevel as L;
    matches!(
        level,
        L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_split_over_producers_and_bumps_generation() {
        let control = RunControl::new(4, 0);
        assert_eq!(control.producer_rate(), (0, None));
        control.set_total_rate(Some(1000.0));
        assert_eq!(control.producer_rate(), (1, Some(250.0)));
        control.set_total_rate(None);
        assert_eq!(control.producer_rate(), (2, None));
    }

    #[test]
    fn only_measured_latencies_reach_the_measured_histogram() {
        let stats = LoadStats::default();
        stats.record(100, 5_000, false);
        stats.record(100, 7_000, true);
        assert_eq!(stats.count(), (2, 200));
        let mut measured = LatencyHistogram::new();
        stats.merge_measured(&mut measured);
        assert_eq!(measured.count(), 1);
        let mut interval = LatencyHistogram::new();
        stats.take_interval(&mut interval);
        assert_eq!(interval.count(), 2);
        let mut again = LatencyHistogram::new();
        stats.take_interval(&mut again);
        assert_eq!(again.count(), 0, "taking the interval clears it");
    }

    #[test]
    fn error_samples_are_distinct_and_bounded() {
        let events = ClientEvents::default();
        for i in 0..30 {
            events.sample(format!("e{}", i % 15));
        }
        events.sample("e0".into());
        assert_eq!(events.samples().len(), ERROR_SAMPLES_MAX);
    }
}
