//! Contract: a damaged or surprising data dir fails safe. Nothing on disk is deleted because
//! the catalog lacks it; a directory whose identity is unknown is never adopted; a missing or
//! unreadable `topics.json`, `meta.json` or `partition.metadata` stops start-up with a
//! message naming the file and the recovery command (`shardlog data-dir ...`), and that
//! command restores a working broker; DeleteTopics interrupted by kill -9 finishes on restart
//! and a re-created topic never shows old records; corruption found at start is reported in
//! the log and /metrics and a consumer gets an error instead of stalling; offsets are never
//! handed out twice after damage; and no Kafka request or /health/ready is answered until
//! every partition of every shard is open.
//!
//! Each test runs the real broker binary with its own data dir and talks to it with
//! librdkafka (the `rdkafka` crate), raw Kafka wire bytes or plain HTTP.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broker that must refuse to start may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
const CONSUMER_ERROR_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// Partitions of the internal topics with the default config.
const INTERNAL_PARTITIONS: usize = 16 + 16;

/// A free port below the ephemeral range, so nothing else takes it between restarts.
fn free_port() -> u16 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut seed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..1000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20000 + (seed >> 33) as u16 % 12000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// A shardlog process (2 shards) on its own data dir; killed on drop.
struct Broker {
    child: Option<Child>,
    port: u16,
    admin_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    config_path: PathBuf,
}

impl Broker {
    /// A broker on a fresh data dir; `config` is extra TOML.
    fn new(name: &str, config: &str) -> Broker {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("data-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("test dir");
        let config_path = root.join("shardlog.toml");
        std::fs::write(&config_path, config).expect("config");
        let port = free_port();
        let admin_port = std::iter::repeat_with(free_port)
            .find(|&p| p != port)
            .expect("a second free port");
        Broker {
            child: None,
            port,
            admin_port,
            data_dir: root.join("data"),
            log_path: root.join("broker.log"),
            config_path,
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("broker log");
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .args(["serve", "--shards", "2"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin-listen", &format!("127.0.0.1:{}", self.admin_port)])
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shardlog");
        self.child = Some(child);
    }

    /// Starts the broker and waits until it accepts Kafka connections.
    fn start(&mut self) {
        self.spawn();
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("broker exited with {status} at start:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(POLL);
        }
    }

    /// Starts the broker, which must refuse to start: returns its log.
    fn start_refused(&mut self) -> String {
        let before = self.log().len();
        self.spawn();
        let deadline = Instant::now() + REFUSAL_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                assert!(!status.success(), "broker exited 0 instead of refusing");
                return self.log()[before..].to_string();
            }
            assert!(
                TcpStream::connect(("127.0.0.1", self.port)).is_err(),
                "broker started serving instead of refusing to start:\n{}",
                &self.log()[before..]
            );
            assert!(
                Instant::now() < deadline,
                "broker neither started nor exited"
            );
            std::thread::sleep(POLL);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill_dash_nine(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the broker");
            child.wait().expect("reap the broker");
        }
    }

    /// SIGTERM and wait: a clean shutdown (logs closed, checkpoints written).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().expect("reap the broker");
            assert!(status.success(), "clean stop failed: {status}");
        }
    }

    /// Runs `shardlog data-dir ARGS --data-dir DIR`; returns (success, stdout + stderr).
    fn data_dir_command(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .arg("data-dir")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .expect("run shardlog data-dir");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    fn http_get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.admin_port)).ok()?;
        stream.set_read_timeout(Some(ADMIN_TIMEOUT)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }
}

