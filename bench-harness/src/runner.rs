//! `bench-harness run`: repeats of one workload, each with (optionally) a fresh broker, the
//! max-rate probe for "NN%" rates, the in-run baselines and the ratios; then the JSON result.
//! A `[background]` workload runs each repeat twice, on two fresh brokers: the measured load
//! alone ("idle") and with the background activity (maintenance, hostile clients, topic
//! creation; order alternating between repeats), then the baselines once.
//!
//! Owns: the order of a run and each side's background plan. Imports: `activity`,
//! `baseline`, `broker`, `hostile`, `load`, `maintenance`, `result`, `stats`,
//! `topic_churn`, `workload`. Invariant: baselines are measured while no load runs and (for a started
//! broker) after the broker has stopped, so they do not compete with it for the CPU.

use crate::activity::BackgroundPlan;
use crate::baseline;
use crate::broker::{BrokerOptions, StartedBroker};
use crate::console;
use crate::control::Phase;
use crate::hostile::HostilePlan;
use crate::load::{self, LoadOutcome, LoadPlan};
use crate::maintenance::{WriterPlan, parse_broker_log};
use crate::payload::random_seed;
use crate::result::{
    BenchResult, Environment, LatencyRatios, MaintenanceLog, MaintenanceRepeat, MaintenanceSide,
    ProcessUsage, Ratios, RepeatResult, SCHEMA_VERSION, Summary,
};
use crate::stats::ratio;
use crate::topic_churn::ChurnPlan;
use crate::workload::{Background, IdleMode, Rate, Workload};
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
    if let (Some(background), Target::External(_)) = (&workload.background, &options.target)
        && !background.broker_config().is_empty()
    {
        eprintln!(
            "warning: background.broker_config is not applied to an external broker: set those \
             settings on it yourself, or maintenance may not run within the measured phase"
        );
    }
    for index in 0..options.repeats {
        let repeat = run_repeat(options, &workload, index)?;
        console::print_repeat(&workload.name, &repeat);
        result.repeats.push(repeat);
    }
    result.summarize();
    Ok(result)
}

/// Which broker a side of a repeat runs on and what, besides the measured load, it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A workload without `[background]`.
    Plain,
    /// `[background]`: maintenance idle (with the background writes to a plain topic when
    /// `idle = "writes"`).
    Idle,
    /// `[background]`: the background writer keeps maintenance busy.
    WithBackground,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Side::Plain => "",
            Side::Idle => "-idle",
            Side::WithBackground => "-bg",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Plain => "",
            Side::Idle => " idle",
            Side::WithBackground => " with background",
        }
    }
}

/// One load on one (fresh, when started) broker, and what the broker did meanwhile.
struct SideOutcome {
    outcome: LoadOutcome,
    target_rate: Option<f64>,
    probe: Option<f64>,
    broker_process: Option<ProcessUsage>,
    broker_log: Option<MaintenanceLog>,
}

fn run_repeat(
    options: &RunOptions,
    workload: &Arc<Workload>,
    index: u32,
) -> anyhow::Result<RepeatResult> {
    let Some(background) = &workload.background else {
        let side = run_side(options, workload, index, Side::Plain)?;
        return Ok(finish_repeat(options, index, side, None));
    };
    // Alternate the order so a machine that gets busier or quieter during a run does not
    // always favour the same side.
    let idle_first = index.is_multiple_of(2);
    let (idle, with) = if idle_first {
        let idle = run_side(options, workload, index, Side::Idle)?;
        (
            idle,
            run_side(options, workload, index, Side::WithBackground)?,
        )
    } else {
        let with = run_side(options, workload, index, Side::WithBackground)?;
        (run_side(options, workload, index, Side::Idle)?, with)
    };
    let maintenance = MaintenanceRepeat {
        kind: background.kind(),
        idle_mode: background.idle_mode(),
        first: if idle_first {
            "idle"
        } else {
            "with_background"
        }
        .to_string(),
        ratios: LatencyRatios::of(&idle.outcome.publish_latency, &with.outcome.publish_latency),
        end_to_end_ratios: LatencyRatios::of(
            &idle.outcome.end_to_end_latency,
            &with.outcome.end_to_end_latency,
        ),
        idle: maintenance_side(&idle),
        with_background: maintenance_side(&with),
    };
    Ok(finish_repeat(options, index, with, Some(maintenance)))
}

