//! Contract: a stock librdkafka client (the `rdkafka` crate) works against a real shardlog
//! process: topics are created with the requested partitions; keyed records land on one
//! partition per key; 100k records produced with acks=all come back byte-exact and in order;
//! consumer groups split partitions 3/3 then 2/2/2 (eager and cooperative-sticky); and after
//! kill -9 of the broker mid-stream every acknowledged record and committed offset survives.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BROKER_START_TIMEOUT: Duration = Duration::from_secs(20);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A shardlog process on a free port with its own data dir; killed on drop.
struct Broker {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
}

/// A free port below the kernel's ephemeral range (32768+), so no client connection or
/// bind(0) elsewhere can take it while a broker is down between kill -9 and restart.
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

impl Broker {
    fn start(name: &str) -> Broker {
        let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("rdkafka-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut broker = Broker {
            child: None,
            port: free_port(),
            data_dir,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.data_dir.with_extension("log"))
            .or_else(|_| {
                std::fs::create_dir_all(self.data_dir.parent().expect("parent"))?;
                std::fs::File::create(self.data_dir.with_extension("log"))
            })
            .expect("broker log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--shards",
                "2",
            ])
            // No admin HTTP: parallel test brokers would collide on its default port.
            .args(["--admin-listen", ""])
            // Groups rebalance at once (the default waits 3000 ms as Kafka does).
            .args(["--group-initial-rebalance-delay-ms", "0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shardlog");
        self.child = Some(child);
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(POLL_INTERVAL);
        }
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

    fn restart(&mut self) {
        self.kill_dash_nine();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill_dash_nine();
    }
}

fn client_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap());
    config
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        client_config(broker).create().expect("admin client");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results =
        futures_lite::future::block_on(admin.create_topics(&[new_topic], &AdminOptions::new()))
            .expect("create_topics call");
    for result in results {
        result.expect("topic created");
    }
}

fn producer(broker: &Broker, acks: &str) -> FutureProducer {
    client_config(broker)
        .set("acks", acks)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer")
}

