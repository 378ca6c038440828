//! The one configuration of a shardlog broker: a section per module, each field with its
//! meaning, unit, default and allowed range. Loaded from TOML (`--config FILE`), then
//! overridden by `SHARDLOG_*` environment variables and command-line flags (see `main.rs`).
//!
//! Owns: parsing, defaults and validation. May import: nothing from this crate.
//! Invariant: a `Config` that passed `validate()` has every limit inside its hard ceiling.
//! `docs/configuration.md` is checked against this file by a test.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use thiserror::Error;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config field `{field}` = {value} is out of range: {reason}")]
    OutOfRange {
        field: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub shard: ShardConfig,
    pub storage: StorageConfig,
    pub topic_defaults: TopicDefaults,
    pub group: GroupConfig,
    pub transaction: TransactionConfig,
    pub cluster: ClusterConfig,
    pub tls: TlsConfig,
    pub sasl: SaslConfig,
    pub authorizer: AuthorizerConfig,
}

/// Network listener and request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Kafka listeners, comma-separated, in Kafka's `listeners` syntax: `NAME://HOST:PORT`
    /// where NAME is a security protocol (PLAINTEXT, SSL) or a name mapped to one by
    /// `listener_security_protocol_map`; a bare `HOST:PORT` means PLAINTEXT; an empty HOST
    /// binds every address. Default 127.0.0.1:9092.
    pub listen: String,
    /// Admin HTTP address for /metrics and /health (shard 0); empty disables it.
    /// Default 127.0.0.1:9644.
    pub admin_listen: String,
    /// What Metadata tells clients, per listener, comma-separated `NAME://HOST:PORT` (one
    /// bare `HOST:PORT` is the first listener's); a listener not named advertises its own address
    /// (a wildcard host as `localhost`). Default unset.
    pub advertised_listener: Option<String>,
    /// Extra listener names, `NAME:PROTOCOL,...` (Kafka `listener.security.protocol.map`),
    /// e.g. `INTERNAL:PLAINTEXT,EXTERNAL:SSL`. Names equal to a protocol need no entry.
    /// Default empty.
    pub listener_security_protocol_map: String,
    /// Cluster mode: the listener other brokers connect to (Kafka
    /// `inter.broker.listener.name`); it must be PLAINTEXT for now. Default: the first
    /// PLAINTEXT listener.
    pub inter_broker_listener: Option<String>,
    /// This broker's node id (Kafka `node.id`). Default 0, range 0..=2^31-1.
    pub node_id: i32,
    /// Cluster id reported in Metadata/DescribeCluster. Default "shardlog".
    pub cluster_id: String,
    /// Largest request frame accepted, bytes (Kafka `socket.request.max.bytes`).
    /// Default 100 MiB, range 1 KiB..=1 GiB. Larger frames close the connection.
    pub request_bytes_max: u64,
    /// Requests read from one connection before its responses are written.
    /// Default 64, range 1..=1024.
    pub connection_inflight_requests_max: usize,
    /// Concurrent client connections per shard. Default 4096, range 1..=65536.
    pub shard_connections_max: usize,
    /// Concurrent connections from one client IP address, all shards together (Kafka
    /// `max.connections.per.ip`). Default 4096, range 1..=1000000.
    pub connections_per_ip_max: usize,
    /// Bytes of request frames received (reserved as they arrive, not as declared) or being
    /// handled, per shard; a connection whose received bytes do not fit stops reading (TCP
    /// back-pressure) until memory is released. An eighth more (at least 1 MiB) is kept for
    /// frames of at most 64 KiB when it is full, and one frame per shard may overdraw it to
    /// finish (so large frames never wait on each other's halves). Must be at least
    /// `request_bytes_max`. Default 256 MiB, range 1 MiB..=64 GiB.
    pub request_memory_bytes_max: u64,
    /// A request frame must arrive whole within this time of its first byte, ms; a slower
    /// one (a stalled or trickling client) closes the connection. Default 30000,
    /// range 100..=3600000.
    pub request_read_timeout_ms: u64,
    /// A connection with no request in flight that receives nothing for this long, or whose
    /// client reads none of its responses for this long, is closed, ms (Kafka
    /// `connections.max.idle.ms`). Default 600000, range 100..=86400000.
    pub connections_max_idle_ms: u64,
    /// Bytes of fetch responses read from disk and not yet written to a socket, per shard
    /// (batches still in the batch cache are shared, not counted); a fetch reads from disk at
    /// most what is free, and waits for room when its data is only on disk. Must be at least
    /// `connection_response_bytes_max`. Default 256 MiB, range 1 MiB..=64 GiB.
    pub response_memory_bytes_max: u64,
    /// Bytes of responses one connection holds unwritten (a request counts its frame size
    /// until its response exists, then the response's size until it is written); when full,
    /// the connection reads no further request until its client takes some, as Kafka mutes
    /// a connection while its response is outstanding. Also caps one fetch response.
    /// Default 16 MiB, range 64 KiB..=1 GiB.
    pub connection_response_bytes_max: u64,
    /// Open connections to the admin HTTP port; more get 503 at once. Each must send its
    /// request within 5 s. Default 1024, range 1..=65536.
    pub admin_connections_max: usize,
    /// /metrics responses rendered or being sent at once (health checks are not counted);
    /// more get 503. Default 16, range 1..=4096.
    pub admin_metrics_inflight_max: usize,
    /// Upper bound on a Fetch's `max_wait_ms`, milliseconds. Default 30000, range 0..=300000.
    pub fetch_wait_ms_max: u64,
    /// Upper bound on a Fetch response's record bytes, whatever the client asks.
    /// Default 64 MiB, range 1 KiB..=1 GiB.
    pub fetch_response_bytes_max: u64,
    /// On SIGTERM/SIGINT, how long open connections may take to finish their in-flight
    /// requests before logs are closed anyway, ms. Default 5000, range 0..=600000.
    pub shutdown_grace_ms: u64,
    /// Most partitions one DescribeTopicPartitions response describes, whatever the client's
    /// `response_partition_limit` (Kafka `max.request.partition.size.limit`); the rest is
    /// reached through the response's cursor. Default 2000, range 1..=1000000.
    pub describe_topic_partitions_response_partitions_max: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:9092".to_string(),
            admin_listen: "127.0.0.1:9644".to_string(),
            advertised_listener: None,
            listener_security_protocol_map: String::new(),
            inter_broker_listener: None,
            node_id: 0,
            cluster_id: "shardlog".to_string(),
            request_bytes_max: 100 * MIB,
            connection_inflight_requests_max: 64,
            shard_connections_max: 4096,
            connections_per_ip_max: 4096,
            request_memory_bytes_max: 256 * MIB,
            request_read_timeout_ms: 30_000,
            connections_max_idle_ms: 600_000,
            response_memory_bytes_max: 256 * MIB,
            connection_response_bytes_max: 16 * MIB,
            admin_connections_max: 1024,
            admin_metrics_inflight_max: 16,
            fetch_wait_ms_max: 30_000,
            fetch_response_bytes_max: 64 * MIB,
            shutdown_grace_ms: 5_000,
            describe_topic_partitions_response_partitions_max: 2000,
        }
    }
}