impl Drop for Broker {
    /// Kills the broker; removes its data dir unless the test failed (kept to look at).
    fn drop(&mut self) {
        self.kill_dash_nine();
        if !std::thread::panicking()
            && let Some(root) = self.data_dir.parent()
        {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    broker.client().create().expect("admin client")
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures_lite::future::block_on(
        admin(broker).create_topics(&[new_topic], &AdminOptions::new()),
    )
    .expect("create_topics call");
    for result in results {
        result.expect("topic created");
    }
}

fn new_producer(broker: &Broker, idempotent: bool) -> FutureProducer {
    broker
        .client()
        .set("acks", "all")
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer")
}

/// Produces `count` records of `size` bytes to `partition`; returns their offsets.
fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    count: usize,
    size: usize,
) -> Vec<i64> {
    let value = vec![b'v'; size];
    let futures: Vec<_> = (0..count)
        .map(|i| {
            let key = format!("key-{i}");
            let record = FutureRecord::to(topic)
                .partition(partition)
                .key(key.as_bytes())
                .payload(value.as_slice());
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    let offsets = futures_lite::future::block_on(futures::future::join_all(futures))
        .into_iter()
        .map(|d| d.expect("not cancelled").expect("acknowledged").offset)
        .collect();
    producer.flush(DELIVERY_TIMEOUT).expect("flush");
    offsets
}

fn reader(broker: &Broker) -> BaseConsumer {
    broker
        .client()
        .set("group.id", "data-dir-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Every record of `topic` from the beginning up to each high watermark: (partition, offset).
fn read_all(broker: &Broker, topic: &str, partitions: i32) -> BTreeSet<(i32, i64)> {
    let consumer = reader(broker);
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, CONSUME_TIMEOUT)
            .expect("watermarks");
        expected += high - low;
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = BTreeSet::new();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while (records.len() as i64) < expected {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        if let Some(message) = consumer.poll(POLL) {
            let message = message.expect("consume");
            records.insert((message.partition(), message.offset()));
        }
    }
    records
}

/// Names of the entries of `dir` whose name starts with `prefix`.
fn entries(dir: &Path, prefix: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `dir` with its size (relative path), for "nothing was deleted" checks.
fn file_tree(dir: &Path) -> BTreeMap<String, u64> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .display()
                    .to_string();
                files.insert(name, entry.metadata().map_or(0, |m| m.len()));
            }
        }
    }
    files
}

/// Segment files of a partition dir, by base offset.
fn segments(partition_dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .expect("partition dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// (position, length, base offset, producer id) of each batch of a segment file.
fn batches(segment: &Path) -> Vec<(usize, usize, i64, i64)> {
    let bytes = std::fs::read(segment).expect("segment");
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4"));
        if length <= 0 {
            break;
        }
        let producer_id = i64::from_be_bytes(bytes[at + 43..at + 51].try_into().expect("8"));
        let total = 12 + length as usize;
        out.push((at, total, base, producer_id));
        at += total;
    }
    out
}

/// Lines of the broker log containing `needle`.
fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

fn wait_for_log(broker: &Broker, needle: &str) {
    let deadline = Instant::now() + LOG_WAIT_TIMEOUT;
    while !broker.log().contains(needle) {
        assert!(Instant::now() < deadline, "log never showed {needle:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---- item 7: DeleteTopics interrupted by kill -9 -----------------------------------------

#[test]
fn delete_interrupted_by_kill_dash_nine_finishes_on_restart_and_recreated_topic_is_empty() {
    let mut broker = Broker::new("delete-kill", "");
    broker.start();
    let partitions = 24;
    create_topic(&broker, "gone", partitions);
    let producer = new_producer(&broker, false);
    for partition in 0..partitions {
        produce(&producer, "gone", partition, 20, 200);
    }
    drop(producer);
    let bootstrap = broker.bootstrap();
    // DeleteTopics from another thread; kill -9 as soon as the first partition is removed.
    let deleting = std::thread::spawn(move || {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin");
        let _ =
            futures_lite::future::block_on(admin.delete_topics(&["gone"], &AdminOptions::new()));
    });
    wait_for_log(&broker, "partition removed");
    broker.kill_dash_nine();
    let _ = deleting.join();
    let left_at_kill = entries(&broker.data_dir, "gone-");
    broker.start();
    // The deletion finished before the broker served anything: no dir of the old topic
    // remains under any name.
    let left = entries(&broker.data_dir, "gone-");
    assert!(
        left.is_empty(),
        "partition dirs of the deleted topic survived the restart: {left:?} (at the kill: {left_at_kill:?})"
    );
    let metadata = reader(&broker)
        .fetch_metadata(Some("gone"), ADMIN_TIMEOUT)
        .expect("metadata");
    let known = metadata.topics()[0].error().is_none();
    assert!(!known, "the deleted topic came back");
    create_topic(&broker, "gone", partitions);
    let records = read_all(&broker, "gone", partitions);
    assert!(
        records.is_empty(),
        "old records came back: {}",
        records.len()
    );
}

#[test]
fn partition_dir_of_unknown_identity_stops_startup_and_is_never_adopted() {
    let mut broker = Broker::new("unidentified", "");
    broker.start();
    create_topic(&broker, "gone", 4);
    let producer = new_producer(&broker, false);
    for partition in 0..4 {
        produce(&producer, "gone", partition, 50, 100);
    }
    drop(producer);
    broker.stop();
    // The state a crash in the middle of an old-style delete leaves: the catalog no longer
    // has the topic, one directory lost its partition.metadata, the others keep theirs.
    let catalog_path = broker.data_dir.join("topics.json");
    let mut catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&catalog_path).expect("catalog")).expect("json");
    catalog["topics"]
        .as_object_mut()
        .expect("topics")
        .remove("gone")
        .expect("topic in catalog");
    std::fs::write(&catalog_path, serde_json::to_vec(&catalog).expect("json")).expect("write");
    std::fs::remove_file(broker.data_dir.join("gone-2/partition.metadata")).expect("remove");
    let before = file_tree(&broker.data_dir);
    let log = broker.start_refused();
    for needle in ["gone-2", "partition.metadata", "shardlog data-dir"] {
        assert!(
            log.contains(needle),
            "refusal does not mention {needle:?}:\n{log}"
        );
    }
    assert_eq!(
        file_tree(&broker.data_dir),
        before,
        "start-up changed the data dir"
    );
    // The documented way out: move the unidentified dirs aside (nothing is deleted).
    let (ok, output) = broker.data_dir_command(&["quarantine", "--all-unidentified"]);
    assert!(ok, "quarantine failed:\n{output}");
    assert!(
        entries(&broker.data_dir, "gone-")
            .iter()
            .all(|n| n.contains(".quarantined"))
    );
    let kept: u64 = file_tree(&broker.data_dir)
        .iter()
        .filter(|(name, _)| name.starts_with("gone-") && name.ends_with(".log"))
        .map(|(_, size)| size)
        .sum();
    assert!(kept > 0, "quarantined data was not kept");
    broker.start();
    create_topic(&broker, "gone", 4);
    assert!(
        read_all(&broker, "gone", 4).is_empty(),
        "old records adopted"
    );
}

// ---- item 8: missing or unreadable catalog, meta.json, partition.metadata --------------

/// The highest producer id stamped on any batch of the topic's partition dirs.
fn max_producer_id(data_dir: &Path, topic: &str) -> i64 {
    let mut max = -1;
    for name in entries(data_dir, &format!("{topic}-")) {
        for segment in segments(&data_dir.join(name)) {
            for (_, _, _, producer_id) in batches(&segment) {
                max = max.max(producer_id);
            }
        }
    }
    max
}

#[test]
fn missing_catalog_stops_startup_and_recover_catalog_restores_everything() {
    let mut broker = Broker::new("no-catalog", "");
    broker.start();
    create_topic(&broker, "keep", 3);
    let producer = new_producer(&broker, true);
    for partition in 0..3 {
        produce(&producer, "keep", partition, 30, 100);
    }
    drop(producer);
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", "keeper")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut commits = TopicPartitionList::new();
    for partition in 0..3 {
        commits
            .add_partition_offset("keep", partition, Offset::Offset(20))
            .expect("offset");
    }
    consumer.commit(&commits, CommitMode::Sync).expect("commit");
    drop(consumer);
    broker.stop();
    let old_producer_id = max_producer_id(&broker.data_dir, "keep");
    assert!(
        old_producer_id >= 0,
        "idempotent producer left no producer id"
    );
    std::fs::remove_file(broker.data_dir.join("topics.json")).expect("remove catalog");
    std::fs::remove_file(broker.data_dir.join("meta.json")).expect("remove meta");
    let before = file_tree(&broker.data_dir);
    let log = broker.start_refused();
    for needle in ["topics.json", "shardlog data-dir recover-catalog"] {
        assert!(
            log.contains(needle),
            "refusal does not mention {needle:?}:\n{log}"
        );
    }
    assert_eq!(
        file_tree(&broker.data_dir),
        before,
        "start-up without a catalog changed the data dir"
    );
    let (ok, output) = broker.data_dir_command(&["recover-catalog"]);
    assert!(ok, "recover-catalog failed:\n{output}");
    broker.start();
    assert_eq!(read_all(&broker, "keep", 3).len(), 90, "records lost");
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", "keeper")
        .create()
        .expect("consumer");
    let committed = consumer
        .committed_offsets(commits.clone(), ADMIN_TIMEOUT)
        .expect("committed offsets");
    for element in committed.elements() {
        assert_eq!(element.offset(), Offset::Offset(20), "commit lost");
    }
    drop(consumer);
    let producer = new_producer(&broker, true);
    produce(&producer, "keep", 0, 5, 100);
    drop(producer);
    broker.stop();
    let new_producer_id = max_producer_id(&broker.data_dir, "keep");
    assert!(
        new_producer_id > old_producer_id,
        "producer ids restarted: new {new_producer_id}, old {old_producer_id}"
    );
}

#[test]
fn missing_meta_or_unreadable_metadata_files_stop_startup_without_changes() {
    let mut broker = Broker::new("meta-files", "");
    broker.start();
    create_topic(&broker, "keep", 2);
    let producer = new_producer(&broker, true);
    produce(&producer, "keep", 0, 10, 100);
    drop(producer);
    broker.stop();
    let meta = broker.data_dir.join("meta.json");
    let saved_meta = std::fs::read(&meta).expect("meta.json exists after a producer id");
    let cases: [(&str, &str, &[u8]); 3] = [
        ("meta.json", "meta.json", b""),
        ("keep-1/partition.metadata", "keep-1", b"not a topic id\n"),
        ("topics.json", "topics.json", b"{ \"version\": "),
    ];
    for (file, needle, content) in cases {
        let path = broker.data_dir.join(file);
        let original = std::fs::read(&path).expect("file");
        if content.is_empty() {
            std::fs::remove_file(&path).expect("remove");
        } else {
            std::fs::write(&path, content).expect("damage");
        }
        let before = file_tree(&broker.data_dir);
        let log = broker.start_refused();
        assert!(
            log.contains(needle),
            "refusal does not name {needle}:\n{log}"
        );
        assert!(
            log.contains("shardlog data-dir"),
            "no recovery command:\n{log}"
        );
        assert_eq!(
            file_tree(&broker.data_dir),
            before,
            "{file}: data dir changed"
        );
        std::fs::write(&path, original).expect("restore");
    }
    assert_eq!(std::fs::read(&meta).expect("meta"), saved_meta);
    broker.start();
    assert_eq!(read_all(&broker, "keep", 2).len(), 10);
}

#[test]
fn missing_meta_names_the_partition_with_the_highest_producer_id() {
    let mut broker = Broker::new("meta-names", "");
    broker.start();
    create_topic(&broker, "plain", 1);
    create_topic(&broker, "idem", 1);
    produce(&new_producer(&broker, false), "plain", 0, 5, 100);
    produce(&new_producer(&broker, true), "idem", 0, 5, 100);
    broker.stop();
    let producer_id = max_producer_id(&broker.data_dir, "idem");
    assert!(producer_id >= 0, "idempotent producer left no producer id");
    std::fs::remove_file(broker.data_dir.join("meta.json")).expect("remove meta");
    let log = broker.start_refused();
    let named = format!("partition idem-0 holds producer id {producer_id}");
    assert!(
        log.contains(&named),
        "refusal does not say {named:?}:\n{log}"
    );
}

/// A data dir from a release before `meta.json` (or one no idempotent or transactional
/// producer ever wrote to) has no producer id to repeat: it starts and gains the file.
#[test]
fn missing_meta_without_producer_ids_starts_like_an_earlier_release() {
    let mut broker = Broker::new("meta-upgrade", "");
    broker.start();
    create_topic(&broker, "old", 2);
    let producer = new_producer(&broker, false);
    produce(&producer, "old", 0, 10, 100);
    produce(&producer, "old", 1, 10, 100);
    drop(producer);
    broker.stop();
    assert_eq!(max_producer_id(&broker.data_dir, "old"), -1);
    let meta = broker.data_dir.join("meta.json");
    std::fs::remove_file(&meta).expect("remove meta");
    broker.start();
    assert!(meta.exists(), "meta.json not written at start-up");
    assert_eq!(read_all(&broker, "old", 2).len(), 20, "records lost");
    let producer = new_producer(&broker, true);
    produce(&producer, "old", 0, 5, 100);
    drop(producer);
    broker.stop();
    assert!(
        max_producer_id(&broker.data_dir, "old") >= 0,
        "idempotent producer got no producer id after the upgrade"
    );
    broker.start();
    assert_eq!(read_all(&broker, "old", 2).len(), 25);
}

// ---- item 9: corruption found at start; offsets never reused --------------------------

fn scrape(broker: &Broker) -> String {
    broker.http_get("/metrics").expect("metrics")
}

#[test]
fn bit_flip_after_clean_stop_is_reported_at_start_and_consumer_gets_an_error() {
    let mut broker = Broker::new("bit-flip", "");
    broker.start();
    create_topic(&broker, "flip", 1);
    let producer = new_producer(&broker, false);
    for _ in 0..10 {
        produce(&producer, "flip", 0, 10, 300);
    }
    drop(producer);
    broker.stop();
    let segment = segments(&broker.data_dir.join("flip-0")).remove(0);
    let layout = batches(&segment);
    assert!(layout.len() >= 5, "{} batches", layout.len());
    let (position, length, bad_base, _) = layout[layout.len() / 2];
    let next_base = layout[layout.len() / 2 + 1].2;
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes[position + length - 7] ^= 0x10;
    std::fs::write(&segment, bytes).expect("flip");
    broker.start();
    // Found at start (before anyone reads), logged with the file, counted in /metrics.
    let log = broker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("corrupt") && l.contains("flip-0")),
        "corruption not reported at start:\n{log}"
    );
    let metrics = scrape(&broker);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("shardlog_partition_corrupt_batches{")
                && l.contains("topic=\"flip\"")
                && l.ends_with(" 1")),
        "no corrupt-batch gauge:\n{metrics}"
    );
    // A consumer gets the records before the bad batch, then an error, not a stall.
    let consumer = reader(&broker);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("flip", 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + CONSUMER_ERROR_TIMEOUT;
    let mut last = -1;
    let error = loop {
        assert!(
            Instant::now() < deadline,
            "consumer stalled at {last} without an error"
        );
        match consumer.poll(POLL) {
            Some(Ok(message)) => last = message.offset(),
            Some(Err(error)) => break error,
            None => {}
        }
    };
    assert_eq!(last, bad_base - 1, "records before the corrupt batch");
    assert_eq!(
        error,
        KafkaError::MessageConsumption(RDKafkaErrorCode::InvalidMessage),
        "consumer error"
    );
    // Past the bad batch the partition reads normally.
    let mut past = TopicPartitionList::new();
    past.add_partition_offset("flip", 0, Offset::Offset(next_base))
        .expect("seek");
    consumer.assign(&past).expect("assign");
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no record after the corrupt batch"
        );
        if let Some(Ok(message)) = consumer.poll(POLL) {
            assert_eq!(message.offset(), next_base);
            break;
        }
    }
}

