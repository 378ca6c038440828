//! One load execution: create topics, start consumer and producer threads, walk the phases
//! (backlog -> warm-up -> measure -> done), sample once a second, stop everything, delete
//! the topics and hand back what was measured.
//!
//! Owns: the load threads' lifetimes and the phase clock. Imports: `admin`, `broker`,
//! `consumer`, `producer`, `control`, `activity`, `memory`, `progress`, `result`, `stats`,
//! `workload`. A `[background]` activity, when planned, follows the same phases; a started
//! broker's RSS is sampled on every tick of the warm-up and measured phases.
//! Runs on the coordinating thread. Invariant: every thread it starts is joined before it
//! returns, on success and on error, so no load outlives a run.

use crate::activity::{Activity, ActivityReport, BackgroundPlan, Prepared};
use crate::admin::Admin;
use crate::broker::StartedBroker;
use crate::consumer::{self, ConsumerSpec};
use crate::control::{ClientEvents, LoadStats, Phase, RunControl};
use crate::cpu::CpuSnapshot;
use crate::memory::{MemoryBudget, RssSamples};
use crate::payload::{Rng, now_ns};
use crate::producer::{self, ProducerSpec};
use crate::progress::Progress;
use crate::result::{CpuUse, Errors, Throughput, TimePoint};
use crate::stats::{LatencyHistogram, LatencySummary, MB, per_second};
use crate::workload::Workload;
use anyhow::{Context, bail};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(100);
const SAMPLE_EVERY_NS: u64 = 1_000_000_000;
const CONSUMERS_READY_TIMEOUT_NS: u64 = 60_000_000_000;
const BACKLOG_TIMEOUT_NS: u64 = 900_000_000_000;
/// The measured phase of a catch-up read lasts at least this long before it may end early.
const CATCH_UP_MEASURE_MIN_NS: u64 = 1_000_000_000;

pub struct LoadPlan {
    pub workload: Arc<Workload>,
    pub bootstrap: String,
    pub topic_prefix: String,
    /// Total producer rate in the warm-up and measured phases; None = max.
    pub target_rate: Option<f64>,
    pub warmup_seconds: f64,
    pub measure_seconds: f64,
    pub run_tag: u32,
    pub label: String,
    pub throttle_us: u64,
    /// Echo every librdkafka log line (with `debug` set in the workload's properties).
    pub echo_client_logs: bool,
    /// A background activity during warm-up and measure (`[background]`, this side's).
    pub background: Option<BackgroundPlan>,
}

#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub measured_seconds: f64,
    pub publish: Throughput,
    pub consume: Throughput,
    pub publish_latency: LatencySummary,
    pub end_to_end_latency: LatencySummary,
    pub errors: Errors,
    pub timeseries: Vec<TimePoint>,
    /// Broker CPU seconds in the measured phase (only for a started broker).
    pub broker_cpu_seconds: Option<f64>,
    /// Who used the CPUs during the measured phase.
    pub cpu: CpuUse,
    /// What the background activity did (and the writer's topic offsets at the end).
    pub activity: ActivityReport,
    /// The started broker's VmRSS, sampled every tick of the warm-up and measured phases.
    pub rss: RssSamples,
    /// The started broker's memory budgets from /metrics after a `[background]` load.
    pub memory_budget: Option<MemoryBudget>,
}

struct Threads {
    control: Arc<RunControl>,
    events: Arc<ClientEvents>,
    producers: Vec<(Arc<LoadStats>, JoinHandle<anyhow::Result<()>>)>,
    consumers: Vec<(Arc<LoadStats>, JoinHandle<anyhow::Result<()>>)>,
    background: Option<Activity>,
}

/// Totals over all threads of one kind.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    messages: u64,
    bytes: u64,
}

impl Threads {
    fn totals(list: &[(Arc<LoadStats>, JoinHandle<anyhow::Result<()>>)]) -> Totals {
        list.iter().fold(Totals::default(), |t, (stats, _)| {
            let (messages, bytes) = stats.count();
            Totals {
                messages: t.messages + messages,
                bytes: t.bytes + bytes,
            }
        })
    }

