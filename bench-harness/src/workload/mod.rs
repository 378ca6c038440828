//! Workload files: an OpenMessaging-Benchmark-style description of one benchmark, as TOML.
//!
//! Owns: the schema, its defaults, and validation (every unknown key is an error, so a typo
//! never silently falls back to a default). Imports nothing from this crate.
//! Invariant: a `Workload` returned by `Workload::parse` has passed `validate()`.
//! The optional `[background]` section (what runs beside the measured load on the "with"
//! side of each repeat) is in `background`.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

mod background;
pub use background::{
    Background, BackgroundKind, CreateTopics, HOSTILE_CONNECTIONS_MAX, Hostile, IdleMode,
    Maintenance,
};

/// Bytes at the front of every message payload: send timestamp, run tag, producer index.
pub const PAYLOAD_HEADER_BYTES: u64 = 16;
const MESSAGE_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Short name used in file names and reports, e.g. "max-throughput-1kib".
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub topics: Topics,
    pub messages: Messages,
    pub producers: Producers,
    #[serde(default)]
    pub consumers: Consumers,
    pub duration: Duration,
    /// What runs beside the measured load on the "with" side of each repeat (maintenance,
    /// hostile clients, topic creation), against the same load alone. Absent: a plain run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Background>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Number of topics; each gets `partitions` partitions. Default 1.
    #[serde(default = "one")]
    pub count: u32,
    pub partitions: u32,
    /// Replication factor asked of CreateTopics. Default 1.
    #[serde(default = "one_i16")]
    pub replication_factor: i16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    /// Payload size in bytes: a number, `{ min = A, max = B }` (uniform) or
    /// `{ weighted = [[size, weight], ...] }`.
    pub size: MessageSize,
    #[serde(default)]
    pub keys: KeyDistribution,
    /// Distinct keys for `keys = "random"` or `"round_robin"`. Default 10000.
    #[serde(default = "default_key_space")]
    pub key_space: u64,
    #[serde(default)]
    pub payload: PayloadKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSize", into = "RawSize")]
pub enum MessageSize {
    Fixed(u64),
    Uniform { min: u64, max: u64 },
    Weighted(Vec<(u64, f64)>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a size in bytes, { min = A, max = B } or { weighted = [[size, weight], ...] }"
)]
enum RawSize {
    Fixed(u64),
    Uniform { min: u64, max: u64 },
    Weighted { weighted: Vec<(u64, f64)> },
}

impl TryFrom<RawSize> for MessageSize {
    type Error = String;
    fn try_from(raw: RawSize) -> Result<Self, String> {
        Ok(match raw {
            RawSize::Fixed(n) => MessageSize::Fixed(n),
            RawSize::Uniform { min, max } => MessageSize::Uniform { min, max },
            RawSize::Weighted { weighted } => MessageSize::Weighted(weighted),
        })
    }
}

impl From<MessageSize> for RawSize {
    fn from(size: MessageSize) -> RawSize {
        match size {
            MessageSize::Fixed(n) => RawSize::Fixed(n),
            MessageSize::Uniform { min, max } => RawSize::Uniform { min, max },
            MessageSize::Weighted(weighted) => RawSize::Weighted { weighted },
        }
    }
}

impl MessageSize {
    pub fn min_bytes(&self) -> u64 {
        match self {
            MessageSize::Fixed(n) => *n,
            MessageSize::Uniform { min, .. } => *min,
            MessageSize::Weighted(w) => w.iter().map(|(s, _)| *s).min().unwrap_or(0),
        }
    }

    pub fn max_bytes(&self) -> u64 {
        match self {
            MessageSize::Fixed(n) => *n,
            MessageSize::Uniform { max, .. } => *max,
            MessageSize::Weighted(w) => w.iter().map(|(s, _)| *s).max().unwrap_or(0),
        }
    }