/// The executor pool: one glommio executor per shard, each pinned to a CPU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// Number of shards; 0 means one per available CPU. Default 0, range 0..=256.
    pub shards: usize,
    /// io_uring registered-buffer memory per shard, bytes. Default 1 MiB, range 0..=64 MiB.
    /// Above the locked-memory limit glommio falls back to unregistered buffers.
    pub io_memory_bytes: usize,
    /// io_uring ring depth per shard. Default 128, range 8..=4096.
    pub ring_depth: usize,
    /// Capacity of each shard-to-shard channel, messages. Default 1024, range 1..=65536.
    pub mesh_channel_capacity: usize,
    /// Pin each shard to its own CPU. Default true.
    pub pin_cpus: bool,
    /// How long a task queue may run before glommio's scheduler preempts it (its
    /// `preempt_timer`), microseconds. Default 100000 (glommio's own default), range
    /// 100..=10000000. Small values make the stranded-executor condition that
    /// `executor_nudge_ms` covers frequent (see docs/operations.md, "Start-up").
    pub preempt_interval_us: u64,
    /// How often a helper thread wakes every shard's executor, ms, so that an executor that
    /// went to sleep with runnable tasks (a glommio 0.9 bug) resumes within this time
    /// instead of hanging. 0 disables it (only to reproduce the bug). Default 100, range
    /// 0..=60000.
    pub executor_nudge_ms: u64,
    /// Start-up watchdog: if a shard has not finished starting (mesh join, opening its
    /// partitions, loading groups and transactions) after this long, a separate thread logs
    /// at WARN which shard is in which phase and since when, again every this long, ms.
    /// Default 30000, range 10..=86400000.
    pub startup_watchdog_ms: u64,
    /// Threads per shard that run the file-system calls with no io_uring form made while the
    /// shard serves (catalog writes, partition directory creation and removal, segment
    /// unlinks; `storage::blocking_fs`) and glommio's own blocking calls (renames,
    /// truncates), so neither stops the shard's thread. At most `blocking_threads - 1` of
    /// the shard's calls run at once, so a slow one never holds up glommio's. Not pinned (they
    /// wait on the disk, not the CPU). Default 2, range 2..=64.
    pub blocking_threads: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            shards: 0,
            io_memory_bytes: MIB as usize,
            ring_depth: 128,
            mesh_channel_capacity: 1024,
            pin_cpus: true,
            preempt_interval_us: 100_000,
            executor_nudge_ms: 100,
            startup_watchdog_ms: 30_000,
            blocking_threads: 2,
        }
    }
}

