//! Topic setup and teardown through the Kafka admin API (CreateTopics, Metadata,
//! DeleteTopics), so the harness works against any Kafka-API broker.
//!
//! Owns: a librdkafka `AdminClient`. Imports nothing from this crate. Runs on the
//! coordinating thread; the admin futures are driven by a tiny local executor.

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Deleting is cleanup: never wait long for a broker that may be gone.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Admin {
    client: AdminClient<DefaultClientContext>,
}

/// librdkafka properties every admin client also gets (`run --client-property`, e.g. the
/// security settings of an SSL listener); producers and consumers get them through the
/// workload's `properties`.
static CLIENT_PROPERTIES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Sets the admin clients' extra properties, once, before any admin client is made.
pub fn set_client_properties(properties: Vec<(String, String)>) {
    let _ = CLIENT_PROPERTIES.set(properties);
}

impl Admin {
    pub fn connect(bootstrap: &str) -> anyhow::Result<Admin> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "bench-admin");
        for (key, value) in CLIENT_PROPERTIES.get().into_iter().flatten() {
            config.set(key, value);
        }
        let client = config.create().context("cannot create admin client")?;
        Ok(Admin { client })
    }

    /// Creates the topics and waits until Metadata shows every partition with a leader.
    pub fn create_topics(
        &self,
        names: &[String],
        partitions: u32,
        replication_factor: i16,
    ) -> anyhow::Result<()> {
        self.create_topics_with_configs(names, partitions, replication_factor, &BTreeMap::new())
    }

    /// `create_topics` with topic configs (Kafka names, e.g. "cleanup.policy").
    pub fn create_topics_with_configs(
        &self,
        names: &[String],
        partitions: u32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.create_topics_only(
            names,
            partitions,
            replication_factor,
            configs,
            ADMIN_TIMEOUT,
        )?;
        for name in names {
            self.wait_for_leaders(name, partitions)?;
        }
        Ok(())
    }

    /// One CreateTopics request, answered within `timeout`; does not wait for leaders.
    pub fn create_topics_only(
        &self,
        names: &[String],
        partitions: u32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let new_topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| {
                let topic = NewTopic::new(
                    name,
                    partitions as i32,
                    TopicReplication::Fixed(i32::from(replication_factor)),
                );
                configs
                    .iter()
                    .fold(topic, |topic, (key, value)| topic.set(key, value))
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        let results =
            futures_executor::block_on(self.client.create_topics(new_topics.iter(), &options))
                .context("CreateTopics request failed")?;
        for result in results {
            if let Err((topic, code)) = result {
                bail!("CreateTopics {topic}: {code}");
            }
        }
        Ok(())
    }

    /// Waits until Metadata shows the topic with every partition led.
    pub fn wait_for_leaders(&self, topic: &str, partitions: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_problem = String::new();
        while Instant::now() < deadline {
            match self.leaders_problem(topic, partitions) {
                None => return Ok(()),
                Some(problem) => last_problem = problem,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("topic {topic} not ready within {READY_TIMEOUT:?}: {last_problem}")
    }

    /// None when Metadata lists the topic with every partition led; else what is missing.
    fn leaders_problem(&self, topic: &str, partitions: u32) -> Option<String> {
        let metadata = match self
            .client
            .inner()
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        {
            Ok(metadata) => metadata,
            Err(error) => return Some(error.to_string()),
        };
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Some("topic missing from Metadata".into());
        };
        let led = found
            .partitions()
            .iter()
            .filter(|p| p.leader() >= 0 && p.error().is_none());
        let ready = found.error().is_none()
            && found.partitions().len() == partitions as usize
            && led.count() == partitions as usize;
        (!ready).then(|| {
            format!(
                "error {:?}, {} of {partitions} partitions listed",
                found.error(),
                found.partitions().len()
            )
        })
    }

    /// Sums over the topic's partitions of (log start offset, high watermark), from
    /// ListOffsets earliest and latest.
    pub fn offsets(&self, topic: &str, partitions: u32) -> anyhow::Result<(i64, i64)> {
        let mut sums = (0, 0);
        for partition in 0..partitions {
            let (low, high) = self
                .client
                .inner()
                .fetch_watermarks(topic, partition as i32, METADATA_TIMEOUT)
                .with_context(|| format!("ListOffsets {topic}/{partition}"))?;
            sums = (sums.0 + low, sums.1 + high);
        }
        Ok(sums)
    }

    /// Deletes the topics; failures are returned as warnings, not errors (cleanup only).
    pub fn delete_topics(&self, names: &[String]) -> Vec<String> {
        self.delete_topics_within(names, DELETE_TIMEOUT)
    }

    /// `delete_topics` with the answer awaited for up to `timeout`.
    pub fn delete_topics_within(&self, names: &[String], timeout: Duration) -> Vec<String> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        match futures_executor::block_on(self.client.delete_topics(&names, &options)) {
            Ok(results) => results
                .into_iter()
                .filter_map(|r| {
                    r.err()
                        .map(|(topic, code)| format!("DeleteTopics {topic}: {code}"))
                })
                .collect(),
            Err(error) => vec![format!("DeleteTopics failed: {error}")],
        }
    }
}