#[test]
fn zero_length_newest_segment_never_reuses_offsets() {
    let mut broker = Broker::new("zero-segment", "");
    broker.start();
    create_topic(&broker, "zero", 1);
    let producer = new_producer(&broker, false);
    let offsets = produce(&producer, "zero", 0, 200, 100);
    drop(producer);
    assert_eq!(offsets.iter().max(), Some(&199));
    broker.stop();
    let segment = segments(&broker.data_dir.join("zero-0"))
        .pop()
        .expect("segment");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    broker.start();
    let log = broker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("damaged") && l.contains("zero-0")),
        "damage not reported:\n{log}"
    );
    // The partition is offline: an append must not get a reused offset.
    let producer: FutureProducer = broker
        .client()
        .set("message.timeout.ms", "5000")
        .set("retries", "0")
        .create()
        .expect("producer");
    let sent = futures_lite::future::block_on(
        producer
            .send_result(
                FutureRecord::<(), _>::to("zero")
                    .partition(0)
                    .payload("again"),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue"),
    )
    .expect("not cancelled");
    if let Ok(delivery) = sent {
        let offset = delivery.offset;
        panic!("append to a damaged partition got offset {offset} (200 were handed out)");
    }
    drop(producer);
    let metrics = scrape(&broker);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("shardlog_partition_offline{") && l.contains("topic=\"zero\"")),
        "offline partition not in /metrics:\n{metrics}"
    );
    let ready = broker.http_get("/health/ready").expect("ready");
    assert!(
        ready.starts_with("HTTP/1.1 503"),
        "ready with an offline partition:\n{ready}"
    );
    // The documented repair accepts the loss; the log continues after what was handed out.
    broker.stop();
    let (ok, output) = broker.data_dir_command(&["repair", "zero-0", "--accept-data-loss"]);
    assert!(ok, "repair failed:\n{output}");
    broker.start();
    let producer = new_producer(&broker, false);
    let offsets = produce(&producer, "zero", 0, 1, 10);
    assert!(offsets[0] >= 200, "offset {} handed out twice", offsets[0]);
    let ready = broker.http_get("/health/ready").expect("ready");
    assert!(
        ready.starts_with("HTTP/1.1 200"),
        "not ready after repair:\n{ready}"
    );
}