    fn published(&self) -> Totals {
        Threads::totals(&self.producers)
    }

    fn consumed(&self) -> Totals {
        Threads::totals(&self.consumers)
    }

    /// The phase of the measured load and of the background writer.
    fn set_phase(&mut self, phase: Phase) {
        self.control.set_phase(phase);
        if let Some(background) = &mut self.background {
            background.set_phase(phase);
        }
    }

    /// A thread that ended before the run did has failed: return its error.
    fn check_threads(&mut self) -> anyhow::Result<()> {
        if self.background.as_ref().is_some_and(|b| b.is_finished()) {
            bail!("the background activity stopped early (see the error after shutdown)");
        }
        let all = self.producers.iter_mut().chain(self.consumers.iter_mut());
        for (_, handle) in all {
            if handle.is_finished() {
                bail!("a load thread stopped early (see the error after shutdown)");
            }
        }
        Ok(())
    }

    /// Stops and joins every thread; returns the first thread error.
    fn shutdown(mut self) -> anyhow::Result<(Errors, ActivityReport)> {
        self.set_phase(Phase::Done);
        let mut first_error = None;
        let mut errors = Errors::default();
        for (stats, handle) in self.producers {
            errors.publish += stats.errors.load(Ordering::Relaxed);
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => first_error = first_error.or(Some(anyhow::anyhow!("producer panicked"))),
            }
        }
        self.control.stop_consumers();
        for (stats, handle) in self.consumers {
            errors.consume += stats.errors.load(Ordering::Relaxed);
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => first_error = first_error.or(Some(anyhow::anyhow!("consumer panicked"))),
            }
        }
        errors.samples = self.events.samples();
        let background = self.background.take().map(Activity::finish);
        let background = match background.transpose() {
            Ok(report) => report.unwrap_or_default(),
            Err(e) => {
                first_error = first_error.or(Some(e));
                ActivityReport::default()
            }
        };
        match first_error {
            Some(error) => Err(error.context("load thread failed")),
            None => Ok((errors, background)),
        }
    }

    fn spawn_producers(&mut self, plan: &LoadPlan, topics: &[String]) -> anyhow::Result<()> {
        let mut rng = Rng::new(u64::from(plan.run_tag));
        for (t, topic) in topics.iter().enumerate() {
            for p in 0..plan.workload.producers.per_topic {
                let index = t as u32 * plan.workload.producers.per_topic + p;
                let spec = ProducerSpec {
                    index,
                    topic: topic.clone(),
                    bootstrap: plan.bootstrap.clone(),
                    workload: plan.workload.clone(),
                    run_tag: plan.run_tag,
                    seed: rng.next_u64(),
                };
                let stats = Arc::new(LoadStats::default());
                let (control, events, s) =
                    (self.control.clone(), self.events.clone(), stats.clone());
                let handle = std::thread::Builder::new()
                    .name(format!("producer-{index}"))
                    .spawn(move || producer::run(spec, control, s, events))?;
                self.producers.push((stats, handle));
            }
        }
        Ok(())
    }

    fn spawn_consumers(&mut self, plan: &LoadPlan, topics: &[String]) -> anyhow::Result<()> {
        let c = &plan.workload.consumers;
        let partitions = plan.workload.topics.partitions;
        let mut index = 0;
        for topic in topics {
            for subscription in 0..c.subscriptions_per_topic {
                for member in 0..c.per_subscription {
                    let spec = ConsumerSpec {
                        index,
                        topic: topic.clone(),
                        partitions: consumer::partition_share(
                            partitions,
                            member,
                            c.per_subscription,
                        ),
                        group: c
                            .consumer_groups
                            .then(|| format!("{topic}-subscription-{subscription}")),
                        bootstrap: plan.bootstrap.clone(),
                        workload: plan.workload.clone(),
                        run_tag: plan.run_tag,
                    };
                    let stats = Arc::new(LoadStats::default());
                    let (control, events, s) =
                        (self.control.clone(), self.events.clone(), stats.clone());
                    let handle = std::thread::Builder::new()
                        .name(format!("consumer-{index}"))
                        .spawn(move || consumer::run(spec, control, s, events))?;
                    self.consumers.push((stats, handle));
                    index += 1;
                }
            }
        }
        Ok(())
    }

    fn wait_consumers_ready(&mut self) -> anyhow::Result<()> {
        let deadline = now_ns() + CONSUMERS_READY_TIMEOUT_NS;
        while !self
            .consumers
            .iter()
            .all(|(s, _)| s.ready.load(Ordering::Relaxed))
        {
            self.check_threads()?;
            if now_ns() > deadline {
                bail!("consumers got no partitions within 60 s (group coordination?)");
            }
            std::thread::sleep(TICK);
        }
        Ok(())
    }
}

