//! Contract: on a full disk, produce gets KAFKA_STORAGE_ERROR, reads keep working, nothing
//! already acknowledged is lost or corrupted, and writes resume once space is freed: after
//! the free-space guard refused them, and after a real ENOSPC hit a write (without a
//! restart). A broker restarted on a full disk opens every partition read-only, so reads
//! work, and leaves no `.iopoll-probe` files behind.
//!
//! Each test makes its own small ext4 filesystem (a loop-mounted image under target/, so
//! O_DIRECT works) and fills it with a ballast file. It needs root for `mount`, which the
//! project's machines and CI have; without it the test fails with a clear message rather
//! than being skipped.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IMAGE_MIB: u64 = 48;
/// Free space left after the ballast; the broker's reserve is below it.
const HEADROOM_MIB: u64 = 10;
const RESERVE_BYTES: u64 = 4 << 20;
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(20);
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(120);
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// A loop-mounted ext4 image, unmounted on drop.
struct SmallFilesystem {
    mount_point: PathBuf,
}

impl SmallFilesystem {
    /// `reserved_percent`: ext4 blocks reserved for root (`mkfs.ext4 -m`); the tests run as
    /// root, which may write into them, so a real ENOSPC needs 0.
    fn create(dir: &Path, reserved_percent: u32) -> SmallFilesystem {
        let image = dir.join("disk.img");
        let mount_point = dir.join("mnt");
        let _ = Command::new("umount").arg(&mount_point).output();
        std::fs::create_dir_all(&mount_point).expect("mount point");
        let file = std::fs::File::create(&image).expect("image file");
        file.set_len(IMAGE_MIB << 20).expect("size the image");
        let made = run(Command::new("mkfs.ext4")
            .arg("-q")
            .arg("-F")
            .args(["-m", &reserved_percent.to_string()])
            .arg(&image))
        .and_then(|_| {
            run(Command::new("mount")
                .arg("-o")
                .arg("loop")
                .arg(&image)
                .arg(&mount_point))
        });
        if let Err(error) = made {
            panic!("this test needs root and loop devices to build a small filesystem: {error}");
        }
        SmallFilesystem { mount_point }
    }

    fn available_bytes(&self) -> u64 {
        let output = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.mount_point)
            .output()
            .expect("df");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount_point).output();
    }
}

struct Broker(Child, u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(dir: &Path, data_dir: &Path, reserve_bytes: u64) -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let config = dir.join("shardlog.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndisk_free_bytes_min = {reserve_bytes}\ndisk_check_interval_ms = 50\n\
             segment_bytes = 1048576\nwrite_buffer_bytes_max = 2097152\n\
             batch_cache_bytes_max = 1048576\n[topic_defaults]\nnum_partitions = 2\n"
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "2", "--admin-listen", ""])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("broker.log"))
                .expect("log"),
        )
        .spawn()
        .expect("start shardlog");
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(POLL);
    }
    Broker(child, port)
}

type Acked = Arc<Mutex<Vec<(i32, i64, Vec<u8>)>>>;

