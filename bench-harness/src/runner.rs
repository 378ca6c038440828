//! `bench-harness run`: repeats of one workload, each with (optionally) a fresh broker, the
//! max-rate probe for "NN%" rates, the in-run baselines and the ratios; then the JSON result.
//!
//! Owns: the order of a run. Imports: `baseline`, `broker`, `load`, `result`, `stats`,
//! `workload`. Invariant: baselines are measured while no load runs and (for a started
//! broker) after the broker has stopped, so they do not compete with it for the CPU.

use crate::baseline;
use crate::broker::{BrokerOptions, StartedBroker};
use crate::load::{self, LoadOutcome, LoadPlan};
use crate::payload::random_seed;
use crate::result::{
    BenchResult, Environment, ProcessUsage, Ratios, RepeatResult, SCHEMA_VERSION, Summary,
};
use crate::stats::ratio;
use crate::workload::{Rate, Workload};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the broker is.
pub enum Target {
    /// An already running broker at this bootstrap address.
    External(String),
    /// Start `target/release/shardlog` for each repeat.
    Start(BrokerOptions),
}

pub struct RunOptions {
    pub workload_file: PathBuf,
    pub workload: Workload,
    pub target: Target,
    pub repeats: u32,
    /// Where the disk baselines write (same filesystem as the broker's data dir).
    pub baseline_dir: PathBuf,
    pub skip_baselines: bool,
    /// `--throttle-producer-us`: sleep after every send (to demonstrate a regression).
    pub throttle_us: u64,
    /// Echo every librdkafka log line (`--librdkafka-debug`).
    pub echo_client_logs: bool,
}

pub fn run(options: &RunOptions) -> anyhow::Result<BenchResult> {
    let workload = Arc::new(options.workload.clone());
    let mut result = BenchResult {
        schema_version: SCHEMA_VERSION,
        tool: format!("bench-harness {}", env!("CARGO_PKG_VERSION")),
        workload_file: options.workload_file.display().to_string(),
        workload: options.workload.clone(),
        environment: environment(options),
        repeats: Vec::new(),
        summary: Summary::default(),
    };
    for index in 0..options.repeats {
        let repeat = run_repeat(options, &workload, index)?;
        print_repeat(&workload.name, &repeat);
        result.repeats.push(repeat);
    }
    result.summarize();
    Ok(result)
}