/// Per-second samples of the counters for the throughput-over-time series.
struct Sampler {
    origin_ns: u64,
    last_ns: u64,
    last_published: Totals,
    last_consumed: Totals,
    points: Vec<TimePoint>,
    /// The started broker's latest VmRSS, and the samples of the warm-up and measure.
    last_rss: Option<u64>,
    rss: RssSamples,
}

impl Sampler {
    fn note_rss(&mut self, rss: Option<u64>, phase: Phase) {
        self.last_rss = rss;
        if let (Some(bytes), Phase::Warmup | Phase::Measure) = (rss, phase) {
            self.rss.add(bytes);
        }
    }

    fn sample(&mut self, threads: &Threads, phase: Phase) -> &TimePoint {
        let now = now_ns();
        let seconds = (now - self.last_ns) as f64 / 1e9;
        let (published, consumed) = (threads.published(), threads.consumed());
        let mut interval = LatencyHistogram::new();
        for (stats, _) in &threads.producers {
            stats.take_interval(&mut interval);
        }
        let rate = |now: u64, then: u64| per_second((now - then) as f64, seconds);
        self.points.push(TimePoint {
            t: (now - self.origin_ns) as f64 / 1e9,
            phase: phase.name().to_string(),
            publish_msgs_per_sec: rate(published.messages, self.last_published.messages),
            publish_mb_per_sec: rate(published.bytes, self.last_published.bytes) / MB,
            consume_msgs_per_sec: rate(consumed.messages, self.last_consumed.messages),
            consume_mb_per_sec: rate(consumed.bytes, self.last_consumed.bytes) / MB,
            publish_p99_us: interval.summary().p99,
            broker_rss_bytes: self.last_rss,
        });
        (self.last_ns, self.last_published, self.last_consumed) = (now, published, consumed);
        self.points.last().expect("just pushed")
    }
}

/// Creates the topics, runs the load and deletes the topics again.
pub fn execute(
    plan: &LoadPlan,
    mut broker: Option<&mut StartedBroker>,
) -> anyhow::Result<LoadOutcome> {
    let workload = &plan.workload;
    let admin = Admin::connect(&plan.bootstrap)?;
    let topics: Vec<String> = (0..workload.topics.count)
        .map(|t| format!("{}-{t}", plan.topic_prefix))
        .collect();
    admin
        .create_topics(
            &topics,
            workload.topics.partitions,
            workload.topics.replication_factor,
        )
        .context("topic setup")?;
    let mut all_topics = topics.clone();
    let mut prepared = Prepared::default();
    if let Some(background) = &plan.background {
        all_topics.extend(background.topics());
        match background.prepare(&admin) {
            Ok(ready) => prepared = ready,
            Err(error) => {
                for warning in admin.delete_topics(&all_topics) {
                    eprintln!("warning: {warning}");
                }
                return Err(error);
            }
        }
    }
    let mut outcome = drive(plan, &topics, prepared, broker.as_deref_mut());
    if let Ok(outcome) = &mut outcome {
        after_load(plan, &admin, broker.as_deref(), outcome);
    }
    if let Err(error) = &outcome {
        eprintln!(
            "\n{}: load failed: {error:#}\n(deleting the topics, then stopping)",
            plan.label
        );
    }
    for warning in admin.delete_topics(&all_topics) {
        eprintln!("warning: {warning}");
    }
    outcome
}

