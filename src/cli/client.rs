//! Connecting to a Kafka-protocol broker: the shared `--bootstrap-server` options, a reachability
//! probe, librdkafka client construction, and the metadata and offset queries several commands
//! share.
//!
//! Owns: `ConnectArgs`, `Cluster` (an admin client plus its settings), `TopicInfo`.
//! May import: rdkafka, `super::error`. Speaks only the Kafka protocol, so every command works
//! against Apache Kafka too. Every client option is set here explicitly (no library defaults for
//! timeouts or topic auto-creation).

use super::error::{self, CliError};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long the probe waits for a TCP connection to each bootstrap address.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Client id the broker sees for every CLI connection.
const CLIENT_ID: &str = "shardlog-cli";
/// Pause before repeating a read-only request that hit a transient transport error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// `--bootstrap-server` when neither the flag nor SHARDLOG_BOOTSTRAP_SERVER is given.
const DEFAULT_BOOTSTRAP_SERVER: &str = "127.0.0.1:9092";
/// `--request-timeout-ms` when not given.
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Options every broker-facing subcommand shares. Declared once, on the top-level `shardlog`
/// command with `global = true`, so they are accepted before the subcommand
/// (`shardlog --bootstrap-server h:9092 topic list`) as well as after it; `main` hands the
/// parsed values to the subcommand's args.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Broker to bootstrap from, HOST:PORT (a comma-separated list is allowed).
    #[arg(
        long,
        global = true,
        env = "SHARDLOG_BOOTSTRAP_SERVER",
        default_value = DEFAULT_BOOTSTRAP_SERVER
    )]
    pub bootstrap_server: String,
    /// How long to wait for each broker request, in milliseconds.
    #[arg(long, global = true, default_value_t = DEFAULT_REQUEST_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub request_timeout_ms: u64,
}

/// The values clap uses when no flag is given; subcommand args start from this until `main`
/// fills in the parsed top-level flags.
impl Default for ConnectArgs {
    fn default() -> ConnectArgs {
        ConnectArgs {
            bootstrap_server: DEFAULT_BOOTSTRAP_SERVER.to_string(),
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

impl ConnectArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The settings every client (admin, producer, consumer) starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", CLIENT_ID)
            .set(
                "socket.timeout.ms",
                self.request_timeout_ms.max(10).to_string(),
            )
            .set(
                "socket.connection.setup.timeout.ms",
                self.request_timeout_ms.to_string(),
            )
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set("allow.auto.create.topics", "false");
        config
    }

    /// Fails fast, with a clear message, when no bootstrap address accepts a TCP connection;
    /// librdkafka would otherwise retry quietly until the request timeout.
    pub fn probe(&self) -> Result<(), CliError> {
        let mut last_failure = String::from("no address given");
        for server in self
            .bootstrap_server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let addresses = server.to_socket_addrs().map_err(|e| {
                CliError::InvalidArgument(format!(
                    "invalid --bootstrap-server '{server}': {e} (expected HOST:PORT)"
                ))
            })?;
            for address in addresses {
                match TcpStream::connect_timeout(&address, PROBE_CONNECT_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(e) => last_failure = format!("{address}: {e}"),
                }
            }
        }
        Err(CliError::Unreachable {
            bootstrap: self.bootstrap_server.clone(),
            detail: last_failure,
        })
    }

    /// Repeats a read-only request (metadata, offsets, group listings) while it fails with a
    /// transient transport error, until the request timeout. librdkafka can fail a request in
    /// flight on a fresh client, for instance when it swaps its bootstrap connection for the
    /// broker's advertised address; the probe has already shown the broker is there.
    pub fn retry<T>(&self, mut attempt: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            match attempt() {
                Err(error) if is_transient(&error) && Instant::now() < deadline => {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                outcome => return outcome,
            }
        }
    }

    pub fn error(&self, operation: &str, error: KafkaError) -> CliError {
        error::from_kafka(operation, &self.bootstrap_server, error)
    }

    pub fn code_error(&self, operation: &str, code: RDKafkaErrorCode) -> CliError {
        error::from_code(operation, &self.bootstrap_server, code)
    }

    /// Probes, then builds an admin client.
    pub fn cluster(&self) -> Result<Cluster, CliError> {
        self.probe()?;
        let admin = self
            .client_config()
            .create::<AdminClient<DefaultClientContext>>()
            .map_err(|e| self.error("create admin client", e))?;
        Ok(Cluster {
            admin,
            connect: self.clone(),
        })
    }

