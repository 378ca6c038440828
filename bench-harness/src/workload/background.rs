//! The optional `[background]` section of a workload: what runs beside the measured load on
//! the "with" side of each repeat (the "idle" side runs the measured load alone), by `kind`:
//! - `compaction` / `retention` (issue 7): a background writer keeps the broker's log
//!   maintenance busy ([`Maintenance`]);
//! - `hostile` (issue 14, items 1-3): clients that try to hang or bloat the broker, with
//!   the broker's memory sampled against its configured budgets ([`Hostile`]);
//! - `create-topics` (issue 14, item 4): many-partition topics created (and deleted) while
//!   the load is measured ([`CreateTopics`]).
//!
//! Owns: the section's schema, defaults and validation. Imports: the parent `workload`
//! module only. Invariant: a section inside a `Workload` that passed `validate()` is valid
//! for its kind; `maintenance`, `hostile` and `topic_churn` run it.

use super::{
    Consumers, KeyDistribution, MessageSize, Messages, PAYLOAD_HEADER_BYTES, PayloadKind,
    Producers, Rate, Topics, Workload, default_batch_size, default_compression,
};
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[background]`, tagged by `kind`. Every kind may set `broker_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Background {
    /// `cleanup.policy = compact`: the broker rewrites segments without old values.
    Compaction(Maintenance),
    /// `retention.ms` / `retention.bytes`: the broker deletes the oldest segments.
    Retention(Maintenance),
    /// Hostile clients (partial frames, unread fetches, idle and admin connections).
    Hostile(Hostile),
    /// CreateTopics of many partitions during the measured phase.
    CreateTopics(CreateTopics),
}

/// The kind of a `[background]` section, as results record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackgroundKind {
    Compaction,
    Retention,
    Hostile,
    CreateTopics,
}

impl BackgroundKind {
    pub fn name(self) -> &'static str {
        match self {
            BackgroundKind::Compaction => "compaction",
            BackgroundKind::Retention => "retention",
            BackgroundKind::Hostile => "hostile",
            BackgroundKind::CreateTopics => "create-topics",
        }
    }

    /// Compaction and retention: a background writer keeps maintenance busy.
    pub fn is_maintenance(self) -> bool {
        matches!(self, BackgroundKind::Compaction | BackgroundKind::Retention)
    }
}

impl Background {
    pub fn kind(&self) -> BackgroundKind {
        match self {
            Background::Compaction(_) => BackgroundKind::Compaction,
            Background::Retention(_) => BackgroundKind::Retention,
            Background::Hostile(_) => BackgroundKind::Hostile,
            Background::CreateTopics(_) => BackgroundKind::CreateTopics,
        }
    }

    /// Settings merged into the config file of every broker the harness starts, both sides.
    pub fn broker_config(&self) -> &BTreeMap<String, toml::Value> {
        match self {
            Background::Compaction(m) | Background::Retention(m) => &m.broker_config,
            Background::Hostile(h) => &h.broker_config,
            Background::CreateTopics(c) => &c.broker_config,
        }
    }

    /// The background writer's settings, for the maintenance kinds.
    pub fn maintenance(&self) -> Option<&Maintenance> {
        match self {
            Background::Compaction(m) | Background::Retention(m) => Some(m),
            _ => None,
        }
    }

    /// What the idle side runs besides the measured load ("none" but for maintenance).
    pub fn idle_mode(&self) -> IdleMode {
        self.maintenance().map_or(IdleMode::None, |m| m.idle)
    }

    pub(super) fn validate(&self, measured: &Workload) -> anyhow::Result<()> {
        if matches!(measured.producers.rate, Rate::FractionOfMax(_)) {
            bail!(
                "background: producers.rate must be \"max\" or a fixed rate, not \"NN%\" \
                 (each side would probe its own maximum, so the sides would differ)"
            );
        }
        for key in self.broker_config().keys() {
            let parts: Vec<&str> = key.split('.').collect();
            if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
                bail!(
                    "background.broker_config: key {key:?} must be SECTION.FIELD, e.g. \"storage.retention_check_interval_ms\""
                );
            }
        }
        match self {
            Background::Compaction(m) => m.validate(BackgroundKind::Compaction),
            Background::Retention(m) => m.validate(BackgroundKind::Retention),
            Background::Hostile(h) => h.validate(),
            Background::CreateTopics(c) => c.validate(),
        }
    }
}

