//! One consumer thread: a librdkafka `BaseConsumer` that reads a topic from the beginning and
//! records end-to-end latency (payload send timestamp -> receive) for this run's messages.
//!
//! Owns: the consumer's librdkafka client. Imports: `control`, `payload`, `workload`.
//! Runs on its own thread. Two modes, chosen per workload: `assign()` of a fixed partition
//! share (needs no group coordinator) or `subscribe()` in a consumer group.

use crate::control::{ClientEvents, LoadStats, RunControl};
use crate::payload::{Header, now_ns};
use crate::workload::Workload;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const POLL_TIMEOUT: Duration = Duration::from_millis(100);

pub struct ConsumerSpec {
    pub index: u32,
    pub topic: String,
    /// Partitions to `assign()`; ignored when `group` is set.
    pub partitions: Vec<i32>,
    /// Consumer group to `subscribe()` in, when the workload uses groups.
    pub group: Option<String>,
    pub bootstrap: String,
    pub workload: Arc<Workload>,
    pub run_tag: u32,
}

struct Context {
    events: Arc<ClientEvents>,
    name: String,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.events
            .log(level, &self.name, format!("{facility}: {message}"));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events
            .log_line(&self.name, format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Context {}

pub fn client_config(spec: &ConsumerSpec, client_id: &str) -> ClientConfig {
    let c = &spec.workload.consumers;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.bootstrap)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", c.fetch_wait_max_ms.to_string())
        .set("fetch.min.bytes", c.fetch_min_bytes.to_string());
    // librdkafka's consumer needs a group.id even for assign(); without subscribe() and
    // commits it does not join the group.
    let group = spec
        .group
        .clone()
        .unwrap_or_else(|| format!("bench-assign-{}", spec.run_tag));
    config.set("group.id", group);
    for (key, value) in &c.properties {
        config.set(key, value);
    }
    config
}

/// Runs until the coordinating thread stops consumers. Errors only for setup failures.
pub fn run(
    spec: ConsumerSpec,
    control: Arc<RunControl>,
    stats: Arc<LoadStats>,
    events: Arc<ClientEvents>,
) -> anyhow::Result<()> {
    let name = format!("consumer-{}", spec.index);
    let context = Context {
        events: events.clone(),
        name: name.clone(),
    };
    let consumer: BaseConsumer<Context> = client_config(&spec, &name)
        .set_log_level(events.log_level())
        .create_with_context(context)?;
    match &spec.group {
        Some(_) => consumer.subscribe(&[spec.topic.as_str()])?,
        None => {
            let mut assignment = TopicPartitionList::new();
            for partition in &spec.partitions {
                assignment.add_partition_offset(&spec.topic, *partition, Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
            stats.ready.store(true, Ordering::Relaxed);
        }
    }
    while !control.consumers_stopped() {
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(message)) => {
                let Some(payload) = message.payload() else {
                    continue;
                };
                let Some(header) = Header::read(payload) else {
                    continue;
                };
                if header.run_tag != spec.run_tag {
                    continue;
                }
                let latency = now_ns().saturating_sub(header.send_ns);
                stats.record(payload.len() as u64, latency, control.is_measuring());
            }
            Some(Err(error)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                events.sample(format!("{name}: {error}"));
            }
        }
        if spec.group.is_some() && !stats.ready.load(Ordering::Relaxed) {
            let assigned = consumer
                .assignment()
                .map(|a| a.count() > 0)
                .unwrap_or(false);
            stats.ready.store(assigned, Ordering::Relaxed);
        }
    }
    if spec.group.is_some() {
        consumer.unsubscribe();
    }
    Ok(())
}

/// Partitions of `partitions` that consumer `member` of `members` reads in assign mode.
pub fn partition_share(partitions: u32, member: u32, members: u32) -> Vec<i32> {
    (0..partitions)
        .filter(|p| p % members.max(1) == member)
        .map(|p| p as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_shares_cover_every_partition_once() {
        let shares: Vec<Vec<i32>> = (0..3).map(|m| partition_share(8, m, 3)).collect();
        assert_eq!(shares[0], [0, 3, 6]);
        assert_eq!(shares[1], [1, 4, 7]);
        assert_eq!(shares[2], [2, 5]);
        assert!(partition_share(2, 3, 4).is_empty());
    }
}