/// Evidence read from the broker after a `[background]` load (either side), before its
/// topics go: the writer topic's offsets, the started broker's memory budgets.
fn after_load(
    plan: &LoadPlan,
    admin: &Admin,
    broker: Option<&StartedBroker>,
    outcome: &mut LoadOutcome,
) {
    if plan.workload.background.is_none() {
        return;
    }
    if let (Some(BackgroundPlan::Writer(writer)), Some(report)) =
        (&plan.background, &mut outcome.activity.writer)
    {
        match admin.offsets(&writer.topic, writer.writer.topics.partitions) {
            Ok((start, end)) => {
                (report.log_start_offset, report.high_watermark) = (Some(start), Some(end))
            }
            Err(error) => eprintln!("warning: background topic offsets: {error:#}"),
        }
    }
    if let Some(broker) = broker {
        match MemoryBudget::scrape(&broker.admin_address) {
            Ok(budget) => outcome.memory_budget = Some(budget),
            Err(error) => eprintln!("warning: memory budgets: {error:#}"),
        }
    }
}

fn drive(
    plan: &LoadPlan,
    topics: &[String],
    prepared: Prepared,
    mut broker: Option<&mut StartedBroker>,
) -> anyhow::Result<LoadOutcome> {
    let workload = &plan.workload;
    let mut threads = Threads {
        control: Arc::new(RunControl::new(workload.producer_count(), plan.throttle_us)),
        events: Arc::new(ClientEvents::new(plan.echo_client_logs)),
        producers: Vec::new(),
        consumers: Vec::new(),
        background: None,
    };
    let result = (|| {
        if !workload.has_backlog() {
            threads.spawn_consumers(plan, topics)?;
            threads.wait_consumers_ready()?;
        }
        threads.spawn_producers(plan, topics)?;
        if let Some(background) = &plan.background {
            threads.background = Some(Activity::start(
                background,
                prepared,
                &plan.bootstrap,
                plan.run_tag,
            )?);
        }
        phases(plan, topics, &mut threads, &mut broker)
    })();
    // A thread's own error explains a failed run better than "stopped early".
    match (result, threads.shutdown()) {
        (Ok(mut outcome), Ok((errors, activity))) => {
            outcome.errors = errors;
            outcome.activity = activity;
            Ok(outcome)
        }
        (_, Err(thread_error)) => Err(thread_error),
        (Err(error), Ok(_)) => Err(error),
    }
}