fn run_repeat(
    options: &RunOptions,
    workload: &Arc<Workload>,
    index: u32,
) -> anyhow::Result<RepeatResult> {
    let run_tag = random_seed() as u32;
    let run_name = format!("{}-{run_tag:08x}-r{index}", workload.name);
    let label = format!("{} {}/{}", workload.name, index + 1, options.repeats);
    let mut broker = match &options.target {
        Target::Start(broker_options) => Some(StartedBroker::start(broker_options, &run_name)?),
        Target::External(_) => None,
    };
    let bootstrap = match (&options.target, &broker) {
        (_, Some(started)) => started.bootstrap.clone(),
        (Target::External(address), None) => address.clone(),
        (Target::Start(_), None) => unreachable!("a started broker exists"),
    };
    let plan = |rate: Option<f64>, warmup: f64, measure: f64, prefix: &str, label: &str| LoadPlan {
        workload: workload.clone(),
        bootstrap: bootstrap.clone(),
        topic_prefix: format!("bench-{run_name}-{prefix}"),
        target_rate: rate,
        warmup_seconds: warmup,
        measure_seconds: measure,
        run_tag,
        label: label.to_string(),
        throttle_us: options.throttle_us,
        echo_client_logs: options.echo_client_logs,
    };
    let d = &workload.duration;
    let (target_rate, probe) = match workload.producers.rate {
        Rate::Max => (None, None),
        Rate::Fixed(rate) => (Some(rate), None),
        Rate::FractionOfMax(fraction) => {
            let mut probe_workload = (**workload).clone();
            probe_workload.duration.backlog_bytes = 0;
            probe_workload.duration.stop_when_caught_up = false;
            let mut probe_plan = plan(
                None,
                d.warmup_seconds.min(2.0),
                d.probe_seconds,
                "probe",
                &format!("{label} probe"),
            );
            probe_plan.workload = Arc::new(probe_workload);
            let probe = load::execute(&probe_plan, broker.as_mut())?;
            let max = probe.publish.msgs_per_sec;
            anyhow::ensure!(max > 0.0, "max-rate probe published nothing");
            eprintln!(
                "{label}: probe max {max:.0} msg/s -> target {:.0} msg/s",
                max * fraction
            );
            (Some(max * fraction), Some(max))
        }
    };
    let outcome = load::execute(
        &plan(
            target_rate,
            d.warmup_seconds,
            d.measure_seconds,
            "load",
            &label,
        ),
        broker.as_mut(),
    )?;
    let broker_process = broker.as_ref().map(|b| usage(b, &outcome));
    drop(broker); // stops the broker and removes its data before the baselines run
    let baselines = if options.skip_baselines {
        Default::default()
    } else {
        let tcp_bytes = outcome.consume.bytes.max(outcome.publish.bytes);
        baseline::measure(&options.baseline_dir, outcome.publish.bytes, tcp_bytes)
    };
    let ratios = Ratios {
        publish_vs_disk: baselines
            .disk_write_mb_per_sec
            .and_then(|d| ratio(outcome.publish.mb_per_sec, d)),
        publish_vs_tcp: baselines
            .tcp_loopback_mb_per_sec
            .and_then(|t| ratio(outcome.publish.mb_per_sec, t)),
        consume_vs_tcp: (outcome.consume.messages > 0)
            .then_some(())
            .and(baselines.tcp_loopback_mb_per_sec)
            .and_then(|t| ratio(outcome.consume.mb_per_sec, t)),
        rate_attainment: target_rate.and_then(|t| ratio(outcome.publish.msgs_per_sec, t)),
    };
    Ok(RepeatResult {
        index,
        target_rate_msgs_per_sec: target_rate,
        probe_msgs_per_sec: probe,
        measured_seconds: outcome.measured_seconds,
        publish: outcome.publish,
        consume: outcome.consume,
        publish_latency_us: outcome.publish_latency,
        end_to_end_latency_us: outcome.end_to_end_latency,
        errors: outcome.errors,
        baselines,
        ratios,
        broker_process,
        cpu: outcome.cpu,
        timeseries: outcome.timeseries,
    })
}

fn usage(broker: &StartedBroker, outcome: &LoadOutcome) -> ProcessUsage {
    let cpu_seconds = outcome.broker_cpu_seconds.unwrap_or(0.0);
    ProcessUsage {
        cpu_seconds,
        cpu_us_per_mb: ratio(
            cpu_seconds * 1e6,
            (outcome.publish.bytes + outcome.consume.bytes) as f64 / crate::stats::MB,
        ),
        max_rss_bytes: broker.max_rss_bytes().unwrap_or(0),
    }
}

fn print_repeat(name: &str, r: &RepeatResult) {
    let show =
        |x: Option<f64>, digits: usize| x.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    eprintln!(
        "{name} repeat {}: publish {:.0} msg/s {:.1} MB/s (p99 {:.2} ms), consume {:.1} MB/s \
         (e2e p99 {:.2} ms), errors {}/{}; disk {} MB/s, tcp {} MB/s; \
         ratios pub/disk {} con/tcp {}",
        r.index + 1,
        r.publish.msgs_per_sec,
        r.publish.mb_per_sec,
        r.publish_latency_us.p99 / 1000.0,
        r.consume.mb_per_sec,
        r.end_to_end_latency_us.p99 / 1000.0,
        r.errors.publish,
        r.errors.consume,
        show(r.baselines.disk_write_mb_per_sec, 0),
        show(r.baselines.tcp_loopback_mb_per_sec, 0),
        show(r.ratios.publish_vs_disk, 3),
        show(r.ratios.consume_vs_tcp, 3),
    );
    for sample in &r.errors.samples {
        eprintln!("  error sample: {sample}");
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn environment(options: &RunOptions) -> Environment {
    let broker = match &options.target {
        Target::External(address) => format!("external {address}"),
        Target::Start(b) => format!(
            "shardlog started per repeat from {} (shards {}, config {})",
            b.binary.display(),
            b.shards.map_or("default".into(), |s| s.to_string()),
            b.config
                .as_deref()
                .map_or("none".into(), |c: &Path| c.display().to_string()),
        ),
    };
    Environment {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        broker,
        started_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        injected_delay_us: match &options.target {
            Target::Start(b) => b.delay_us,
            Target::External(_) => 0,
        },
        injected_throttle_us: options.throttle_us,
    }
}