fn maintenance_side(side: &SideOutcome) -> MaintenanceSide {
    let o = &side.outcome;
    let without_curve = |l: &crate::stats::LatencySummary| crate::stats::LatencySummary {
        curve: Vec::new(),
        ..l.clone()
    };
    MaintenanceSide {
        measured_seconds: o.measured_seconds,
        publish: o.publish.clone(),
        publish_latency_us: without_curve(&o.publish_latency),
        end_to_end_latency_us: without_curve(&o.end_to_end_latency),
        errors_publish: o.errors.publish,
        errors_consume: o.errors.consume,
        broker_process: side.broker_process.clone(),
        cpu: o.cpu.clone(),
        background: o.activity.writer.clone(),
        broker_log: side.broker_log.clone(),
        worst_second_publish_p99_us: o
            .timeseries
            .iter()
            .filter(|p| p.phase == Phase::Measure.name())
            .map(|p| p.publish_p99_us)
            .reduce(f64::max),
        memory: (o.rss.count > 0).then(|| {
            let peak = side.broker_process.as_ref().map(|p| p.max_rss_bytes);
            o.rss.report(peak, o.memory_budget.as_ref())
        }),
        hostile: o.activity.hostile.clone(),
        create_topics: o.activity.create_topics.clone(),
    }
}

/// Where one side's load runs, for its background plan.
struct SideTarget<'a> {
    side: Side,
    topic_prefix: &'a str,
    bootstrap: &'a str,
    admin_address: Option<&'a str>,
    run_tag: u32,
}

/// This side's background plan, if it runs one: the maintenance writer (the idle side's
/// too with idle = "writes"), the hostile backlog (both sides) and clients (with side), or
/// the topic churn (with side).
fn background_plan(workload: &Workload, at: &SideTarget<'_>) -> Option<BackgroundPlan> {
    let with = match at.side {
        Side::Plain => return None,
        Side::Idle => false,
        Side::WithBackground => true,
    };
    let replication_factor = workload.topics.replication_factor;
    match workload.background.as_ref()? {
        Background::Compaction(m) | Background::Retention(m) => {
            let topic_configs = match (with, m.idle) {
                (false, IdleMode::None) => return None,
                (false, IdleMode::Writes) => m.idle_topic_configs(),
                (true, _) => m.topic_configs.clone(),
            };
            Some(BackgroundPlan::Writer(WriterPlan {
                topic: format!("{}-background", at.topic_prefix),
                topic_configs,
                writer: Arc::new(m.writer_workload(workload)),
            }))
        }
        Background::Hostile(h) => Some(BackgroundPlan::Hostile(HostilePlan {
            settings: h.clone(),
            attack: with,
            topic: format!("{}-backlog", at.topic_prefix),
            bootstrap: at.bootstrap.to_string(),
            admin_address: at.admin_address.map(str::to_string),
            run_tag: at.run_tag,
        })),
        Background::CreateTopics(c) => with.then(|| {
            BackgroundPlan::CreateTopics(ChurnPlan {
                settings: c.clone(),
                topic_prefix: format!("{}-created", at.topic_prefix),
                bootstrap: at.bootstrap.to_string(),
                replication_factor,
            })
        }),
    }
}

fn run_side(
    options: &RunOptions,
    workload: &Arc<Workload>,
    index: u32,
    side: Side,
) -> anyhow::Result<SideOutcome> {
    let run_tag = random_seed() as u32;
    let run_name = format!("{}-{run_tag:08x}-r{index}{}", workload.name, side.tag());
    let label = format!(
        "{} {}/{}{}",
        workload.name,
        index + 1,
        options.repeats,
        side.label()
    );
    let mut broker = match &options.target {
        Target::Start(broker_options) => {
            let mut broker_options = broker_options.clone();
            if let Some(background) = &workload.background {
                broker_options.config_overrides = background.broker_config().clone();
            }
            Some(StartedBroker::start(&broker_options, &run_name)?)
        }
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
        background: None,
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
    let mut load_plan = plan(
        target_rate,
        d.warmup_seconds,
        d.measure_seconds,
        "load",
        &label,
    );
    load_plan.background = background_plan(
        workload,
        &SideTarget {
            side,
            topic_prefix: &load_plan.topic_prefix,
            bootstrap: &bootstrap,
            admin_address: broker.as_ref().map(|b| b.admin_address.as_str()),
            run_tag,
        },
    );
    let outcome = load::execute(&load_plan, broker.as_mut())?;
    let broker_process = broker.as_ref().map(|b| usage(b, &outcome));
    let broker_log = (side != Side::Plain)
        .then_some(broker.as_ref())
        .flatten()
        .map(|b| parse_broker_log(&std::fs::read_to_string(&b.log_path).unwrap_or_default()));
    drop(broker); // stops the broker and removes its data before the baselines run
    Ok(SideOutcome {
        outcome,
        target_rate,
        probe,
        broker_process,
        broker_log,
    })
}

/// Baselines (with no broker running) and ratios for the repeat's main side.
fn finish_repeat(
    options: &RunOptions,
    index: u32,
    side: SideOutcome,
    maintenance: Option<MaintenanceRepeat>,
) -> RepeatResult {
    let SideOutcome {
        outcome,
        target_rate,
        probe,
        broker_process,
        ..
    } = side;
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
    RepeatResult {
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
        maintenance,
    }
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
