//! `shardlog consume`: print records as they arrive, like kafka-console-consumer.sh.
//!
//! Owns: the `consume` arguments, record formatting (text fields or JSON lines) and the stop
//! conditions (max messages, idle timeout, Ctrl-C/SIGTERM). May import: rdkafka, signal-hook,
//! `super::{client, error, output}`.
//! Invariant: in a group, an offset is stored only after its record was written to stdout, and
//! every way of stopping short of a second Ctrl-C commits the stored offsets before leaving.

use super::client::ConnectArgs;
use super::error::CliError;
use super::output::{self, Format};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one poll blocks; bounds how late Ctrl-C and the idle timeout are noticed.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Exit status after a second Ctrl-C (128 + SIGINT), which skips the commit.
const FORCED_EXIT_CODE: i32 = 130;
/// Group session settings: short enough that a killed consumer's partitions move on soon.
const SESSION_TIMEOUT_MS: &str = "10000";
const HEARTBEAT_INTERVAL_MS: &str = "3000";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Field {
    Key,
    Partition,
    Offset,
    Timestamp,
    Headers,
}

/// Where to start reading one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

fn parse_start_offset(text: &str) -> Result<StartOffset, String> {
    match text {
        "earliest" | "beginning" => Ok(StartOffset::Earliest),
        "latest" | "end" => Ok(StartOffset::Latest),
        number => match number.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(StartOffset::At(offset)),
            _ => Err(format!(
                "expected earliest, latest or an offset >= 0, got '{text}'"
            )),
        },
    }
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms` (global flags
    /// of `shardlog`, accepted before or after the subcommand).
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset when there is no committed offset (default: latest).
    #[arg(long)]
    pub from_beginning: bool,
    /// Consumer group to join; offsets are committed as records are printed and on exit.
    #[arg(long)]
    pub group: Option<String>,
    /// Read only this partition (manual assignment, no group rebalancing).
    #[arg(long)]
    pub partition: Option<i32>,
    /// With --partition: earliest, latest or an offset [default: latest, or earliest with
    /// --from-beginning].
    #[arg(long, requires = "partition", conflicts_with = "from_beginning", value_parser = parse_start_offset)]
    pub offset: Option<StartOffset>,
    /// Stop after this many records.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: Option<u64>,
    /// Stop when no record arrives for this many milliseconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: Option<u64>,
    /// Fields to print before the value, comma-separated (text format).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub print: Vec<Field>,
    /// text: the value, after any --print fields; json: one object per record and line.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

fn create_consumer(args: &ConsumeArgs) -> Result<BaseConsumer, CliError> {
    let mut config = args.connect.client_config();
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    config
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", reset)
        .set("enable.auto.offset.store", "false");
    match &args.group {
        Some(group) => config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("session.timeout.ms", SESSION_TIMEOUT_MS)
            .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
            .set("partition.assignment.strategy", "range,roundrobin"),
        // librdkafka needs a group id even for manual assignment; this one never joins or
        // commits, so the broker never sees it as a group.
        None => config
            .set(
                "group.id",
                format!("shardlog-cli-consume-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false"),
    };
    config
        .create::<BaseConsumer>()
        .map_err(|e| args.connect.error("create consumer", e))
}

/// Subscribes (group, no --partition) or assigns partitions explicitly.
fn start(consumer: &BaseConsumer, args: &ConsumeArgs, partitions: &[i32]) -> Result<(), CliError> {
    if args.group.is_some() && args.partition.is_none() {
        return consumer
            .subscribe(&[&args.topic])
            .map_err(|e| args.connect.error("subscribe", e));
    }
    let default_start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    let chosen: Vec<i32> = match args.partition {
        Some(partition) if partitions.contains(&partition) => vec![partition],
        Some(partition) => {
            return Err(CliError::InvalidArgument(format!(
                "topic '{}' has no partition {partition} (it has {})",
                args.topic,
                partitions.len()
            )));
        }
        None => partitions.to_vec(),
    };
    let start = match args.offset {
        Some(StartOffset::Earliest) => Offset::Beginning,
        Some(StartOffset::Latest) => Offset::End,
        Some(StartOffset::At(offset)) => Offset::Offset(offset),
        // In a group, a manually assigned partition resumes from the committed offset.
        None if args.group.is_some() => Offset::Stored,
        None => default_start,
    };
    for partition in chosen {
        assignment
            .add_partition_offset(&args.topic, partition, start)
            .map_err(|e| args.connect.error("assign", e))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| args.connect.error("assign", e))
}

fn topic_partitions(consumer: &BaseConsumer, args: &ConsumeArgs) -> Result<Vec<i32>, CliError> {
    let timeout = args.connect.request_timeout();
    let metadata = args
        .connect
        .retry(|| consumer.fetch_metadata(Some(&args.topic), timeout))
        .map_err(|e| args.connect.error("fetch metadata", e))?;
    let topic = metadata.topics().iter().find(|t| t.name() == args.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            Ok(ids)
        }
        _ => Err(CliError::UnknownTopic(args.topic.clone())),
    }
}

fn install_signal_handlers() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for a graceful stop; a second one exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, FORCED_EXIT_CODE, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| CliError::io("installing signal handlers", e))?;
    }
    Ok(stop)
}

pub fn run(args: &ConsumeArgs) -> Result<(), CliError> {
    let stop = install_signal_handlers()?;
    args.connect.probe()?;
    let consumer = create_consumer(args)?;
    let partitions = topic_partitions(&consumer, args)?;
    start(&consumer, args, &partitions)?;
    let outcome = consume_loop(&consumer, args, &stop);
    if args.group.is_some() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => eprintln!("warning: final offset commit failed: {error}"),
        }
    }
    // Dropping the consumer closes it, which sends LeaveGroup.
    drop(consumer);
    let count = outcome?;
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

fn consume_loop(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    stop: &AtomicBool,
) -> Result<u64, CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let idle_timeout = args.timeout_ms.map(Duration::from_millis);
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let mut last_error = String::new();
    while !stop.load(Ordering::Relaxed) && args.max_messages.is_none_or(|max| count < max) {
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(message)) => {
                let line = format_record(&message, args);
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    // stdout closed (e.g. piped into `head`): stop quietly.
                    break;
                }
                count += 1;
                last_record = Instant::now();
                if args.group.is_some()
                    && let Err(error) = consumer.store_offset_from_message(&message)
                {
                    eprintln!("warning: cannot store offset: {error}");
                }
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                return Err(args.connect.code_error("consume", code));
            }
            Some(Err(error)) => {
                let text = error.to_string();
                if text != last_error {
                    eprintln!("warning: {text}");
                    last_error = text;
                }
            }
            None => {}
        }
        if idle_timeout.is_some_and(|timeout| last_record.elapsed() >= timeout) {
            break;
        }
    }
    Ok(count)
}

fn lossy(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn headers_of(message: &BorrowedMessage<'_>) -> Vec<(String, Option<String>)> {
    match message.headers() {
        Some(headers) => headers
            .iter()
            .map(|h| (h.key.to_string(), lossy(h.value)))
            .collect(),
        None => Vec::new(),
    }
}

fn format_record(message: &BorrowedMessage<'_>, args: &ConsumeArgs) -> String {
    let record = RecordView {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: lossy(message.key()),
        value: lossy(message.payload()),
        headers: headers_of(message),
    };
    match args.format {
        Format::Json => record.to_json(&args.topic).to_string(),
        Format::Text => record.to_text(&args.print),
    }
}

/// The printable parts of one record, decoded as UTF-8 (invalid bytes become U+FFFD).
pub struct RecordView {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
}

impl RecordView {
    pub fn to_text(&self, fields: &[Field]) -> String {
        let mut parts: Vec<String> = fields
            .iter()
            .map(|field| match field {
                Field::Key => format!("key:{}", self.key.as_deref().unwrap_or("null")),
                Field::Partition => format!("partition:{}", self.partition),
                Field::Offset => format!("offset:{}", self.offset),
                Field::Timestamp => match self.timestamp_ms {
                    Some(ms) => format!("timestamp:{}", output::format_timestamp_ms(ms)),
                    None => "timestamp:-".to_string(),
                },
                Field::Headers => {
                    let pairs: Vec<String> = self
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
                        .collect();
                    format!("headers:{}", pairs.join(","))
                }
            })
            .collect();
        parts.push(self.value.clone().unwrap_or_else(|| "null".to_string()));
        parts.join("\t")
    }

    pub fn to_json(&self, topic: &str) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        json!({
            "topic": topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp_ms,
            "key": self.key,
            "value": self.value,
            "headers": headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordView {
        RecordView {
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some("alice".into()),
            value: Some("hello".into()),
            headers: vec![("trace".into(), Some("abc".into())), ("empty".into(), None)],
        }
    }

    #[test]
    fn text_prints_requested_fields_then_the_value() {
        let record = sample();
        assert_eq!(record.to_text(&[]), "hello");
        assert_eq!(
            record.to_text(&[Field::Partition, Field::Offset, Field::Key]),
            "partition:2\toffset:41\tkey:alice\thello"
        );
        assert_eq!(
            record.to_text(&[Field::Timestamp, Field::Headers]),
            "timestamp:2023-11-14T22:13:20.000Z\theaders:trace=abc,empty=null\thello"
        );
    }

    #[test]
    fn json_has_every_field() {
        let value = sample().to_json("orders");
        assert_eq!(value["topic"], "orders");
        assert_eq!(value["partition"], 2);
        assert_eq!(value["offset"], 41);
        assert_eq!(value["key"], "alice");
        assert_eq!(value["headers"][1]["value"], Value::Null);
    }

    #[test]
    fn start_offsets_parse() {
        assert_eq!(parse_start_offset("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start_offset("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start_offset("17"), Ok(StartOffset::At(17)));
        assert!(parse_start_offset("-3").is_err());
        assert!(parse_start_offset("soon").is_err());
    }
}