// ---- item 12: ready only when every partition of every shard is open ------------------

/// Sends ApiVersions v0 on a new connection; true if the broker answered without error.
fn api_versions_answered(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(ADMIN_TIMEOUT));
    let client_id = b"ready-probe";
    let mut request = Vec::new();
    request.extend_from_slice(&18i16.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&7i32.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    if stream.write_all(&frame).is_err() {
        return false;
    }
    let mut head = [0u8; 10];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    i32::from_be_bytes(head[4..8].try_into().expect("4")) == 7 && head[8..10] == [0, 0]
}

#[test]
fn nothing_answers_until_every_partition_of_every_shard_is_open() {
    let mut broker = Broker::new("ready", "");
    broker.start();
    create_topic(&broker, "big", 2);
    // A large active segment on a partition of shard 1, so its recovery scan takes a while
    // after kill -9 while shard 0 has little to open.
    let slow = (0..2)
        .find(|&p| shardlog::metadata::shard_for("big", p, 2).0 == 1)
        .expect("a partition on shard 1");
    let producer: FutureProducer = broker
        .client()
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    produce(&producer, "big", slow, 1024, 512 * 1024);
    drop(producer);
    broker.kill_dash_nine();
    let opened_before = count_lines(&broker.log(), "partition opened");
    broker.spawn();
    let total = 2 + INTERNAL_PARTITIONS;
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    let (mut kafka_seen, mut ready_seen) = (None, None);
    while kafka_seen.is_none() || ready_seen.is_none() {
        assert!(Instant::now() < deadline, "broker never became ready");
        if kafka_seen.is_none() && api_versions_answered(broker.port) {
            kafka_seen = Some(count_lines(&broker.log(), "partition opened") - opened_before);
        }
        let ready = broker.http_get("/health/ready");
        if ready_seen.is_none() && ready.is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            ready_seen = Some(count_lines(&broker.log(), "partition opened") - opened_before);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        kafka_seen,
        Some(total),
        "ApiVersions answered while partitions were still opening"
    );
    assert_eq!(
        ready_seen,
        Some(total),
        "/health/ready said ready while partitions were still opening"
    );
}