    /// A consumer that never joins a group: for offsets queries and, with `group`, for reading or
    /// committing that group's offsets without becoming a member.
    pub fn query_consumer(&self, group: Option<&str>) -> Result<BaseConsumer, CliError> {
        let mut config = self.client_config();
        config
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        if let Some(group) = group {
            config.set("group.id", group);
        }
        config
            .create::<BaseConsumer>()
            .map_err(|e| self.error("create consumer", e))
    }
}

fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error::error_code(error),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    )
}

/// One partition as Metadata describes it.
#[derive(Clone, Debug)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as Metadata describes it, partitions sorted by id.
#[derive(Clone, Debug)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

/// An admin client bound to the connection options it was made from.
pub struct Cluster {
    pub admin: AdminClient<DefaultClientContext>,
    pub connect: ConnectArgs,
}

impl Cluster {
    pub fn admin_options(&self) -> AdminOptions {
        let timeout = self.connect.request_timeout();
        AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout))
    }

    /// Metadata for one topic or all; never creates a topic (`allow.auto.create.topics=false`).
    fn metadata(&self, topic: Option<&str>) -> Result<Metadata, CliError> {
        let timeout = self.connect.request_timeout();
        self.connect
            .retry(|| self.admin.inner().fetch_metadata(topic, timeout))
            .map_err(|e| self.connect.error("fetch metadata", e))
    }

    /// All topics (without a topic-creating side effect), sorted by name.
    pub fn topics(&self) -> Result<Vec<TopicInfo>, CliError> {
        let metadata = self.metadata(None)?;
        let mut topics: Vec<TopicInfo> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| topic_info(t.name(), t.partitions()))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One topic, or `UnknownTopic`.
    pub fn topic(&self, name: &str) -> Result<TopicInfo, CliError> {
        let metadata = self.metadata(Some(name))?;
        let topic = metadata.topics().iter().find(|t| t.name() == name);
        match topic {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                Ok(topic_info(t.name(), t.partitions()))
            }
            Some(t) => match t.error().map(RDKafkaErrorCode::from) {
                None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                    Err(CliError::UnknownTopic(name.to_string()))
                }
                Some(code) => Err(self.connect.code_error("fetch metadata", code)),
            },
            None => Err(CliError::UnknownTopic(name.to_string())),
        }
    }

    /// Broker ids from Metadata, sorted.
    pub fn broker_ids(&self) -> Result<Vec<i32>, CliError> {
        let metadata = self.metadata(None)?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

fn topic_info(name: &str, partitions: &[rdkafka::metadata::MetadataPartition]) -> TopicInfo {
    let mut partitions: Vec<PartitionInfo> = partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.id(),
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    TopicInfo {
        name: name.to_string(),
        partitions,
    }
}

/// Which offset ListOffsets should return for each partition.
#[derive(Clone, Copy, Debug)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this Unix time in milliseconds.
    Timestamp(i64),
}

/// ListOffsets for many partitions in one call (librdkafka batches them per leader).
/// A partition with no record at or after a timestamp maps to `None`.
pub fn list_offsets(
    consumer: &BaseConsumer,
    connect: &ConnectArgs,
    partitions: &[(String, i32)],
    spec: OffsetSpec,
) -> Result<BTreeMap<(String, i32), Option<i64>>, CliError> {
    let query = match spec {
        OffsetSpec::Earliest => Offset::Beginning,
        OffsetSpec::Latest => Offset::End,
        OffsetSpec::Timestamp(ms) => Offset::Offset(ms),
    };
    let mut request = TopicPartitionList::new();
    for (topic, partition) in partitions {
        request
            .add_partition_offset(topic, *partition, query)
            .map_err(|e| connect.error("list offsets", e))?;
    }
    if request.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let answer = connect
        .retry(|| consumer.offsets_for_times(request.clone(), connect.request_timeout()))
        .map_err(|e| connect.error("list offsets", e))?;
    let mut offsets = BTreeMap::new();
    for element in answer.elements() {
        if let Err(e) = element.error() {
            return Err(connect.error(
                &format!(
                    "list offsets for {}/{}",
                    element.topic(),
                    element.partition()
                ),
                e,
            ));
        }
        let offset = match element.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        };
        offsets.insert((element.topic().to_string(), element.partition()), offset);
    }
    Ok(offsets)
}

/// Runs an admin future on this thread; librdkafka's background thread completes it.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_lite::future::block_on(future)
}
