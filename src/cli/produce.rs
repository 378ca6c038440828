//! `shardlog produce`: one record per input line, like kafka-console-producer.sh.
//!
//! Owns: the `produce` arguments, line splitting (`KEY<sep>VALUE`), per-line error reporting and
//! the delivery tally. May import: rdkafka, `super::{client, error, output, partitioner}`.
//! Invariant: every input line ends as exactly one of delivered or failed; the command exits
//! non-zero when any failed.

use super::client::ConnectArgs;
use super::error::CliError;
use super::output::{self, Format};
use super::partitioner::{CliPartitioner, PartitionerKind};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long `send` waits for room in librdkafka's queue before trying again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(100);
/// How long to wait for a new topic's partitions to get leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-line errors kept for the JSON summary; later ones are only counted.
const ERRORS_KEPT_MAX: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Acks {
    /// Wait for the full in-sync replica set.
    All,
    /// Wait for the leader only.
    #[value(name = "1")]
    Leader,
    /// Do not wait for an acknowledgement.
    #[value(name = "0")]
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Filled from the top-level `--bootstrap-server` / `--request-timeout-ms` (global flags
    /// of `shardlog`, accepted before or after the subcommand).
    #[arg(skip)]
    pub connect: ConnectArgs,
    /// Topic to write to (created on first use when the broker auto-creates topics).
    #[arg(long)]
    pub topic: String,
    /// Read lines from this file instead of standard input.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value; lines without SEP fail.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Acknowledgement to wait for.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Batch compression codec.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// How long to wait for more records before sending a batch, in milliseconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=900_000))]
    pub linger_ms: u64,
    /// Largest batch per partition, in bytes.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=2_147_483_647))]
    pub batch_size: u64,
    /// How records are spread over partitions.
    #[arg(long, value_enum, default_value_t)]
    pub partitioner: PartitionerKind,
    /// Give up on a record that is not acknowledged within this many milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub delivery_timeout_ms: u64,
    /// Summary on stdout as JSON instead of a line on stderr.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Counts deliveries and remembers failures; librdkafka calls `delivery` from `poll`/`flush`.
struct DeliveryTally {
    delivered: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<(u64, String)>>,
    partitioner: CliPartitioner,
}

impl DeliveryTally {
    fn fail(&self, line: u64, message: String) {
        eprintln!("line {line}: {message}");
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < ERRORS_KEPT_MAX
        {
            errors.push((line, message));
        }
    }
}

impl ClientContext for DeliveryTally {}

impl ProducerContext<CliPartitioner> for DeliveryTally {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => self.fail(line as u64, error.to_string()),
        }
    }

    fn get_custom_partitioner(&self) -> Option<&CliPartitioner> {
        Some(&self.partitioner)
    }
}

type LineProducer = BaseProducer<DeliveryTally, CliPartitioner>;

fn create_producer(args: &ProduceArgs) -> Result<LineProducer, CliError> {
    let acks = match args.acks {
        Acks::All => "all",
        Acks::Leader => "1",
        Acks::None => "0",
    };
    let compression = match args.compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    };
    let mut config = args.connect.client_config();
    config
        .set("allow.auto.create.topics", "true")
        .set("acks", acks)
        .set("compression.type", compression)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("message.timeout.ms", args.delivery_timeout_ms.to_string())
        .set("enable.idempotence", "false")
        // The custom partitioner sees records without a key only when sticky partitioning is off.
        .set("sticky.partitioning.linger.ms", "0");
    let tally = DeliveryTally {
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
        partitioner: CliPartitioner::new(args.partitioner),
    };
    config
        .create_with_context(tally)
        .map_err(|e| args.connect.error("create producer", e))
}

/// Waits until Metadata lists the topic with partitions; auto-creates it where the broker allows.
fn wait_for_topic(producer: &LineProducer, args: &ProduceArgs) -> Result<(), CliError> {
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        let timeout = args.connect.request_timeout();
        let metadata = args
            .connect
            .retry(|| producer.client().fetch_metadata(Some(&args.topic), timeout))
            .map_err(|e| args.connect.error("fetch metadata", e))?;
        let topic = metadata.topics().iter().find(|t| t.name() == args.topic);
        let code = topic.and_then(|t| t.error()).map(RDKafkaErrorCode::from);
        let ready = topic.is_some_and(|t| !t.partitions().is_empty());
        match code {
            None if ready => return Ok(()),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition)
            | Some(RDKafkaErrorCode::UnknownTopic) => {
                return Err(CliError::UnknownTopic(args.topic.clone()));
            }
            Some(RDKafkaErrorCode::InvalidTopic) => {
                return Err(CliError::InvalidArgument(format!(
                    "invalid topic name '{}'",
                    args.topic
                )));
            }
            _ if Instant::now() >= deadline => {
                let why = code.map_or("no partitions".to_string(), |c| c.to_string());
                return Err(CliError::failed(
                    "wait for topic",
                    format!("{}: {why}", args.topic),
                ));
            }
            _ => std::thread::sleep(QUEUE_FULL_BACKOFF),
        }
    }
}