/// Produces `count` records of `size` bytes with acks=all (no retries); returns how many
/// were refused (absent from the log afterwards). Stored records are appended to `acked`.
fn produce(bootstrap: &str, start: usize, count: usize, size: usize, acked: &Acked) -> usize {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("retries", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let mut sent = 0usize;
    let deadline = Instant::now() + PRODUCE_TIMEOUT;
    let mut values: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    while sent < count {
        let index = start + sent;
        let value: Vec<u8> = (0..size).map(|i| ((index * 31 + i) % 251) as u8).collect();
        let key = index.to_string();
        let record = BaseRecord::to("full").key(&key).payload(&value);
        match producer.send(record) {
            Ok(()) => {
                values.insert(index, value);
                sent += 1;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => panic!("enqueue failed: {error}"),
        }
        assert!(Instant::now() < deadline, "produce took too long");
    }
    producer.flush(PRODUCE_TIMEOUT).expect("flush");
    drop(producer);
    storage_errors_from_log(bootstrap, &values, acked)
}

/// Reads back what is stored and classifies: every stored record must match what was sent
/// for its key; the records sent but absent are the refused ones.
fn storage_errors_from_log(
    bootstrap: &str,
    sent: &BTreeMap<usize, Vec<u8>>,
    acked: &Acked,
) -> usize {
    let stored = read_all(bootstrap);
    let mut present = 0usize;
    let mut acked = acked.lock().expect("acked");
    for (partition, offset, key, value) in stored {
        let index: usize = String::from_utf8_lossy(&key).parse().expect("numeric key");
        if let Some(expected) = sent.get(&index) {
            assert_eq!(
                &value, expected,
                "record {index} at {partition}/{offset} is corrupt"
            );
            present += 1;
            acked.push((partition, offset, value));
        }
    }
    sent.len() - present
}

fn read_all(bootstrap: &str) -> Vec<(i32, i64, Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "disk-full-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut highs = Vec::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset("full", partition, Offset::Beginning)
            .expect("assign");
        let (_, high) = consumer
            .fetch_watermarks("full", partition, Duration::from_secs(10))
            .expect("watermarks (reads must keep working)");
        highs.push(high);
    }
    consumer.assign(&assignment).expect("assign");
    let total: i64 = highs.iter().sum();
    let mut records = Vec::new();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while (records.len() as i64) < total {
        assert!(
            Instant::now() < deadline,
            "timed out reading back ({} of {total})",
            records.len()
        );
        if let Some(message) = consumer.poll(POLL) {
            let message = message.expect("consume");
            records.push((
                message.partition(),
                message.offset(),
                message.key().unwrap_or_default().to_vec(),
                message.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    records
}

#[test]
fn full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("disk-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test dir");
    let filesystem = SmallFilesystem::create(&dir, 5);
    let data_dir = filesystem.mount_point.join("data");
    let broker = start_broker(&dir, &data_dir, RESERVE_BYTES);
    let bootstrap = format!("127.0.0.1:{}", broker.1);
    // Topic first (small), then ballast to leave HEADROOM_MIB free.
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    assert_eq!(
        produce(&bootstrap, 0, 10, 100, &acked),
        0,
        "writes refused on an empty disk"
    );
    let ballast = filesystem.mount_point.join("ballast");
    let ballast_bytes = filesystem
        .available_bytes()
        .saturating_sub(HEADROOM_MIB << 20);
    std::fs::write(&ballast, vec![0u8; ballast_bytes as usize]).expect("ballast");
    // 20 MiB into 10 MiB of headroom: the disk must fill and writes be refused.
    let refused = produce(&bootstrap, 10, 2000, 10 * 1024, &acked);
    assert!(
        refused > 0,
        "no write was refused although the disk filled up"
    );
    let stored_before = acked.lock().expect("acked").len();
    // Reads work while full, and free space comes back when the ballast goes.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut resumed = false;
    let mut start = 100_000;
    while Instant::now() < deadline {
        if produce(&bootstrap, start, 20, 100, &acked) == 0 {
            resumed = true;
            break;
        }
        start += 20;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(resumed, "writes did not resume after space was freed");
    let stored_after = read_all(&bootstrap).len();
    assert!(
        stored_after >= stored_before + 20,
        "records stored while full were lost"
    );
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
}

/// Writes `path` until the filesystem has at most `leave` bytes free, or until ENOSPC.
fn fill(filesystem: &SmallFilesystem, path: &Path, leave: u64) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("ballast");
    let chunk = vec![0u8; 64 * 1024];
    while filesystem.available_bytes() > leave {
        let want = (filesystem.available_bytes() - leave).min(chunk.len() as u64) as usize;
        match std::io::Write::write_all(&mut file, &chunk[..want]) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("ballast: {e}"),
        }
        file.sync_all().ok();
    }
    file.sync_all().ok();
}

fn probe_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".iopoll-probe")
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn real_enospc_recovers_without_restart_and_a_restart_on_a_full_disk_serves_reads() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("disk-enospc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test dir");
    let filesystem = SmallFilesystem::create(&dir, 0);
    let data_dir = filesystem.mount_point.join("data");
    // No free-space reserve: writes run into the filesystem's real ENOSPC.
    let mut broker = start_broker(&dir, &data_dir, 0);
    let bootstrap = format!("127.0.0.1:{}", broker.1);
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    assert_eq!(
        produce(&bootstrap, 0, 10, 100, &acked),
        0,
        "empty disk refused"
    );
    let ballast = filesystem.mount_point.join("ballast");
    fill(&filesystem, &ballast, 3 << 20);
    let refused = produce(&bootstrap, 10, 1000, 10 * 1024, &acked);
    assert!(
        refused > 0,
        "no write hit ENOSPC although the disk filled up"
    );
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
    assert!(
        log.contains("No space left on device"),
        "writes were refused but not by a real ENOSPC:\n{log}"
    );
    // Space comes back: the same broker process accepts writes again.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut start = 100_000;
    loop {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after ENOSPC without a restart"
        );
        if produce(&bootstrap, start, 20, 100, &acked) == 0 {
            break;
        }
        start += 20;
        std::thread::sleep(Duration::from_millis(200));
    }
    // A restart on a completely full disk opens every partition (read-only): reads work.
    fill(&filesystem, &ballast, 0);
    let stored = acked.lock().expect("acked").len();
    drop(broker);
    broker = start_broker(&dir, &data_dir, 0);
    let bootstrap = format!("127.0.0.1:{}", broker.1);
    let records = read_all(&bootstrap);
    assert!(
        records.len() >= stored,
        "{} of {stored} records readable",
        records.len()
    );
    assert_eq!(
        probe_files(&data_dir),
        Vec::<PathBuf>::new(),
        "probe files left behind"
    );
    // And writes resume once space returns, still without a restart.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut start = 200_000;
    loop {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after a full-disk start"
        );
        if produce(&bootstrap, start, 20, 100, &acked) == 0 {
            break;
        }
        start += 20;
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
    drop(broker);
}