/// When appended data is made durable with fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Every write round ends with one fdatasync shared by all batches in it (group commit).
    EveryBatch,
    /// fdatasync at most every `sync_interval_ms` (and when an acks=all producer waits).
    Interval,
    /// fdatasync once `sync_bytes` unsynced bytes accumulate (and when acks=all waits).
    Bytes,
}

/// The partition log (segments, indexes, caches). Per-topic configs override some of these.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding one sub-directory per partition. Default ./data.
    pub data_dir: PathBuf,
    /// Roll a segment once it reaches this size, bytes (Kafka `log.segment.bytes`).
    /// Default 1 GiB, range 64 KiB..=4 GiB-1.
    pub segment_bytes: u64,
    /// Roll a segment once its first batch is this old, ms (Kafka `log.roll.ms`).
    /// Default 7 days, range 1000..=2^62.
    pub segment_ms: u64,
    /// Bytes between sparse offset-index entries (Kafka `log.index.interval.bytes`).
    /// Default 4 KiB, range 0..=16 MiB.
    pub index_interval_bytes: u64,
    /// Largest record batch accepted, bytes (Kafka `message.max.bytes`).
    /// Default 1 MiB + 12, range 1 KiB..=100 MiB.
    pub batch_bytes_max: u64,
    /// Appended but not yet written bytes per partition before appends wait.
    /// Default 16 MiB, range 64 KiB..=1 GiB.
    pub write_buffer_bytes_max: u64,
    /// Size of one O_DIRECT write, bytes; a multiple of 4 KiB. Default 1 MiB, range 4 KiB..=64 MiB.
    pub write_chunk_bytes: u64,
    /// When to fdatasync. Default every_batch. acks=all always waits for a sync.
    pub sync_policy: SyncPolicy,
    /// For sync_policy = interval: ms between syncs. Default 100, range 1..=600000.
    pub sync_interval_ms: u64,
    /// For sync_policy = bytes: unsynced bytes that trigger a sync. Default 1 MiB.
    pub sync_bytes: u64,
    /// Recent batches kept in memory per shard for fetch, bytes. Default 256 MiB,
    /// range 1 MiB..=64 GiB.
    pub batch_cache_bytes_max: u64,
    /// Largest single DMA read for a cold fetch, bytes. Default 1 MiB, range 4 KiB..=64 MiB.
    pub read_chunk_bytes: u64,
    /// Open segment files per shard before the least recently read are closed.
    /// Default 4096, range 16..=1_000_000.
    pub open_segments_max: usize,
    /// Produce is refused with KAFKA_STORAGE_ERROR while the data dir's filesystem has less
    /// free space than this, bytes (reads keep working; writes resume when space returns).
    /// Default 128 MiB, range 0..=1 TiB.
    pub disk_free_bytes_min: u64,
    /// How often each shard checks the free space, ms. Default 1000, range 10..=60000.
    pub disk_check_interval_ms: u64,
    /// How often retention runs, ms (Kafka `log.retention.check.interval.ms`).
    /// Default 300000, range 100..=86400000.
    pub retention_check_interval_ms: u64,
    /// How often the compaction task looks for compacted topics' partitions to clean, ms
    /// (Kafka `log.cleaner.backoff.ms`). Default 15000, range 100..=86400000.
    pub compaction_check_interval_ms: u64,
    /// Bytes per second one shard's compaction may read plus write (Kafka
    /// `log.cleaner.io.max.bytes.per.second`). Default 64 MiB, range 64 KiB..=64 GiB.
    pub compaction_io_bytes_per_second: u64,
    /// Memory for the key map of one compaction pass: key bytes + 64 per key (Kafka
    /// `log.cleaner.dedupe.buffer.size`); a pass maps what fits and the next continues.
    /// Default 64 MiB, range 64 KiB..=16 GiB.
    pub compaction_map_bytes_max: u64,
    /// Largest decompressed records section of one batch: a produced batch whose records
    /// decode to more is refused (MESSAGE_TOO_LARGE; validation streams them), and the bound
    /// on records held when the broker recompresses (compression.type), checks keys on
    /// compacted topics, or compacts. Default 64 MiB, range 1 MiB..=1 GiB.
    pub decompressed_batch_bytes_max: u64,
    /// How often each partition checkpoints its recovery point (the synced offset; a log
    /// found ending below it at start is damaged, not a torn tail), ms (Kafka
    /// `log.flush.offset.checkpoint.interval.ms`). Segment rolls and clean shutdown also
    /// checkpoint it. Default 60000, range 100..=86400000.
    pub recovery_point_checkpoint_interval_ms: u64,
    /// Bytes per second one shard's scrub reads to re-check finished segments (CRC of every
    /// batch); 0 disables the scrub. Default 32 MiB, range 0..=4 GiB.
    pub scrub_bytes_per_second: u64,
    /// Pause between the end of one scrub pass over a shard's logs and the next, ms. The
    /// first pass starts right after start-up. Default 86400000 (1 day), range
    /// 1000..=2592000000 (30 days).
    pub scrub_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            segment_bytes: GIB,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4 * KIB,
            batch_bytes_max: MIB + 12,
            write_buffer_bytes_max: 16 * MIB,
            write_chunk_bytes: MIB,
            sync_policy: SyncPolicy::EveryBatch,
            sync_interval_ms: 100,
            sync_bytes: MIB,
            batch_cache_bytes_max: 256 * MIB,
            read_chunk_bytes: MIB,
            open_segments_max: 4096,
            disk_free_bytes_min: 128 * MIB,
            disk_check_interval_ms: 1_000,
            retention_check_interval_ms: 300_000,
            compaction_check_interval_ms: 15_000,
            compaction_io_bytes_per_second: 64 * MIB,
            compaction_map_bytes_max: 64 * MIB,
            decompressed_batch_bytes_max: 64 * MIB,
            recovery_point_checkpoint_interval_ms: 60_000,
            scrub_bytes_per_second: 32 * MIB,
            scrub_interval_ms: 86_400_000,
        }
    }
}