/// `kind = "compaction"` or `"retention"`: a second producer writes keyed messages to a topic
/// whose configs make the broker compact or delete segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// Background writer rate, messages per second (fixed; never coordinated with the
    /// measured producers).
    pub rate: f64,
    /// Background message size, bytes (16 ..= 1 MiB). Default 1024.
    #[serde(default = "default_background_size")]
    pub size: u64,
    /// Distinct keys the writer cycles through at random: each key is rewritten again and
    /// again, which is what compaction removes. Default 1000.
    #[serde(default = "default_background_keys")]
    pub key_count: u64,
    /// Partitions of the background topic. Default 4.
    #[serde(default = "default_background_partitions")]
    pub partitions: u32,
    /// librdkafka `acks` of the background writer. Default "1".
    #[serde(default = "default_background_acks")]
    pub acks: String,
    /// What the idle side runs besides the measured load: "none", or "writes" (the same
    /// background writer to a topic without maintenance, see `idle_topic_configs`).
    #[serde(default)]
    pub idle: IdleMode,
    /// CreateTopics configs of the maintenance topic, verbatim (Kafka names).
    #[serde(default)]
    pub topic_configs: BTreeMap<String, String>,
    /// Settings merged into the config file of a broker the harness starts (both sides),
    /// as dotted keys: `"storage.retention_check_interval_ms" = 1000`. Ignored, with a
    /// warning, for an external broker.
    #[serde(default)]
    pub broker_config: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleMode {
    /// The idle side runs only the measured load.
    #[default]
    None,
    /// The idle side also runs the background writer, to a topic that rolls segments the
    /// same way but is neither compacted nor trimmed: isolates maintenance from extra writes.
    Writes,
}

impl IdleMode {
    pub fn name(self) -> &'static str {
        match self {
            IdleMode::None => "none",
            IdleMode::Writes => "writes",
        }
    }
}

/// Topic configs that make the broker compact or delete; dropped for the idle topic.
const MAINTENANCE_TOPIC_CONFIGS: &[&str] = &["cleanup.policy", "retention.ms", "retention.bytes"];
const BACKGROUND_RATE_MAX: f64 = 1_000_000.0;
const BACKGROUND_MESSAGE_BYTES_MAX: u64 = 1024 * 1024;

impl Maintenance {
    /// The idle side's topic: the maintenance topic's configs (segment size and roll time
    /// included) with cleanup.policy = delete and the retention limits at the broker's
    /// defaults (7 days, no size limit), so nothing is compacted or deleted during a run.
    pub fn idle_topic_configs(&self) -> BTreeMap<String, String> {
        let mut configs = self.topic_configs.clone();
        for name in MAINTENANCE_TOPIC_CONFIGS {
            configs.remove(*name);
        }
        configs.insert("cleanup.policy".into(), "delete".into());
        configs
    }

    /// The background writer as a workload of its own: one producer at `rate`, keyed at
    /// random over `key_count` keys, no consumers.
    pub fn writer_workload(&self, measured: &Workload) -> Workload {
        Workload {
            name: format!("{}-background", measured.name),
            description: "background writer".into(),
            topics: Topics {
                count: 1,
                partitions: self.partitions,
                replication_factor: measured.topics.replication_factor,
            },
            messages: Messages {
                size: MessageSize::Fixed(self.size),
                keys: KeyDistribution::Random,
                key_space: self.key_count,
                payload: PayloadKind::Random,
            },
            producers: Producers {
                per_topic: 1,
                rate: Rate::Fixed(self.rate),
                acks: self.acks.clone(),
                linger_ms: 5.0,
                batch_size: default_batch_size(),
                compression_type: default_compression(),
                properties: BTreeMap::new(),
            },
            consumers: Consumers {
                per_subscription: 0,
                ..Consumers::default()
            },
            duration: measured.duration.clone(),
            background: None,
        }
    }

