//! The data the hostile fetchers read, and the librdkafka consumers that read it with huge
//! fetch limits (issue 14, item 2: fetch.max.bytes = 1e9 took a broker to 2.6 GB).
//!
//! Owns: the backlog producer (runs once, before the warm-up) and the big-fetch consumer
//! threads. Imports: `admin`, `control`, `result`, the parent's `HostilePlan`.
//! Invariant: a big-fetch consumer never records into the measured load's statistics.

use super::HostilePlan;
use crate::admin::Admin;
use crate::control::ClientEvents;
use crate::result::BacklogReport;
use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BACKLOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(600);
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
const PACING_SLEEP_MAX: Duration = Duration::from_millis(100);

#[derive(Default)]
struct BacklogContext {
    acked: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for BacklogContext {}

impl ProducerContext for BacklogContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.bytes
                    .fetch_add(message.payload_len() as u64, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Creates the backlog topic and writes `backlog_bytes` to it, round robin over its
/// partitions, acks=1; returns once every message is acknowledged.
pub fn fill_backlog(plan: &HostilePlan, admin: &Admin) -> anyhow::Result<BacklogReport> {
    let s = &plan.settings;
    admin
        .create_topics(std::slice::from_ref(&plan.topic), s.backlog_partitions, 1)
        .context("backlog topic setup")?;
    let started = Instant::now();
    let producer: BaseProducer<BacklogContext> = ClientConfig::new()
        .set("bootstrap.servers", &plan.bootstrap)
        .set("client.id", "bench-hostile-backlog")
        .set("acks", "1")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "65536")
        .create_with_context(BacklogContext::default())
        .context("backlog producer")?;
    let payload: Vec<u8> = {
        let mut rng = crate::payload::Rng::new(u64::from(plan.run_tag) | 1);
        (0..s.backlog_message_bytes)
            .map(|_| rng.next_u64() as u8)
            .collect()
    };
    let messages = s.backlog_bytes.div_ceil(s.backlog_message_bytes);
    for index in 0..messages {
        let partition = (index % u64::from(s.backlog_partitions)) as i32;
        let mut record = Some(
            BaseRecord::to(&plan.topic)
                .partition(partition)
                .payload(payload.as_slice()),
        );
        while let Some(pending) = record.take() {
            match producer.send::<[u8], [u8]>(pending) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(QUEUE_FULL_BACKOFF);
                    record = Some(back);
                }
                Err((error, _)) => bail!("backlog send failed: {error}"),
            }
        }
        if index % 64 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(BACKLOG_FLUSH_TIMEOUT)
        .context("backlog flush")?;
    let context = producer.context();
    let errors = context.errors.load(Ordering::Relaxed);
    if errors > 0 {
        let first = context
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        bail!("backlog: {errors} messages failed, first: {first:?}");
    }
    Ok(BacklogReport {
        topic: plan.topic.clone(),
        partitions: s.backlog_partitions,
        messages: context.acked.load(Ordering::Relaxed),
        bytes: context.bytes.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        errors,
    })
}

/// What the big-fetch consumers read, over all of them.
#[derive(Default)]
pub struct BigFetchStats {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub passes: AtomicU64,
    pub errors: AtomicU64,
}

/// One consumer with `fetch.max.bytes` and `max.partition.fetch.bytes` = `big_fetch_bytes`
/// that reads every backlog partition from the beginning, and starts over at the end,
/// until `stop`. With `big_fetch_mb_per_sec`, it polls no faster than that.
pub fn run_big_fetch(
    index: u32,
    plan: HostilePlan,
    stop: Arc<AtomicBool>,
    stats: Arc<BigFetchStats>,
    events: Arc<ClientEvents>,
) -> anyhow::Result<()> {
    let s = &plan.settings;
    let name = format!("bench-hostile-big-fetch-{index}");
    let big = s.big_fetch_bytes.to_string();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &plan.bootstrap)
        .set("client.id", &name)
        .set("group.id", format!("{name}-{:08x}", plan.run_tag))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", &big)
        .set("max.partition.fetch.bytes", &big)
        .set("queued.max.messages.kbytes", "65536")
        .create()
        .context("big-fetch consumer")?;
    let assign_from_start = || -> anyhow::Result<()> {
        let mut assignment = TopicPartitionList::new();
        for partition in 0..s.backlog_partitions {
            assignment.add_partition_offset(&plan.topic, partition as i32, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(())
    };
    assign_from_start()?;
    let started = Instant::now();
    let mut read_bytes = 0u64;
    let mut at_end = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        if s.big_fetch_mb_per_sec > 0.0 {
            let allowed = s.big_fetch_mb_per_sec * 1e6 * started.elapsed().as_secs_f64();
            let ahead = read_bytes as f64 - allowed;
            if ahead > 0.0 {
                let wait = Duration::from_secs_f64(ahead / (s.big_fetch_mb_per_sec * 1e6));
                std::thread::sleep(wait.min(PACING_SLEEP_MAX));
                continue;
            }
        }
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(message)) => {
                let bytes = message.payload_len() as u64;
                read_bytes += bytes;
                stats.messages.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
                if at_end.len() == s.backlog_partitions as usize {
                    at_end.clear();
                    stats.passes.fetch_add(1, Ordering::Relaxed);
                    assign_from_start()?;
                }
            }
            Some(Err(error)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                events.sample(format!("{name}: {error}"));
            }
        }
    }
    Ok(())
}