/// Broker-level defaults for topics (Kafka `num.partitions`, `log.retention.*`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    /// Create a topic on first Metadata/Produce for it. Default true.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic or of CreateTopics with -1. Default 1, range 1..=10000.
    pub num_partitions: i32,
    /// Largest partition count a topic may have. Default 10000.
    pub partitions_max: i32,
    /// Default `retention.ms`: -1 keeps forever. Default 7 days.
    pub retention_ms: i64,
    /// Default `retention.bytes` per partition: -1 means no limit. Default -1.
    pub retention_bytes: i64,
    /// Broker-wide defaults of the other topic configs shardlog applies, keyed by topic
    /// config name (`cleanup.policy`, `compression.type`, ...): set only as dynamic broker
    /// configs (`log.cleanup.policy`, ...; see `metadata::dynamic_broker_config`), each value
    /// validated as the topic config. A topic's own value wins.
    #[serde(skip)]
    pub configs: std::collections::BTreeMap<String, String>,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            auto_create_topics: true,
            num_partitions: 1,
            partitions_max: 10_000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            configs: std::collections::BTreeMap::new(),
        }
    }
}

/// Consumer-group coordination (Kafka `group.*` and `offsets.*` broker settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// Partitions of `__consumer_offsets`, fixed when the topic is first created
    /// (Kafka `offsets.topic.num.partitions`). Default 16, range 1..=1000.
    pub offsets_topic_partitions: i32,
    /// Cluster mode: replicas of each `__consumer_offsets` partition (Kafka
    /// `offsets.topic.replication.factor`). The topic is created in the metadata log when the
    /// first group looks for its coordinator; until this many brokers are registered,
    /// FindCoordinator answers COORDINATOR_NOT_AVAILABLE. Default 3, range 1..=16.
    pub offsets_topic_replication_factor: i16,
    /// Cluster mode: how long a group coordinator's write (offset commit, group metadata,
    /// expiry) waits for every ISR member before it fails with COORDINATOR_NOT_AVAILABLE
    /// (Kafka `offsets.commit.timeout.ms`), ms. Default 5000, range 1..=3600000.
    pub offsets_commit_timeout_ms: u64,
    /// Smallest session timeout a member may ask for, ms (Kafka `group.min.session.timeout.ms`).
    /// Default 6000, range 1..=session_timeout_ms_max.
    pub session_timeout_ms_min: i32,
    /// Largest session timeout, ms (Kafka `group.max.session.timeout.ms`). Default 1800000.
    pub session_timeout_ms_max: i32,
    /// Delay before the first rebalance of an empty group completes, ms; each member that
    /// joins during it extends it by the delay, up to the group's rebalance timeout
    /// (Kafka `group.initial.rebalance.delay.ms`). Default 3000 as Kafka, range 0..=300000.
    pub initial_rebalance_delay_ms: u64,
    /// Members per group (Kafka `group.max.size`). Default 1000, range 1..=100000.
    pub members_max: usize,
    /// How often session and rebalance deadlines are checked, ms. Default 100, range 10..=10000.
    pub tick_interval_ms: u64,
    /// Longest commit metadata string, bytes (Kafka `offset.metadata.max.bytes`). Default 4096.
    pub offset_metadata_bytes_max: usize,
    /// Committed offsets of an empty group expire after this long, minutes
    /// (Kafka `offsets.retention.minutes`). Default 10080 (7 days), range 1..=5256000.
    pub offsets_retention_minutes: u64,
    /// Consumer-protocol (KIP-848) groups: a member that sends no ConsumerGroupHeartbeat for
    /// this long is removed and its partitions move (Kafka `group.consumer.session.timeout.ms`),
    /// ms. Default 45000, range 1000..=3600000, within
    /// `consumer_session_timeout_ms_min..=consumer_session_timeout_ms_max`.
    pub consumer_session_timeout_ms: u64,
    /// Consumer-protocol groups: the smallest session timeout, ms, for the broker default and
    /// for a group's `consumer.session.timeout.ms` override (Kafka
    /// `group.consumer.min.session.timeout.ms`). Default 45000 as Kafka, range 1000..=3600000.
    pub consumer_session_timeout_ms_min: u64,
    /// Consumer-protocol groups: the largest session timeout, ms (Kafka
    /// `group.consumer.max.session.timeout.ms`). Default 60000 as Kafka, range
    /// `consumer_session_timeout_ms_min`..=3600000.
    pub consumer_session_timeout_ms_max: u64,
    /// Consumer-protocol groups: the heartbeat interval members are told to use (Kafka
    /// `group.consumer.heartbeat.interval.ms`), ms. Default 5000, range 100..=600000, below
    /// `consumer_session_timeout_ms` and within
    /// `consumer_heartbeat_interval_ms_min..=consumer_heartbeat_interval_ms_max`.
    pub consumer_heartbeat_interval_ms: i32,
    /// Consumer-protocol groups: the smallest heartbeat interval, ms, for the broker default
    /// and for a group's `consumer.heartbeat.interval.ms` override (Kafka
    /// `group.consumer.min.heartbeat.interval.ms`). Default 5000 as Kafka, range 100..=600000.
    pub consumer_heartbeat_interval_ms_min: i32,
    /// Consumer-protocol groups: the largest heartbeat interval, ms (Kafka
    /// `group.consumer.max.heartbeat.interval.ms`). Default 15000 as Kafka, range
    /// `consumer_heartbeat_interval_ms_min`..=600000.
    pub consumer_heartbeat_interval_ms_max: i32,
    /// Consumer-protocol groups: members per group (Kafka `group.consumer.max.size`); a member
    /// beyond it gets GROUP_MAX_SIZE_REACHED. Default 1000, range 1..=100000.
    pub consumer_members_max: usize,
    /// Consumer-protocol groups one shard coordinates at once (empty ones included, until
    /// deleted); a ConsumerGroupHeartbeat that would create one more gets
    /// GROUP_MAX_SIZE_REACHED (Kafka has no such bound; it is the code Kafka gives when a
    /// group cannot take a member, and clients stop with it instead of retrying). Existing
    /// groups are unaffected. Default 10000, range 1..=1000000.
    pub consumer_groups_max: usize,
    /// Classic groups one shard coordinates at once (empty ones and offsets-only groups of
    /// simple consumers included, until deleted or their offsets expire); a JoinGroup or a
    /// simple consumer's OffsetCommit that would create one more gets GROUP_MAX_SIZE_REACHED
    /// (Kafka has no such bound). Existing groups are unaffected. Default 100000, range
    /// 1..=10000000.
    pub classic_groups_max: usize,
    /// Consumer-protocol groups: the server-side assignors members may name (Kafka
    /// `group.consumer.assignors`); the first is the default. Known: `uniform`, `range`.
    /// Default ["uniform", "range"].
    pub consumer_assignors: Vec<String>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_partitions: 16,
            offsets_topic_replication_factor: 3,
            offsets_commit_timeout_ms: 5_000,
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: 1000,
            tick_interval_ms: 100,
            offset_metadata_bytes_max: 4096,
            offsets_retention_minutes: 7 * 24 * 60,
            consumer_session_timeout_ms: 45_000,
            consumer_session_timeout_ms_min: 45_000,
            consumer_session_timeout_ms_max: 60_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_heartbeat_interval_ms_min: 5_000,
            consumer_heartbeat_interval_ms_max: 15_000,
            consumer_members_max: 1000,
            consumer_groups_max: 10_000,
            classic_groups_max: 100_000,
            consumer_assignors: vec!["uniform".to_string(), "range".to_string()],
        }
    }
}