fn phases(
    plan: &LoadPlan,
    topics: &[String],
    threads: &mut Threads,
    broker: &mut Option<&mut StartedBroker>,
) -> anyhow::Result<LoadOutcome> {
    let workload = plan.workload.clone();
    let control = threads.control.clone();
    let start = now_ns();
    let mut sampler = Sampler {
        origin_ns: start,
        last_ns: start,
        last_published: Totals::default(),
        last_consumed: Totals::default(),
        points: Vec::new(),
        last_rss: None,
        rss: RssSamples::default(),
    };
    let mut progress = Progress::new(&plan.label, plan.warmup_seconds, plan.measure_seconds);
    let mut phase_start = start;
    let mut next_sample = start + SAMPLE_EVERY_NS;
    let mut measure_start = (
        Totals::default(),
        Totals::default(),
        0u64,
        CpuSnapshot::default(),
    );
    let start_phase = if workload.has_backlog() {
        control.set_total_rate(None);
        Phase::Backlog
    } else {
        control.set_total_rate(plan.target_rate);
        Phase::Warmup
    };
    threads.set_phase(start_phase);
    loop {
        std::thread::sleep(TICK);
        threads.check_threads()?;
        if let Some(broker) = broker.as_deref_mut() {
            broker.check_alive()?;
            sampler.note_rss(broker.rss_bytes(), control.phase());
        }
        let now = now_ns();
        let phase = control.phase();
        if now >= next_sample {
            let point = sampler.sample(threads, phase);
            progress.show(point, (now - phase_start) as f64 / 1e9, &threads.events);
            next_sample += SAMPLE_EVERY_NS;
        }
        let in_phase = (now - phase_start) as f64 / 1e9;
        match phase {
            Phase::Backlog => {
                if threads.published().bytes >= workload.duration.backlog_bytes {
                    control.set_total_rate(plan.target_rate);
                    threads.spawn_consumers(plan, topics)?;
                    threads.wait_consumers_ready()?;
                    threads.set_phase(Phase::Warmup);
                    phase_start = now_ns();
                } else if now - start > BACKLOG_TIMEOUT_NS {
                    bail!(
                        "backlog of {} bytes not produced in 15 minutes",
                        workload.duration.backlog_bytes
                    );
                }
            }
            Phase::Warmup => {
                if in_phase >= plan.warmup_seconds {
                    let cpu = CpuSnapshot::take(broker.as_deref().map(|b| b.pid()));
                    measure_start = (threads.published(), threads.consumed(), now_ns(), cpu);
                    threads.set_phase(Phase::Measure);
                    phase_start = measure_start.2;
                }
            }
            Phase::Measure => {
                let caught_up = workload.duration.stop_when_caught_up
                    && now - phase_start >= CATCH_UP_MEASURE_MIN_NS
                    && caught_up(plan, threads);
                if in_phase >= plan.measure_seconds || caught_up {
                    let end = (threads.published(), threads.consumed(), now_ns());
                    let cpu = CpuSnapshot::take(broker.as_deref().map(|b| b.pid()));
                    threads.set_phase(Phase::Done);
                    if let Some(background) = &mut threads.background {
                        background.set_measured_seconds((end.2 - phase_start) as f64 / 1e9);
                    }
                    if now_ns() - sampler.last_ns >= SAMPLE_EVERY_NS / 2 {
                        sampler.sample(threads, Phase::Measure);
                    }
                    progress.finish();
                    return Ok(outcome(threads, measure_start, end, cpu, sampler));
                }
            }
            Phase::Setup | Phase::Done => bail!("unexpected phase {}", phase.name()),
        }
    }
}

/// Consumers have read (nearly) everything published: lag below half a second of load.
fn caught_up(plan: &LoadPlan, threads: &Threads) -> bool {
    let subscriptions = u64::from(plan.workload.consumers.subscriptions_per_topic);
    let expected = threads.published().messages * subscriptions;
    let allowance = plan.target_rate.unwrap_or(0.0) * 0.5 * subscriptions as f64 + 100.0;
    threads.consumed().messages as f64 + allowance >= expected as f64
}

fn outcome(
    threads: &Threads,
    start: (Totals, Totals, u64, CpuSnapshot),
    end: (Totals, Totals, u64),
    cpu_end: CpuSnapshot,
    sampler: Sampler,
) -> LoadOutcome {
    let seconds = (end.2 - start.2) as f64 / 1e9;
    let throughput = |from: Totals, to: Totals| {
        let (messages, bytes) = (to.messages - from.messages, to.bytes - from.bytes);
        Throughput {
            messages,
            bytes,
            msgs_per_sec: per_second(messages as f64, seconds),
            mb_per_sec: per_second(bytes as f64, seconds) / MB,
        }
    };
    let mut publish_latency = LatencyHistogram::new();
    for (stats, _) in &threads.producers {
        stats.merge_measured(&mut publish_latency);
    }
    let mut end_to_end = LatencyHistogram::new();
    for (stats, _) in &threads.consumers {
        stats.merge_measured(&mut end_to_end);
    }
    LoadOutcome {
        measured_seconds: seconds,
        publish: throughput(start.0, end.0),
        consume: throughput(start.1, end.1),
        publish_latency: publish_latency.summary(),
        end_to_end_latency: end_to_end.summary(),
        errors: Errors::default(),
        timeseries: sampler.points,
        rss: sampler.rss,
        memory_budget: None,
        broker_cpu_seconds: start
            .3
            .broker_seconds
            .zip(cpu_end.broker_seconds)
            .map(|(a, b)| b - a),
        cpu: crate::cpu::usage(&start.3, &cpu_end, seconds),
        activity: ActivityReport::default(),
    }
}