    fn validate(&self, kind: BackgroundKind) -> anyhow::Result<()> {
        if !(self.rate > 0.0 && self.rate <= BACKGROUND_RATE_MAX) {
            bail!("background.rate must be in (0, {BACKGROUND_RATE_MAX}] messages/s");
        }
        if !(PAYLOAD_HEADER_BYTES..=BACKGROUND_MESSAGE_BYTES_MAX).contains(&self.size) {
            bail!(
                "background.size must be in {PAYLOAD_HEADER_BYTES}..={BACKGROUND_MESSAGE_BYTES_MAX}"
            );
        }
        if self.key_count == 0 {
            bail!("background.key_count must be at least 1");
        }
        if !(1..=10_000).contains(&self.partitions) {
            bail!("background.partitions must be in 1..=10000");
        }
        if !["0", "1", "-1", "all"].contains(&self.acks.as_str()) {
            bail!("background.acks must be \"0\", \"1\" or \"all\"");
        }
        let policy = self.topic_configs.get("cleanup.policy");
        let policies = || policy.into_iter().flat_map(|p| p.split(',')).map(str::trim);
        match kind {
            BackgroundKind::Compaction if !policies().any(|p| p == "compact") => {
                bail!(
                    "background: kind = \"compaction\" needs topic_configs.\"cleanup.policy\" = \"compact\""
                )
            }
            BackgroundKind::Retention => {
                if policy.is_some() && !policies().any(|p| p == "delete") {
                    bail!(
                        "background: kind = \"retention\" needs cleanup.policy to include delete"
                    );
                }
                let limited = ["retention.ms", "retention.bytes"]
                    .iter()
                    .any(|k| self.topic_configs.get(*k).is_some_and(|v| v.trim() != "-1"));
                if !limited {
                    bail!(
                        "background: kind = \"retention\" needs retention.ms or retention.bytes in topic_configs"
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `kind = "hostile"`: on the "with" side, from the start of the warm-up to the end of the
/// measured phase, clients that try to hang or bloat the broker (issue 14, items 1-3). Both
/// sides first create the `backlog_*` topic and fill it, so they differ only in the hostile
/// clients. Every count may be 0 to leave that load out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostile {
    /// Connections that send a 4-byte frame length and nothing more. Default 24.
    #[serde(default = "default_declared_frame_connections")]
    pub declared_frame_connections: u32,
    /// The frame size they declare, bytes. Default 64 MiB.
    #[serde(default = "default_declared_frame_bytes")]
    pub declared_frame_bytes: u64,
    /// Connections that trickle one frame slowly. Default 300.
    #[serde(default = "default_trickle_connections")]
    pub trickle_connections: u32,
    /// The frame size the tricklers declare, bytes. Default 2 MiB.
    #[serde(default = "default_trickle_frame_bytes")]
    pub trickle_frame_bytes: u64,
    /// Bytes each trickler sends per second. Default 1.
    #[serde(default = "one_u32")]
    pub trickle_bytes_per_second: u32,
    /// Raw connections that each pipeline `fetch_pipeline_requests` Fetch requests over
    /// every backlog partition (limits below) and never read the answers. Default 1.
    #[serde(default = "one_u32")]
    pub fetch_pipeline_connections: u32,
    /// Fetch requests each pipelining connection sends. Default 8.
    #[serde(default = "default_fetch_pipeline_requests")]
    pub fetch_pipeline_requests: u32,
    /// Their `partition_max_bytes` and `max_bytes`. Default 1 GiB.
    #[serde(default = "default_fetch_bytes")]
    pub fetch_bytes: u64,
    /// librdkafka consumers reading the backlog from the beginning, again and again.
    /// Default 1.
    #[serde(default = "one_u32")]
    pub big_fetch_consumers: u32,
    /// Their `fetch.max.bytes` and `max.partition.fetch.bytes`. Default 1e9.
    #[serde(default = "default_big_fetch_bytes")]
    pub big_fetch_bytes: u64,
    /// Upper bound on what each of them reads, MB/s (paced by polling; librdkafka's queue
    /// then holds the fetcher back); 0 = as fast as it can. Default 0.
    #[serde(default)]
    pub big_fetch_mb_per_sec: f64,
    /// Connections that are opened and never send anything. Default 1000.
    #[serde(default = "default_idle_connections")]
    pub idle_connections: u32,
    /// Connections to the admin HTTP port that send `GET admin_path` and never read the
    /// answer (started broker only). Default 400.
    #[serde(default = "default_admin_clients")]
    pub admin_clients: u32,
    /// Default "/metrics".
    #[serde(default = "default_admin_path")]
    pub admin_path: String,
    /// Partitions of the topic the fetchers read. Default 16.
    #[serde(default = "default_backlog_partitions")]
    pub backlog_partitions: u32,
    /// Bytes written to it (both sides) before the warm-up. Default 256 MiB.
    #[serde(default = "default_backlog_bytes")]
    pub backlog_bytes: u64,
    /// Message size of the backlog, bytes. Default 16 KiB.
    #[serde(default = "default_backlog_message_bytes")]
    pub backlog_message_bytes: u64,
    /// Reopen a connection the broker closed (as an attacker would), at most once a second
    /// each. Default true.
    #[serde(default = "yes")]
    pub reconnect: bool,
    /// Settings merged into the config file of every started broker (both sides), e.g.
    /// smaller memory budgets.
    #[serde(default)]
    pub broker_config: BTreeMap<String, toml::Value>,
}

/// Raw connections a hostile section may open in all.
pub const HOSTILE_CONNECTIONS_MAX: u64 = 20_000;
const FRAME_BYTES_MAX: u64 = i32::MAX as u64;
const BACKLOG_BYTES_MAX: u64 = 64 << 30;

impl Hostile {
    /// Kafka-port connections held open at once (declared, trickle, fetch, idle).
    pub fn kafka_connections(&self) -> u64 {
        [
            self.declared_frame_connections,
            self.trickle_connections,
            self.fetch_pipeline_connections,
            self.idle_connections,
        ]
        .iter()
        .map(|n| u64::from(*n))
        .sum()
    }

    /// Whether any hostile client reads the backlog topic.
    pub fn reads_backlog(&self) -> bool {
        self.fetch_pipeline_connections > 0 || self.big_fetch_consumers > 0
    }

    fn validate(&self) -> anyhow::Result<()> {
        let total = self.kafka_connections() + u64::from(self.admin_clients);
        if total == 0 && self.big_fetch_consumers == 0 {
            bail!("background (hostile): every hostile load is 0");
        }
        if total > HOSTILE_CONNECTIONS_MAX {
            bail!("background (hostile): at most {HOSTILE_CONNECTIONS_MAX} connections in all");
        }
        for (name, bytes) in [
            ("declared_frame_bytes", self.declared_frame_bytes),
            ("trickle_frame_bytes", self.trickle_frame_bytes),
            ("fetch_bytes", self.fetch_bytes),
            ("big_fetch_bytes", self.big_fetch_bytes),
        ] {
            if !(2..=FRAME_BYTES_MAX).contains(&bytes) {
                bail!("background.{name} must be in 2..={FRAME_BYTES_MAX}");
            }
        }
        if !(1..=1000).contains(&self.trickle_bytes_per_second) {
            bail!("background.trickle_bytes_per_second must be in 1..=1000");
        }
        if !(1..=1024).contains(&self.fetch_pipeline_requests) {
            bail!("background.fetch_pipeline_requests must be in 1..=1024");
        }
        if !(self.big_fetch_mb_per_sec >= 0.0 && self.big_fetch_mb_per_sec.is_finite()) {
            bail!("background.big_fetch_mb_per_sec must be >= 0 (0 = unlimited)");
        }
        if !self.admin_path.starts_with('/') || self.admin_path.contains(char::is_whitespace) {
            bail!("background.admin_path must start with / and hold no white space");
        }
        if !(1..=10_000).contains(&self.backlog_partitions) {
            bail!("background.backlog_partitions must be in 1..=10000");
        }
        if self.backlog_bytes > BACKLOG_BYTES_MAX {
            bail!("background.backlog_bytes must be at most {BACKLOG_BYTES_MAX}");
        }
        if self.reads_backlog() && self.backlog_bytes == 0 {
            bail!("background: fetchers and big-fetch consumers need backlog_bytes > 0");
        }
        if !(PAYLOAD_HEADER_BYTES..=BACKGROUND_MESSAGE_BYTES_MAX / 2)
            .contains(&self.backlog_message_bytes)
        {
            bail!(
                "background.backlog_message_bytes must be in {PAYLOAD_HEADER_BYTES}..={}",
                BACKGROUND_MESSAGE_BYTES_MAX / 2
            );
        }
        Ok(())
    }
}

/// `kind = "create-topics"`: on the "with" side, during the measured phase, CreateTopics of
/// `partitions` partitions through the admin API, each call timed; with `repeat`, the topic
/// is deleted `hold_seconds` after it was created and the next one created `pause_seconds`
/// after that, until the measured phase ends. The idle side creates nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopics {
    /// Partitions of each created topic. Default 1000.
    #[serde(default = "default_churn_partitions")]
    pub partitions: u32,
    /// Delete and create again until the measured phase ends; false: create one topic at
    /// the start of the measured phase. Default true.
    #[serde(default = "yes")]
    pub repeat: bool,
    /// Seconds from a CreateTopics answer to the DeleteTopics of that topic. Default 3.
    #[serde(default = "default_churn_seconds")]
    pub hold_seconds: f64,
    /// Seconds from a DeleteTopics answer to the next CreateTopics. Default 3.
    #[serde(default = "default_churn_seconds")]
    pub pause_seconds: f64,
    /// CreateTopics configs of the created topics (Kafka names).
    #[serde(default)]
    pub topic_configs: BTreeMap<String, String>,
    /// Settings merged into the config file of every started broker (both sides).
    #[serde(default)]
    pub broker_config: BTreeMap<String, toml::Value>,
}

impl CreateTopics {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=10_000).contains(&self.partitions) {
            bail!("background.partitions must be in 1..=10000");
        }
        for (name, seconds) in [
            ("hold_seconds", self.hold_seconds),
            ("pause_seconds", self.pause_seconds),
        ] {
            if !(0.0..=3600.0).contains(&seconds) {
                bail!("background.{name} must be in 0..=3600");
            }
        }
        Ok(())
    }
}

fn default_background_size() -> u64 {
    1024
}
fn default_background_keys() -> u64 {
    1000
}
fn default_background_partitions() -> u32 {
    4
}
fn default_background_acks() -> String {
    "1".to_string()
}
fn one_u32() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_declared_frame_connections() -> u32 {
    24
}
fn default_declared_frame_bytes() -> u64 {
    64 << 20
}
fn default_trickle_connections() -> u32 {
    300
}
fn default_trickle_frame_bytes() -> u64 {
    2 << 20
}
fn default_fetch_pipeline_requests() -> u32 {
    8
}
fn default_fetch_bytes() -> u64 {
    1 << 30
}
fn default_big_fetch_bytes() -> u64 {
    1_000_000_000
}
fn default_idle_connections() -> u32 {
    1000
}
fn default_admin_clients() -> u32 {
    400
}
fn default_admin_path() -> String {
    "/metrics".to_string()
}
fn default_backlog_partitions() -> u32 {
    16
}
fn default_backlog_bytes() -> u64 {
    256 << 20
}
fn default_backlog_message_bytes() -> u64 {
    16 << 10
}
fn default_churn_partitions() -> u32 {
    1000
}
fn default_churn_seconds() -> f64 {
    3.0
}

#[cfg(test)]
mod tests {
    use super::super::tests::MINIMAL;
    use super::*;

    fn parse(section: &str) -> anyhow::Result<Workload> {
        Workload::parse(&format!("{MINIMAL}{section}"))
    }

    fn parse_error(section: &str) -> String {
        format!("{:#}", parse(section).unwrap_err())
    }

    fn maintenance(w: &Workload) -> &Maintenance {
        w.background.as_ref().unwrap().maintenance().unwrap()
    }

    const COMPACTION: &str = r#"
        [background]
        kind = "compaction"
        rate = 2000
        key_count = 500
        idle = "writes"
        topic_configs = { "cleanup.policy" = "compact", "segment.bytes" = "1048576", "min.cleanable.dirty.ratio" = "0.01", "retention.ms" = "60000" }
        broker_config = { "storage.compaction_check_interval_ms" = 1000 }
    "#;

    #[test]
    fn background_section_parses_with_defaults() {
        assert_eq!(Workload::parse(MINIMAL).unwrap().background, None);
        let w = parse(COMPACTION).unwrap();
        let background = w.background.clone().unwrap();
        assert_eq!(background.kind(), BackgroundKind::Compaction);
        assert_eq!(background.idle_mode(), IdleMode::Writes);
        let b = maintenance(&w);
        assert_eq!(b.rate, 2000.0);
        assert_eq!((b.size, b.key_count, b.partitions), (1024, 500, 4));
        assert_eq!(b.acks, "1");
        assert_eq!(
            background.broker_config()["storage.compaction_check_interval_ms"],
            toml::Value::Integer(1000)
        );
        // The idle topic rolls segments the same way but neither compacts nor expires.
        let idle = b.idle_topic_configs();
        assert_eq!(idle["cleanup.policy"], "delete");
        assert_eq!(idle["segment.bytes"], "1048576");
        assert!(!idle.contains_key("retention.ms"));
        let writer = b.writer_workload(&w);
        assert_eq!(writer.producers.rate, Rate::Fixed(2000.0));
        assert_eq!(writer.messages.keys, KeyDistribution::Random);
        assert_eq!(writer.messages.key_space, 500);
        assert_eq!(writer.consumer_count(), 0);
        writer.validate().unwrap();
        // The section survives the JSON result and compares equal.
        let back: Workload = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        let idle_none = COMPACTION.replace("idle = \"writes\"", "");
        assert_eq!(
            maintenance(&parse(&idle_none).unwrap()).idle,
            IdleMode::None
        );
    }

    #[test]
    fn bad_background_sections_are_rejected() {
        let retention = r#"
            [background]
            kind = "retention"
            rate = 1000
            topic_configs = { "retention.bytes" = "1048576" }
        "#;
        parse(retention).unwrap();
        let cases = [
            (COMPACTION.replace("\"compact\"", "\"delete\""), "compact"),
            (
                COMPACTION.replace("rate = 2000", "rate = 0"),
                "background.rate",
            ),
            (
                COMPACTION.replace("key_count = 500", "key_count = 0"),
                "key_count",
            ),
            (
                COMPACTION.replace("idle = \"writes\"", "idle = \"some\""),
                "unknown variant",
            ),
            (
                COMPACTION.replace("kind = \"compaction\"", "kind = \"both\""),
                "unknown variant",
            ),
            (COMPACTION.replace("kind = \"compaction\"", ""), "kind"),
            (
                COMPACTION.replace("rate = 2000", "rate = 2000\nsize = 8"),
                "background.size",
            ),
            (
                COMPACTION.replace("rate = 2000", "rate = 2000\nacks = \"2\""),
                "background.acks",
            ),
            (
                COMPACTION.replace("rate = 2000", "rate = 2000\nratee = 1"),
                "unknown field",
            ),
            (
                COMPACTION.replace("\"storage.compaction_check_interval_ms\"", "interval"),
                "SECTION.FIELD",
            ),
            (
                retention.replace("\"retention.bytes\" = \"1048576\"", ""),
                "retention.ms or",
            ),
            (
                retention.replace("\"1048576\"", "\"-1\", \"retention.ms\" = \"-1\""),
                "retention.ms or",
            ),
            (
                retention.replace("{ ", "{ \"cleanup.policy\" = \"compact\", "),
                "include delete",
            ),
        ];
        for (section, expected) in cases {
            let err = parse_error(&section);
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
        let probe = MINIMAL.replace("\"max\"", "\"50%\"");
        let err = format!(
            "{:#}",
            Workload::parse(&format!("{probe}{retention}")).unwrap_err()
        );
        assert!(err.contains("NN%"), "{err}");
    }

    #[test]
    fn hostile_section_parses_with_the_issue_14_defaults() {
        let w = parse("[background]\nkind = \"hostile\"\n").unwrap();
        let background = w.background.clone().unwrap();
        assert_eq!(background.kind(), BackgroundKind::Hostile);
        assert_eq!(background.idle_mode(), IdleMode::None);
        assert!(background.maintenance().is_none());
        let Background::Hostile(h) = background else {
            panic!("hostile expected")
        };
        assert_eq!(
            (h.declared_frame_connections, h.declared_frame_bytes),
            (24, 64 << 20)
        );
        assert_eq!(
            (h.trickle_connections, h.trickle_frame_bytes),
            (300, 2 << 20)
        );
        assert_eq!(h.trickle_bytes_per_second, 1);
        assert_eq!(
            (
                h.fetch_pipeline_connections,
                h.fetch_pipeline_requests,
                h.fetch_bytes
            ),
            (1, 8, 1 << 30)
        );
        assert_eq!(
            (h.big_fetch_consumers, h.big_fetch_bytes),
            (1, 1_000_000_000)
        );
        assert_eq!(h.big_fetch_mb_per_sec, 0.0);
        assert_eq!((h.idle_connections, h.admin_clients), (1000, 400));
        assert_eq!(h.admin_path, "/metrics");
        assert_eq!((h.backlog_partitions, h.backlog_bytes), (16, 256 << 20));
        assert!(h.reconnect && h.reads_backlog());
        assert_eq!(h.kafka_connections(), 24 + 300 + 1 + 1000);
        let back: Workload = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn bad_hostile_sections_are_rejected() {
        let section = |settings: &str| format!("[background]\nkind = \"hostile\"\n{settings}\n");
        let nothing = "declared_frame_connections = 0\ntrickle_connections = 0\n\
                       fetch_pipeline_connections = 0\nbig_fetch_consumers = 0\n\
                       idle_connections = 0\nadmin_clients = 0";
        let cases = [
            (nothing, "every hostile load is 0"),
            ("idle_connections = 30000", "at most 20000 connections"),
            ("declared_frame_bytes = 1", "declared_frame_bytes"),
            ("trickle_frame_bytes = 4294967296", "trickle_frame_bytes"),
            ("trickle_bytes_per_second = 0", "trickle_bytes_per_second"),
            ("fetch_pipeline_requests = 0", "fetch_pipeline_requests"),
            ("big_fetch_mb_per_sec = -1", "big_fetch_mb_per_sec"),
            ("admin_path = \"metrics\"", "admin_path"),
            ("backlog_partitions = 0", "backlog_partitions"),
            ("backlog_bytes = 0", "need backlog_bytes"),
            ("backlog_message_bytes = 8", "backlog_message_bytes"),
            ("rate = 1000", "unknown field"),
            ("broker_config = { limit = 1 }", "SECTION.FIELD"),
        ];
        for (settings, expected) in cases {
            let err = parse_error(&section(settings));
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
        // Without fetchers the backlog may be empty.
        parse(&section(
            "backlog_bytes = 0\nfetch_pipeline_connections = 0\nbig_fetch_consumers = 0",
        ))
        .unwrap();
    }

    #[test]
    fn create_topics_section_parses_and_validates() {
        let w = parse("[background]\nkind = \"create-topics\"\n").unwrap();
        let Some(Background::CreateTopics(c)) = &w.background else {
            panic!("create-topics expected")
        };
        assert_eq!(c.partitions, 1000);
        assert!(c.repeat);
        assert_eq!((c.hold_seconds, c.pause_seconds), (3.0, 3.0));
        assert_eq!(
            w.background.as_ref().unwrap().kind().name(),
            "create-topics"
        );
        let back: Workload = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        let section =
            |settings: &str| format!("[background]\nkind = \"create-topics\"\n{settings}\n");
        for (settings, expected) in [
            ("partitions = 0", "background.partitions"),
            ("hold_seconds = -1", "hold_seconds"),
            ("pause_seconds = 4000", "pause_seconds"),
            ("interval = 3", "unknown field"),
        ] {
            let err = parse_error(&section(settings));
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
        let err = parse_error("[background]\nkind = \"create_topics\"\n");
        assert!(err.contains("unknown variant"), "{err}");
    }
}