impl GroupConfig {
    fn validate_consumer_protocol(&self) -> Result<(), ConfigError> {
        check(
            "group.consumer_session_timeout_ms_min",
            self.consumer_session_timeout_ms_min,
            1_000,
            3_600_000,
        )?;
        check(
            "group.consumer_session_timeout_ms_max",
            self.consumer_session_timeout_ms_max,
            self.consumer_session_timeout_ms_min,
            3_600_000,
        )?;
        check(
            "group.consumer_session_timeout_ms",
            self.consumer_session_timeout_ms,
            self.consumer_session_timeout_ms_min,
            self.consumer_session_timeout_ms_max,
        )?;
        check(
            "group.consumer_heartbeat_interval_ms_min",
            self.consumer_heartbeat_interval_ms_min,
            100,
            600_000,
        )?;
        check(
            "group.consumer_heartbeat_interval_ms_max",
            self.consumer_heartbeat_interval_ms_max,
            self.consumer_heartbeat_interval_ms_min,
            600_000,
        )?;
        check(
            "group.consumer_heartbeat_interval_ms",
            self.consumer_heartbeat_interval_ms,
            self.consumer_heartbeat_interval_ms_min,
            self.consumer_heartbeat_interval_ms_max,
        )?;
        if self.consumer_heartbeat_interval_ms as u64 >= self.consumer_session_timeout_ms {
            return Err(ConfigError::OutOfRange {
                field: "group.consumer_heartbeat_interval_ms",
                value: self.consumer_heartbeat_interval_ms.to_string(),
                reason: "must be below group.consumer_session_timeout_ms".to_string(),
            });
        }
        check(
            "group.consumer_members_max",
            self.consumer_members_max,
            1,
            100_000,
        )?;
        check(
            "group.consumer_groups_max",
            self.consumer_groups_max,
            1,
            1_000_000,
        )?;
        check(
            "group.classic_groups_max",
            self.classic_groups_max,
            1,
            10_000_000,
        )?;
        let known = ["uniform", "range"];
        let unknown = self
            .consumer_assignors
            .iter()
            .find(|name| !known.contains(&name.as_str()));
        if self.consumer_assignors.is_empty() || unknown.is_some() {
            return Err(ConfigError::OutOfRange {
                field: "group.consumer_assignors",
                value: format!("{:?}", self.consumer_assignors),
                reason: "one or more of \"uniform\", \"range\"".to_string(),
            });
        }
        Ok(())
    }
}