/// Splits a line into key and value; without a separator the whole line is the value.
pub fn split_line<'a>(
    line: &'a [u8],
    separator: Option<&[u8]>,
) -> Result<(Option<&'a [u8]>, &'a [u8]), String> {
    let Some(separator) = separator else {
        return Ok((None, line));
    };
    let at = line
        .windows(separator.len())
        .position(|w| w == separator)
        .ok_or_else(|| {
            format!(
                "no key separator '{}' in line",
                String::from_utf8_lossy(separator)
            )
        })?;
    Ok((Some(&line[..at]), &line[at + separator.len()..]))
}

fn send_line(producer: &LineProducer, topic: &str, number: u64, key: Option<&[u8]>, value: &[u8]) {
    let mut record: BaseRecord<'_, [u8], [u8], usize> =
        BaseRecord::with_opaque_to(topic, number as usize).payload(value);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                producer.poll(QUEUE_FULL_BACKOFF);
                record = returned;
            }
            Err((error, _)) => {
                producer.context().fail(number, error.to_string());
                break;
            }
        }
    }
    producer.poll(Duration::ZERO);
}

pub fn run(args: &ProduceArgs) -> Result<(), CliError> {
    if args.key_separator.as_deref() == Some("") {
        return Err(CliError::InvalidArgument(
            "--key-separator must not be empty".into(),
        ));
    }
    let input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| CliError::io(format!("cannot open {}", path.display()), e))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    args.connect.probe()?;
    let producer = create_producer(args)?;
    wait_for_topic(&producer, args)?;
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut total = 0u64;
    for (index, line) in BufReader::new(input).split(b'\n').enumerate() {
        let number = index as u64 + 1;
        let mut line = line.map_err(|e| CliError::io(format!("reading line {number}"), e))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        total += 1;
        match split_line(&line, separator) {
            Ok((key, value)) => send_line(&producer, &args.topic, number, key, value),
            Err(message) => producer.context().fail(number, message),
        }
    }
    let flush_timeout =
        Duration::from_millis(args.delivery_timeout_ms) + args.connect.request_timeout();
    if let Err(error) = producer.flush(flush_timeout) {
        let stranded = producer.in_flight_count().max(0) as u64;
        eprintln!("error: {stranded} records not acknowledged before the timeout: {error}");
        producer
            .context()
            .failed
            .fetch_add(stranded, Ordering::Relaxed);
    }
    let tally = producer.context();
    report(args, tally, total);
    let failed = tally.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(CliError::RecordsFailed { failed, total });
    }
    Ok(())
}

fn report(args: &ProduceArgs, tally: &DeliveryTally, total: u64) {
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    match args.format {
        Format::Json => {
            let errors: Vec<serde_json::Value> = match tally.errors.lock() {
                Ok(errors) => errors
                    .iter()
                    .map(|(line, error)| json!({"line": line, "error": error}))
                    .collect(),
                Err(_) => Vec::new(),
            };
            output::print_json(&json!({
                "topic": args.topic, "lines": total, "delivered": delivered, "failed": failed,
                "errors": errors,
            }));
        }
        Format::Text => {
            eprintln!(
                "Produced {delivered} of {total} records to {} ({failed} failed).",
                args.topic
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_line(b"k:v", Some(b":")),
            Ok((Some(&b"k"[..]), &b"v"[..]))
        );
        assert_eq!(
            split_line(b"k:v:w", Some(b":")),
            Ok((Some(&b"k"[..]), &b"v:w"[..]))
        );
        assert_eq!(
            split_line(b":v", Some(b":")),
            Ok((Some(&b""[..]), &b"v"[..]))
        );
        assert_eq!(
            split_line(b"k::v", Some(b"::")),
            Ok((Some(&b"k"[..]), &b"v"[..]))
        );
        assert_eq!(split_line(b"plain", None), Ok((None, &b"plain"[..])));
        assert!(split_line(b"nokey", Some(b":")).is_err());
    }
}