    /// Expected payload size, bytes.
    pub fn mean_bytes(&self) -> f64 {
        match self {
            MessageSize::Fixed(n) => *n as f64,
            MessageSize::Uniform { min, max } => (*min + *max) as f64 / 2.0,
            MessageSize::Weighted(w) => {
                let total: f64 = w.iter().map(|(_, weight)| weight).sum();
                w.iter().map(|(s, weight)| *s as f64 * weight).sum::<f64>() / total
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDistribution {
    /// No key: librdkafka's sticky partitioner spreads batches over partitions.
    #[default]
    None,
    /// A uniformly random key out of `key_space` for every message.
    Random,
    /// Keys 0, 1, ..., key_space-1, 0, ... in turn.
    RoundRobin,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Incompressible bytes.
    #[default]
    Random,
    /// Words from a small vocabulary: compresses about 3-5x, like JSON logs.
    Text,
}

/// Messages per second summed over all producers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRate", into = "RawRate")]
pub enum Rate {
    /// As fast as the producers can go (backpressured by librdkafka's queue).
    Max,
    /// A fixed rate, messages per second.
    Fixed(f64),
    /// A fraction (0, 1] of the maximum rate, found by a max-rate probe before the run.
    FractionOfMax(f64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a rate: \"max\", messages per second, or \"NN%\" of max"
)]
enum RawRate {
    Number(f64),
    Text(String),
}

impl TryFrom<RawRate> for Rate {
    type Error = String;
    fn try_from(raw: RawRate) -> Result<Rate, String> {
        match raw {
            RawRate::Number(n) if n > 0.0 && n.is_finite() => Ok(Rate::Fixed(n)),
            RawRate::Number(n) => Err(format!("rate {n} must be a positive number")),
            RawRate::Text(text) => parse_rate_text(&text),
        }
    }
}

fn parse_rate_text(text: &str) -> Result<Rate, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    if let Ok(number) = text.parse::<f64>() {
        return RawRate::Number(number).try_into();
    }
    if let Some(percent) = text.strip_suffix('%') {
        let percent: f64 = percent
            .trim()
            .parse()
            .map_err(|_| format!("rate \"{text}\": expected a percentage such as \"50%\""))?;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(format!("rate \"{text}\": percentage must be in (0, 100]"));
        }
        return Ok(Rate::FractionOfMax(percent / 100.0));
    }
    Err(format!(
        "rate \"{text}\": expected \"max\", \"NN%\" or a number"
    ))
}

impl From<Rate> for RawRate {
    fn from(rate: Rate) -> RawRate {
        match rate {
            Rate::Max => RawRate::Text("max".to_string()),
            Rate::Fixed(n) => RawRate::Number(n),
            Rate::FractionOfMax(f) => RawRate::Text(format!("{}%", f * 100.0)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Producers {
    /// Producer threads (each its own librdkafka client) per topic. Default 1.
    #[serde(default = "one")]
    pub per_topic: u32,
    pub rate: Rate,
    /// librdkafka `acks`: "0", "1" or "all". Default "all".
    #[serde(default = "default_acks")]
    pub acks: String,
    /// librdkafka `linger.ms`. Default 1.
    #[serde(default = "one_f64")]
    pub linger_ms: f64,
    /// librdkafka `batch.size`, bytes. Default 131072.
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
    /// librdkafka `compression.type`: none, gzip, snappy, lz4, zstd. Default none.
    #[serde(default = "default_compression")]
    pub compression_type: String,
    /// Any other librdkafka producer property, passed through verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumers {
    /// Independent subscriptions per topic; each one reads every message. Default 1.
    #[serde(default = "one")]
    pub subscriptions_per_topic: u32,
    /// Consumer threads sharing one subscription's partitions. 0 = no consumers. Default 1.
    #[serde(default = "one")]
    pub per_subscription: u32,
    /// true: `subscribe()` with a consumer group per subscription. false: each consumer is
    /// `assign()`ed a fixed share of the partitions (no group coordinator needed). Default false.
    #[serde(default)]
    pub consumer_groups: bool,
    /// librdkafka `fetch.wait.max.ms`. Default 100.
    #[serde(default = "default_fetch_wait")]
    pub fetch_wait_max_ms: u64,
    /// librdkafka `fetch.min.bytes`. Default 1.
    #[serde(default = "one_u64")]
    pub fetch_min_bytes: u64,
    /// Any other librdkafka consumer property, passed through verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl Default for Consumers {
    fn default() -> Self {
        Consumers {
            subscriptions_per_topic: 1,
            per_subscription: 1,
            consumer_groups: false,
            fetch_wait_max_ms: default_fetch_wait(),
            fetch_min_bytes: 1,
            properties: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duration {
    /// Seconds of load before measurement starts (not recorded). Default 5.
    #[serde(default = "default_warmup")]
    pub warmup_seconds: f64,
    /// Seconds of recorded load.
    pub measure_seconds: f64,
    /// Catch-up read: produce this many bytes at max rate before any consumer starts;
    /// the measured phase then starts with the consumers. Default 0 (no backlog).
    #[serde(default)]
    pub backlog_bytes: u64,
    /// End the measured phase early once consumers have read everything produced.
    /// Default false.
    #[serde(default)]
    pub stop_when_caught_up: bool,
    /// Length of the max-rate probe that resolves `rate = "NN%"`, seconds. Default 10.
    #[serde(default = "default_probe")]
    pub probe_seconds: f64,
}

fn one() -> u32 {
    1
}
fn one_i16() -> i16 {
    1
}
fn one_u64() -> u64 {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn default_key_space() -> u64 {
    10_000
}
fn default_acks() -> String {
    "all".to_string()
}
pub(crate) fn default_batch_size() -> u64 {
    131_072
}
pub(crate) fn default_compression() -> String {
    "none".to_string()
}
fn default_fetch_wait() -> u64 {
    100
}
fn default_warmup() -> f64 {
    5.0
}
fn default_probe() -> f64 {
    10.0
}

impl Workload {
    pub fn load(path: &Path) -> anyhow::Result<Workload> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read workload {}", path.display()))?;
        Workload::parse(&text).with_context(|| format!("invalid workload {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Workload> {
        let workload: Workload = toml::from_str(text)?;
        workload.validate()?;
        Ok(workload)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.name.is_empty() || !self.name.chars().all(is_name_char) {
            bail!(
                "name {:?} must be non-empty and use only [A-Za-z0-9._-]",
                self.name
            );
        }
        if !(1..=1000).contains(&self.topics.count) {
            bail!("topics.count must be in 1..=1000");
        }
        if !(1..=10_000).contains(&self.topics.partitions) {
            bail!("topics.partitions must be in 1..=10000");
        }
        self.validate_messages()?;
        if !(1..=256).contains(&self.producers.per_topic) {
            bail!("producers.per_topic must be in 1..=256");
        }
        if !["0", "1", "-1", "all"].contains(&self.producers.acks.as_str()) {
            bail!("producers.acks must be \"0\", \"1\" or \"all\"");
        }
        let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
        if !codecs.contains(&self.producers.compression_type.as_str()) {
            bail!("producers.compression_type must be one of {codecs:?}");
        }
        if self.consumers.per_subscription > 256 || self.consumers.subscriptions_per_topic > 16 {
            bail!("consumers: at most 16 subscriptions per topic and 256 consumers each");
        }
        let d = &self.duration;
        if !(d.warmup_seconds >= 0.0 && d.measure_seconds > 0.0 && d.probe_seconds > 0.0) {
            bail!("duration: warmup_seconds >= 0, measure_seconds > 0 and probe_seconds > 0");
        }
        if (d.backlog_bytes > 0 || d.stop_when_caught_up) && self.consumer_count() == 0 {
            bail!("duration.backlog_bytes and stop_when_caught_up need consumers");
        }
        if let Some(background) = &self.background {
            background.validate(self)?;
        }
        Ok(())
    }

    fn validate_messages(&self) -> anyhow::Result<()> {
        let size = &self.messages.size;
        if size.min_bytes() < PAYLOAD_HEADER_BYTES || size.max_bytes() > MESSAGE_BYTES_MAX {
            bail!(
                "messages.size must be in {PAYLOAD_HEADER_BYTES}..={MESSAGE_BYTES_MAX} bytes \
                 (the payload carries a {PAYLOAD_HEADER_BYTES}-byte timestamp header)"
            );
        }
        match size {
            MessageSize::Uniform { min, max } if min > max => {
                bail!("messages.size: min must not exceed max")
            }
            MessageSize::Weighted(w)
                if w.is_empty() || w.iter().any(|(_, x)| x.is_nan() || *x < 0.0) =>
            {
                bail!("messages.size.weighted needs at least one [size, weight >= 0] pair")
            }
            MessageSize::Weighted(w) if w.iter().map(|(_, x)| x).sum::<f64>() <= 0.0 => {
                bail!("messages.size.weighted: weights must not all be zero")
            }
            _ => {}
        }
        if self.messages.keys != KeyDistribution::None && self.messages.key_space == 0 {
            bail!("messages.key_space must be at least 1 for keyed messages");
        }
        Ok(())
    }

    pub fn producer_count(&self) -> u32 {
        self.topics.count * self.producers.per_topic
    }

    pub fn consumer_count(&self) -> u32 {
        self.topics.count * self.consumers.subscriptions_per_topic * self.consumers.per_subscription
    }

    pub fn has_backlog(&self) -> bool {
        self.duration.backlog_bytes > 0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest valid workload; other modules' tests build on it too.
    pub(crate) const MINIMAL: &str = r#"
        name = "t"
        [topics]
        partitions = 4
        [messages]
        size = 1024
        [producers]
        rate = "max"
        [duration]
        measure_seconds = 10
    "#;

    #[test]
    fn minimal_workload_gets_defaults() {
        let w = Workload::parse(MINIMAL).unwrap();
        assert_eq!(w.topics.count, 1);
        assert_eq!(w.messages.size, MessageSize::Fixed(1024));
        assert_eq!(w.messages.keys, KeyDistribution::None);
        assert_eq!(w.producers.rate, Rate::Max);
        assert_eq!(w.producers.acks, "all");
        assert_eq!(w.consumers.per_subscription, 1);
        assert!(!w.consumers.consumer_groups);
        assert_eq!(w.duration.warmup_seconds, 5.0);
        assert_eq!(w.producer_count(), 1);
        assert_eq!(w.consumer_count(), 1);
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate_text("max"), Ok(Rate::Max));
        assert_eq!(parse_rate_text(" 50% "), Ok(Rate::FractionOfMax(0.5)));
        assert!(parse_rate_text("0%").is_err());
        assert!(parse_rate_text("150%").is_err());
        assert!(parse_rate_text("fast").is_err());
        assert_eq!(parse_rate_text("2500"), Ok(Rate::Fixed(2500.0)));
        assert!(parse_rate_text("-1").is_err());
        let w = Workload::parse(&MINIMAL.replace("\"max\"", "25000")).unwrap();
        assert_eq!(w.producers.rate, Rate::Fixed(25000.0));
        assert!(Workload::parse(&MINIMAL.replace("\"max\"", "0")).is_err());
    }

    #[test]
    fn size_distributions_parse() {
        let uniform = MINIMAL.replace("size = 1024", "size = { min = 100, max = 300 }");
        let w = Workload::parse(&uniform).unwrap();
        assert_eq!(w.messages.size, MessageSize::Uniform { min: 100, max: 300 });
        assert_eq!(w.messages.size.mean_bytes(), 200.0);
        let weighted = MINIMAL.replace(
            "size = 1024",
            "size = { weighted = [[100, 3.0], [1000, 1.0]] }",
        );
        let w = Workload::parse(&weighted).unwrap();
        assert_eq!(w.messages.size.min_bytes(), 100);
        assert_eq!(w.messages.size.max_bytes(), 1000);
        assert_eq!(w.messages.size.mean_bytes(), 325.0);
    }

    #[test]
    fn bad_workloads_are_rejected_with_reasons() {
        let cases = [
            (
                MINIMAL.replace("size = 1024", "size = 8"),
                "timestamp header",
            ),
            (
                MINIMAL.replace("size = 1024", "size = { min = 9, max = 1 }"),
                "messages.size",
            ),
            (
                MINIMAL.replace("partitions = 4", "partitions = 0"),
                "partitions",
            ),
            (MINIMAL.replace("name = \"t\"", "name = \"a b\""), "name"),
            (
                MINIMAL.replace("[producers]", "[producers]\nacks = \"2\""),
                "acks",
            ),
            (
                MINIMAL.replace("[producers]", "[producers]\ncompression_type = \"brotli\""),
                "compression_type",
            ),
            (
                MINIMAL.replace("[producers]", "[producers]\nlinger = 5"),
                "unknown field",
            ),
            (
                MINIMAL.replace(
                    "measure_seconds = 10",
                    "measure_seconds = 10\nbacklog_bytes = 1",
                ) + "[consumers]\nper_subscription = 0\n",
                "need consumers",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", Workload::parse(&text).unwrap_err());
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let w = Workload::load(&path).unwrap();
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                assert_eq!(w.name, stem, "workload name must match its file name");
                count += 1;
            }
        }
        assert!(
            count >= 10,
            "expected the ten shipped workloads, found {count}"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let w = Workload::parse(&MINIMAL.replace("\"max\"", "\"50%\"")).unwrap();
        let json = serde_json::to_string(&w).unwrap();
        let back: Workload = serde_json::from_str(&json).unwrap();
        assert_eq!(w, back);
    }
}