/// The transaction coordinator (Kafka `transaction.*` broker settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionConfig {
    /// Partitions of `__transaction_state`, fixed at first creation
    /// (Kafka `transaction.state.log.num.partitions`). Default 16, range 1..=1000.
    pub state_topic_partitions: i32,
    /// Longest transaction timeout a producer may ask for, ms
    /// (Kafka `transaction.max.timeout.ms`). Default 900000, range 1000..=86400000.
    pub timeout_ms_max: i32,
    /// How often open transactions are checked for timeouts, ms
    /// (Kafka `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    /// Default 1000, range 10..=600000.
    pub timeout_check_interval_ms: u64,
    /// Cluster mode: replicas of each `__transaction_state` partition (Kafka
    /// `transaction.state.log.replication.factor`). The topic is created in the metadata log
    /// when the first transactional id looks for its coordinator; until this many brokers
    /// are registered, FindCoordinator answers COORDINATOR_NOT_AVAILABLE. Default 3,
    /// range 1..=16.
    pub state_topic_replication_factor: i16,
    /// Cluster mode: how long a transaction coordinator's write of transaction metadata
    /// waits for every ISR member before the request fails with COORDINATOR_NOT_AVAILABLE
    /// (Kafka waits `request.timeout.ms`), ms. Default 5000, range 1..=3600000.
    pub state_write_timeout_ms: u64,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            state_topic_partitions: 16,
            timeout_ms_max: 900_000,
            timeout_check_interval_ms: 1_000,
            state_topic_replication_factor: 3,
            state_write_timeout_ms: 5_000,
        }
    }
}

mod authorizer;
mod cluster;
mod listeners;
mod sasl;
pub use authorizer::AuthorizerConfig;
pub use cluster::{ClusterConfig, QuorumVoter, parse_controller_quorum};
pub use listeners::{ClientAuth, ListenerSpec, SecurityProtocol, TlsConfig};
pub use sasl::{BootstrapScramUser, SUPPORTED_MECHANISMS, SaslConfig, parse_add_scram};