/// A data dir belongs to the node that created it (`meta.json` `node_id`, Kafka's
/// `meta.properties`): started with another node id, the broker refuses with both ids and
/// changes nothing; with its own id it serves everything again.
#[test]
fn data_dir_of_another_node_id_stops_startup_without_changes() {
    let mut broker = Broker::new("node-id", "");
    broker.start();
    create_topic(&broker, "owned", 2);
    let producer = new_producer(&broker, false);
    produce(&producer, "owned", 0, 10, 100);
    drop(producer);
    broker.stop();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(broker.data_dir.join("meta.json")).expect("meta"))
            .expect("meta.json is JSON");
    assert_eq!(meta["node_id"], 0, "{meta}");

    std::fs::write(&broker.config_path, "[server]\nnode_id = 7\n").expect("config");
    let before = file_tree(&broker.data_dir);
    let log = broker.start_refused();
    assert!(
        log.contains("belongs to node 0, but this broker is node 7"),
        "refusal does not name both ids:\n{log}"
    );
    assert!(log.contains("--node-id 0"), "no way out named:\n{log}");
    assert_eq!(file_tree(&broker.data_dir), before, "data dir changed");

    std::fs::write(&broker.config_path, "").expect("config");
    broker.start();
    assert_eq!(read_all(&broker, "owned", 2).len(), 10);
}
