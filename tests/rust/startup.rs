//! Contract: a broker's start-up is watched from outside its executors. If a shard has not
//! finished starting after `shard.startup_watchdog_ms`, a watchdog thread logs at WARN which
//! shard is in which start-up phase (and which partition it is opening, n of N) and for how
//! long, again every interval until it finishes, then logs that start-up finished.
//!
//! The stall is injected with `SHARDLOG_TEST_STARTUP_STALL=<shard>:<phase>:<ms>`, which blocks
//! that shard's executor *thread* (std::thread::sleep), as a lost wake-up or a stuck syscall
//! would: a watchdog running as a task on that executor could report nothing. The test runs
//! the real binary and reads its log (stderr, plain text).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bounds a start-up that must complete (generous: a loaded CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// How long shard 1's executor thread is blocked, and the watchdog interval: the stall spans
/// several intervals, so the report must repeat.
const STALL_MS: u64 = 3_000;
const WATCHDOG_MS: u64 = 400;

struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start(name: &str, config: &str, stall: Option<&str>) -> Broker {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("startup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let config_path = dir.join("shardlog.toml");
        std::fs::write(&config_path, config).expect("config");
        let log = dir.join("broker.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shardlog"));
        command
            .args(["serve", "--shards", "2", "--admin-listen", ""])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        match stall {
            Some(spec) => command.env("SHARDLOG_TEST_STARTUP_STALL", spec),
            None => command.env_remove("SHARDLOG_TEST_STARTUP_STALL"),
        };
        let child = command.spawn().expect("start shardlog");
        Broker { child, port, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle`; panics with the log otherwise.
    fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("broker exited ({status}) before logging {needle:?}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the broker log within {START_TIMEOUT:?}:\n{text}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// An ApiVersions v0 round trip answers.
    fn answers_api_versions(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        // size, api_key 18, version 0, correlation id 7, client id "t"
        let request = [0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 7, 0, 1, b't'];
        if stream.write_all(&request).is_err() {
            return false;
        }
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).is_ok() && header[4..8] == [0, 0, 0, 7]
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.answers_api_versions() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("broker exited ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "broker not ready within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(POLL);
        }
    }
}

fn watchdog_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("WARN") && l.contains("start-up is taking long"))
        .collect()
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

#[test]
fn a_stalled_shard_is_reported_with_its_phase_and_partition_until_it_finishes() {
    let config = format!("[shard]\nstartup_watchdog_ms = {WATCHDOG_MS}\n");
    let stall = format!("1:opening_partitions:{STALL_MS}");
    let mut broker = Broker::start("stalled", &config, Some(&stall));
    let log = broker.wait_for_log("start-up finished");
    let reports = watchdog_lines(&log);
    let shard_1: Vec<&str> = reports
        .iter()
        .copied()
        .filter(|l| field(l, "shard") == Some("1"))
        .collect();
    assert!(
        shard_1.len() >= 2,
        "the watchdog must report the stalled shard repeatedly while it is stuck:\n{log}"
    );
    // The stall holds the shard's first partition; once it lifts, a loaded machine may
    // keep later partitions slow enough for further reports, naming them.
    let at_the_stall = shard_1
        .iter()
        .filter(|l| field(l, "partition_number") == Some("1"))
        .count();
    assert!(
        at_the_stall >= 2,
        "the stall hits this shard's first partition and is reported repeatedly:\n{log}"
    );
    for line in &shard_1 {
        assert_eq!(field(line, "phase"), Some("opening_partitions"), "{line}");
        let partition = field(line, "partition").unwrap_or_default();
        assert!(
            partition.starts_with("__consumer_offsets-")
                || partition.starts_with("__transaction_state-"),
            "the report names the partition being opened: {line}"
        );
        let partition_number: u32 = field(line, "partition_number")
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        assert!(
            partition_number >= 1,
            "the report numbers the partition: {line}"
        );
        let partitions: u32 = field(line, "partitions")
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        assert!(
            partitions >= 1,
            "the report says how many partitions: {line}"
        );
        assert!(field(line, "phase_ms").is_some(), "{line}");
    }
    let finished = log
        .lines()
        .find(|l| l.contains("start-up finished"))
        .expect("finish line");
    assert!(
        finished.contains("INFO") || finished.contains("WARN"),
        "{finished}"
    );
    assert!(
        field(finished, "reported_stuck") == Some("true"),
        "the finish line says the start-up had been reported stuck: {finished}"
    );
    broker.wait_ready();
}

#[test]
fn a_normal_start_finishes_without_watchdog_reports() {
    let mut broker = Broker::start("normal", "[shard]\nstartup_watchdog_ms = 30000\n", None);
    broker.wait_ready();
    let log = broker.wait_for_log("start-up finished");
    assert!(watchdog_lines(&log).is_empty(), "{log}");
    let finished = log
        .lines()
        .find(|l| l.contains("start-up finished"))
        .expect("finish line");
    assert_eq!(
        field(finished, "reported_stuck"),
        Some("false"),
        "{finished}"
    );
    assert_eq!(field(finished, "shards"), Some("2"), "{finished}");
}

#[test]
fn a_bad_stall_spec_is_refused_at_start() {
    let mut broker = Broker::start("badspec", "", Some("one:nowhere"));
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = broker.child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "{}", broker.log_text());
        std::thread::sleep(POLL);
    };
    assert!(!status.success(), "{}", broker.log_text());
    assert!(
        broker.log_text().contains("SHARDLOG_TEST_STARTUP_STALL"),
        "{}",
        broker.log_text()
    );
}

/// Runs `shardlog serve` with `args` to completion (it must exit on its own) and returns
/// whether it succeeded and what it wrote to stderr.
fn serve_until_exit(name: &str, args: &[&str]) -> (bool, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "1", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shardlog");
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("`shardlog serve {args:?}` did not exit on its own");
        }
        std::thread::sleep(POLL);
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.success(), stderr)
}

/// The admin HTTP listener on the Kafka port would, through SO_REUSEPORT, receive a share
/// of the Kafka connections and drop each after its HTTP request timeout.
#[test]
fn an_admin_address_equal_to_the_kafka_address_is_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let address = format!("127.0.0.1:{port}");
    let (ok, stderr) = serve_until_exit(
        "admin-on-kafka-port",
        &["--listen", &address, "--admin-listen", &address],
    );
    assert!(
        !ok,
        "the broker started with admin and Kafka on {address}:\n{stderr}"
    );
    assert!(
        stderr.contains("server.admin_listen") && stderr.contains("Kafka listen address"),
        "{stderr}"
    );
}

/// Every shard binds with SO_REUSEPORT, which the kernel grants to a second broker on the
/// same port too: it would silently take a share of the first broker's connections. The
/// second broker must refuse to start instead (after waiting a moment for a predecessor to
/// let go), and the first keep answering every connection.
#[test]
fn a_second_broker_on_a_port_in_use_refuses_to_start() {
    let mut first = Broker::start("port-owner", "", None);
    first.wait_ready();
    let listen = format!("127.0.0.1:{}", first.port);
    let (ok, stderr) = serve_until_exit(
        "port-intruder",
        &["--listen", &listen, "--admin-listen", ""],
    );
    assert!(!ok, "a second broker started on {listen}:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")),
        "{stderr}"
    );
    for _ in 0..32 {
        assert!(first.answers_api_versions(), "{}", first.log_text());
    }
}