pub(crate) fn check<T: PartialOrd + std::fmt::Debug>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange {
            field,
            value: format!("{value:?}"),
            reason: format!("allowed range is {min:?}..={max:?}"),
        });
    }
    Ok(())
}

/// Whether two `host:port` listen addresses would bind the same port on a common address
/// (equal, or either one the unspecified address). Port 0 never overlaps (the kernel picks);
/// names that are not socket addresses are compared as written.
fn listen_addresses_overlap(first: &str, second: &str) -> bool {
    use std::net::SocketAddr;
    match (first.parse::<SocketAddr>(), second.parse::<SocketAddr>()) {
        (Ok(a), Ok(b)) => {
            a.port() == b.port()
                && a.port() != 0
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        }
        _ => !first.is_empty() && first == second,
    }
}

impl Config {
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks every limit against its hard ceiling.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        check("server.node_id", s.node_id, 0, i32::MAX)?;
        check("server.request_bytes_max", s.request_bytes_max, KIB, GIB)?;
        check(
            "server.connection_inflight_requests_max",
            s.connection_inflight_requests_max,
            1,
            1024,
        )?;
        check(
            "server.shard_connections_max",
            s.shard_connections_max,
            1,
            65536,
        )?;
        check(
            "server.connections_per_ip_max",
            s.connections_per_ip_max,
            1,
            1_000_000,
        )?;
        check(
            "server.request_memory_bytes_max",
            s.request_memory_bytes_max,
            MIB,
            64 * GIB,
        )?;
        s.validate_listeners(&self.tls)?;
        let sasl_listener = s.listeners()?.iter().any(|l| l.protocol.uses_sasl());
        self.sasl.validate(sasl_listener)?;
        self.authorizer.validate()?;
        if self.authorizer.enabled() && self.cluster.cluster_mode() {
            return Err(ConfigError::OutOfRange {
                field: "authorizer.kind",
                value: self.authorizer.kind.clone(),
                reason: "the ACL authorizer runs on a single broker only for now: ACLs are kept \
                         in the broker's catalog, not yet in the cluster's metadata log"
                    .to_string(),
            });
        }
        if self.cluster.cluster_mode() {
            s.inter_broker_listener()?;
        }
        if s.request_memory_bytes_max < s.request_bytes_max {
            return Err(ConfigError::OutOfRange {
                field: "server.request_memory_bytes_max",
                value: s.request_memory_bytes_max.to_string(),
                reason: "must be at least server.request_bytes_max".to_string(),
            });
        }
        check(
            "server.request_read_timeout_ms",
            s.request_read_timeout_ms,
            100,
            3_600_000,
        )?;
        check(
            "server.connections_max_idle_ms",
            s.connections_max_idle_ms,
            100,
            86_400_000,
        )?;
        check(
            "server.response_memory_bytes_max",
            s.response_memory_bytes_max,
            MIB,
            64 * GIB,
        )?;
        check(
            "server.connection_response_bytes_max",
            s.connection_response_bytes_max,
            64 * KIB,
            GIB,
        )?;
        if s.response_memory_bytes_max < s.connection_response_bytes_max {
            return Err(ConfigError::OutOfRange {
                field: "server.response_memory_bytes_max",
                value: s.response_memory_bytes_max.to_string(),
                reason: "must be at least server.connection_response_bytes_max".to_string(),
            });
        }
        check(
            "server.admin_connections_max",
            s.admin_connections_max,
            1,
            65536,
        )?;
        check(
            "server.admin_metrics_inflight_max",
            s.admin_metrics_inflight_max,
            1,
            4096,
        )?;
        check("server.fetch_wait_ms_max", s.fetch_wait_ms_max, 0, 300_000)?;
        check(
            "server.describe_topic_partitions_response_partitions_max",
            s.describe_topic_partitions_response_partitions_max,
            1,
            1_000_000,
        )?;
        check(
            "server.fetch_response_bytes_max",
            s.fetch_response_bytes_max,
            KIB,
            GIB,
        )?;
        let sh = &self.shard;
        check("shard.shards", sh.shards, 0, 256)?;
        check(
            "shard.io_memory_bytes",
            sh.io_memory_bytes,
            0,
            64 * MIB as usize,
        )?;
        check("shard.ring_depth", sh.ring_depth, 8, 4096)?;
        check(
            "shard.mesh_channel_capacity",
            sh.mesh_channel_capacity,
            1,
            65536,
        )?;
        check(
            "shard.preempt_interval_us",
            sh.preempt_interval_us,
            100,
            10_000_000,
        )?;
        check("shard.executor_nudge_ms", sh.executor_nudge_ms, 0, 60_000)?;
        check(
            "shard.startup_watchdog_ms",
            sh.startup_watchdog_ms,
            10,
            86_400_000,
        )?;
        check("shard.blocking_threads", sh.blocking_threads, 2, 64)?;
        let st = &self.storage;
        check(
            "storage.segment_bytes",
            st.segment_bytes,
            64 * KIB,
            4 * GIB - 1,
        )?;
        check("storage.segment_ms", st.segment_ms, 1000, 1 << 62)?;
        check(
            "storage.index_interval_bytes",
            st.index_interval_bytes,
            0,
            16 * MIB,
        )?;
        check(
            "storage.batch_bytes_max",
            st.batch_bytes_max,
            KIB,
            100 * MIB,
        )?;
        check(
            "storage.write_buffer_bytes_max",
            st.write_buffer_bytes_max,
            64 * KIB,
            GIB,
        )?;
        check(
            "storage.write_chunk_bytes",
            st.write_chunk_bytes,
            4 * KIB,
            64 * MIB,
        )?;
        if !st.write_chunk_bytes.is_multiple_of(4 * KIB) {
            return Err(ConfigError::OutOfRange {
                field: "storage.write_chunk_bytes",
                value: st.write_chunk_bytes.to_string(),
                reason: "must be a multiple of 4096".to_string(),
            });
        }
        check("storage.sync_interval_ms", st.sync_interval_ms, 1, 600_000)?;
        check("storage.sync_bytes", st.sync_bytes, 4 * KIB, 64 * GIB)?;
        check(
            "storage.batch_cache_bytes_max",
            st.batch_cache_bytes_max,
            MIB,
            64 * GIB,
        )?;
        check(
            "storage.read_chunk_bytes",
            st.read_chunk_bytes,
            4 * KIB,
            64 * MIB,
        )?;
        check(
            "storage.open_segments_max",
            st.open_segments_max,
            16,
            1_000_000,
        )?;
        check(
            "storage.disk_free_bytes_min",
            st.disk_free_bytes_min,
            0,
            1024 * GIB,
        )?;
        check(
            "storage.disk_check_interval_ms",
            st.disk_check_interval_ms,
            10,
            60_000,
        )?;
        check(
            "storage.retention_check_interval_ms",
            st.retention_check_interval_ms,
            100,
            86_400_000,
        )?;
        check(
            "storage.compaction_check_interval_ms",
            st.compaction_check_interval_ms,
            100,
            86_400_000,
        )?;
        check(
            "storage.compaction_io_bytes_per_second",
            st.compaction_io_bytes_per_second,
            64 * KIB,
            64 * GIB,
        )?;
        check(
            "storage.compaction_map_bytes_max",
            st.compaction_map_bytes_max,
            64 * KIB,
            16 * GIB,
        )?;
        check(
            "storage.decompressed_batch_bytes_max",
            st.decompressed_batch_bytes_max,
            MIB,
            GIB,
        )?;
        check(
            "storage.recovery_point_checkpoint_interval_ms",
            st.recovery_point_checkpoint_interval_ms,
            100,
            86_400_000,
        )?;
        check(
            "storage.scrub_bytes_per_second",
            st.scrub_bytes_per_second,
            0,
            4 * GIB,
        )?;
        check(
            "storage.scrub_interval_ms",
            st.scrub_interval_ms,
            1000,
            2_592_000_000,
        )?;
        if st.batch_bytes_max > st.write_buffer_bytes_max {
            return Err(ConfigError::OutOfRange {
                field: "storage.batch_bytes_max",
                value: st.batch_bytes_max.to_string(),
                reason: "must not exceed storage.write_buffer_bytes_max".to_string(),
            });
        }
        let t = &self.topic_defaults;
        check("topic_defaults.num_partitions", t.num_partitions, 1, 10_000)?;
        check(
            "topic_defaults.partitions_max",
            t.partitions_max,
            1,
            100_000,
        )?;
        check(
            "group.offsets_topic_replication_factor",
            self.group.offsets_topic_replication_factor,
            1,
            16,
        )?;
        check(
            "group.offsets_commit_timeout_ms",
            self.group.offsets_commit_timeout_ms,
            1,
            3_600_000,
        )?;
        self.group.validate_consumer_protocol()?;
        check(
            "transaction.state_topic_replication_factor",
            self.transaction.state_topic_replication_factor,
            1,
            16,
        )?;
        check(
            "transaction.state_write_timeout_ms",
            self.transaction.state_write_timeout_ms,
            1,
            3_600_000,
        )?;
        self.cluster.validate()?;
        self.cluster.validate_quorum(self.server.node_id)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