/// Produces `values[i]` with `keys[i]`; returns (partition, offset) per acknowledged index.
fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> Vec<(i32, i64)> {
    let futures: Vec<_> = records
        .iter()
        .map(|(key, value)| {
            let record = FutureRecord::to(topic)
                .key(key.as_bytes())
                .payload(value.as_slice());
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    futures_lite::future::block_on(futures::future::join_all(futures))
        .into_iter()
        .map(|delivery| {
            let delivery = delivery
                .expect("delivery not cancelled")
                .expect("acknowledged");
            (delivery.partition, delivery.offset)
        })
        .collect()
}

/// Reads every record of `partitions` from the beginning up to each partition's high
/// watermark: (partition, offset) -> (key, value).
fn read_all(
    broker: &Broker,
    topic: &str,
    partitions: i32,
) -> BTreeMap<(i32, i64), (Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", "reader-without-commits")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        remaining.insert(partition, high);
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = BTreeMap::new();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let done = |records: &BTreeMap<(i32, i64), _>| {
        remaining
            .iter()
            .all(|(p, high)| *high == 0 || records.contains_key(&(*p, *high - 1)))
    };
    while !done(&records) {
        assert!(Instant::now() < deadline, "timed out reading back records");
        if let Some(message) = consumer.poll(POLL_INTERVAL) {
            let message = message.expect("consume");
            records.insert(
                (message.partition(), message.offset()),
                (
                    message.key().unwrap_or_default().to_vec(),
                    message.payload().unwrap_or_default().to_vec(),
                ),
            );
        }
    }
    records
}

#[test]
fn round_trip_100k_acks_all_is_byte_exact_and_keyed() {
    let broker = Broker::start("roundtrip");
    create_topic(&broker, "orders", 3);
    let records: Vec<(String, Vec<u8>)> = (0..100_000)
        .map(|i| {
            (
                format!("key-{}", i % 50),
                format!("value-{i}-{}", "x".repeat(i % 97)).into_bytes(),
            )
        })
        .collect();
    let acked = produce_all(&producer(&broker, "all"), "orders", &records);
    let mut partition_of_key: HashMap<&str, i32> = HashMap::new();
    for ((key, _), (partition, _)) in records.iter().zip(&acked) {
        let first = *partition_of_key.entry(key.as_str()).or_insert(*partition);
        assert_eq!(first, *partition, "key {key} moved partitions");
    }
    let stored = read_all(&broker, "orders", 3);
    assert_eq!(stored.len(), records.len());
    for ((key, value), (partition, offset)) in records.iter().zip(&acked) {
        let (stored_key, stored_value) = &stored[&(*partition, *offset)];
        assert_eq!(stored_key, key.as_bytes());
        assert_eq!(stored_value, value);
    }
    // Per key, production order is offset order.
    let mut last: HashMap<&str, i64> = HashMap::new();
    for ((key, _), (_, offset)) in records.iter().zip(&acked) {
        if let Some(previous) = last.insert(key.as_str(), *offset) {
            assert!(previous < *offset, "key {key} out of order");
        }
    }
}

fn group_consumer(broker: &Broker, group: &str, strategy: &str) -> BaseConsumer {
    let consumer: BaseConsumer = client_config(broker)
        .set("group.id", group)
        .set("partition.assignment.strategy", strategy)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("group consumer");
    consumer.subscribe(&["events"]).expect("subscribe");
    consumer
}

fn assignment_sizes(consumers: &[BaseConsumer]) -> Vec<usize> {
    let mut sizes: Vec<usize> = consumers
        .iter()
        .map(|c| c.assignment().map(|a| a.count()).unwrap_or(0))
        .collect();
    sizes.sort();
    sizes
}

/// Polls every consumer until their assignment sizes are `expected` (sorted).
fn poll_until_assigned(consumers: &[BaseConsumer], expected: &[usize]) {
    let deadline = Instant::now() + REBALANCE_TIMEOUT;
    loop {
        for consumer in consumers {
            while let Some(message) = consumer.poll(Duration::from_millis(20)) {
                message.expect("group consume");
            }
        }
        let sizes = assignment_sizes(consumers);
        let total: usize = sizes.iter().sum();
        if sizes == expected && total == expected.iter().sum::<usize>() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "assignments stuck at {sizes:?}, want {expected:?}"
        );
    }
}

fn group_rebalances(strategy: &str) {
    let broker = Broker::start(&format!("group-{strategy}"));
    create_topic(&broker, "events", 6);
    let group = format!("group-{strategy}");
    let mut consumers = vec![
        group_consumer(&broker, &group, strategy),
        group_consumer(&broker, &group, strategy),
    ];
    poll_until_assigned(&consumers, &[3, 3]);
    consumers.push(group_consumer(&broker, &group, strategy));
    poll_until_assigned(&consumers, &[2, 2, 2]);
    let leaving = consumers.remove(0);
    drop(leaving); // closes the consumer: LeaveGroup
    poll_until_assigned(&consumers, &[3, 3]);
}

#[test]
fn eager_group_splits_3_3_then_2_2_2() {
    group_rebalances("range");
}

#[test]
fn cooperative_sticky_group_splits_3_3_then_2_2_2() {
    group_rebalances("cooperative-sticky");
}

#[test]
fn kill_dash_nine_mid_stream_loses_no_acknowledged_record_or_commit() {
    let mut broker = Broker::start("kill9");
    create_topic(&broker, "durable", 2);
    let producer = Arc::new(producer(&broker, "all"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (producer, stop) = (producer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut index = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<(String, Vec<u8>)> = (index..index + 200)
                    .map(|i| (format!("k{}", i % 7), format!("payload-{i}").into_bytes()))
                    .collect();
                index += 200;
                let futures: Vec<_> = batch
                    .iter()
                    .map(|(key, value)| {
                        let record = FutureRecord::to("durable")
                            .key(key.as_bytes())
                            .payload(value.as_slice());
                        producer
                            .send_result(record)
                            .map_err(|(e, _)| e)
                            .expect("enqueue")
                    })
                    .collect();
                let outcomes = futures_lite::future::block_on(futures::future::join_all(futures));
                for (record, outcome) in batch.into_iter().zip(outcomes) {
                    if let Ok(Ok(delivery)) = outcome {
                        acked.push((delivery.partition, delivery.offset, record.1));
                    }
                }
            }
            acked
        })
    };
    // Commit an offset for a group, then crash the broker while the producer is writing.
    let committer: BaseConsumer = client_config(&broker)
        .set("group.id", "survivor")
        .set("enable.auto.commit", "false")
        .create()
        .expect("committer");
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("durable", 1, Offset::Offset(42))
        .expect("offset");
    committer
        .commit(&commit, CommitMode::Sync)
        .expect("commit before crash");
    drop(committer);
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while producer.in_flight_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(POLL_INTERVAL);
    }
    std::thread::sleep(Duration::from_millis(500));
    broker.restart();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let acked = writer.join().expect("producer thread");
    producer
        .flush(DELIVERY_TIMEOUT)
        .expect("flush after restart");
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the crash"
    );
    let stored = read_all(&broker, "durable", 2);
    for (partition, offset, value) in &acked {
        let (_, stored_value) = stored
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("acknowledged record {partition}/{offset} lost"));
        assert_eq!(stored_value, value, "record {partition}/{offset} changed");
    }
    let reader: BaseConsumer = client_config(&broker)
        .set("group.id", "survivor")
        .create()
        .expect("reader");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("durable", 1);
    let committed = reader
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed offsets");
    let offset = committed
        .find_partition("durable", 1)
        .map(|e| e.offset())
        .expect("partition in answer");
    assert_eq!(
        offset,
        Offset::Offset(42),
        "committed offset lost in the crash"
    );
}
