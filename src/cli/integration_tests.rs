//! Contract: every `shardlog` CLI workflow (topic, produce, consume, group) works end to end
//! against a running shardlog broker, through the Kafka protocol only; output is what docs/cli.md
//! shows (tables and JSON), and exit codes are the documented ones (0 ok, 1 failed, 2 usage,
//! 3 unreachable, 4 not found, 5 conflict).
//!
//! Each test starts its own broker (`shardlog serve --shards 2`, data under the target dir) and
//! kills it when done, also on panic, through `Broker`'s `Drop`. Tests run one at a time (the
//! machine has two cores); waits are bounded by the named timeouts below and never asserted on.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[path = "integration_tests/topic_commands.rs"]
mod topic_commands;

/// How long a fresh broker may take to accept connections.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for any one CLI invocation; reaching it fails the test.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long to wait for a group to reach an expected membership or for consumer output.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between polls while waiting for a condition.
const POLL_PAUSE: Duration = Duration::from_millis(200);
/// Idle time after which a test consumer stops on its own (`consume --timeout-ms`).
/// Only reached when a test consumer gets fewer records than expected: the others stop at
/// `--max-messages` or on Ctrl-C.
const CONSUMER_IDLE_MS: &str = "20000";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A broker process, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    data_dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test keeps the data dir and broker log for a look.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
            let _ = std::fs::remove_file(self.data_dir.with_extension("log"));
            let _ = std::fs::remove_file(self.data_dir.with_extension("input.txt"));
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

impl Broker {
    fn start(name: &str) -> Broker {
        let port = free_port();
        let data_dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("create broker log");
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--shards",
                "2",
            ])
            // No admin HTTP listener: its fixed default port would collide between brokers.
            .args(["--admin-listen", ""])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shardlog serve");
        let mut broker = Broker {
            child,
            port,
            data_dir,
        };
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("broker exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "broker did not listen on {port} in time"
            );
            std::thread::sleep(POLL_PAUSE);
        }
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shardlog"));
        command
            .args(args)
            .args(["--bootstrap-server", &self.bootstrap()]);
        command
    }

    /// Runs the CLI to completion, feeding `input` on stdin.
    fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shardlog");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        Run::finish(child, args)
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, "")
    }

    /// Runs the CLI and insists on exit 0.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?} failed:\n{}", run.describe());
        run
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let run = self.ok(&all);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{all:?}: bad JSON {e}: {}", run.stdout))
    }

    /// Starts a long-running consumer whose stdout lines arrive on a channel.
    fn spawn_consumer(&self, args: &[&str]) -> Consumer {
        let mut all = vec!["consume"];
        all.extend(args);
        let mut child = self
            .command(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn consumer");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Consumer {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn finish(mut child: Child, args: &[&str]) -> Run {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if child.try_wait().expect("wait for shardlog").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let output = child.wait_with_output().expect("collect output");
                panic!(
                    "{args:?} ran past {COMMAND_TIMEOUT:?}; stderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output: Output = child.wait_with_output().expect("collect output");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A background `shardlog consume`; killed on drop if still running.
struct Consumer {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Consumer {
    /// Waits until at least `count` lines were printed.
    fn wait_for_lines(&mut self, count: usize) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "consumer printed {} of {count} lines",
                self.seen.len()
            );
            if let Ok(line) = self.lines.recv_timeout(left.min(POLL_PAUSE)) {
                self.seen.push(line);
            }
        }
    }

    /// Sends SIGINT (Ctrl-C) and returns exit code and all printed lines.
    fn interrupt(self) -> (i32, Vec<String>, String) {
        let child = self.child.as_ref().expect("running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: signalling our own child process by pid.
        unsafe { libc::kill(pid, libc::SIGINT) };
        self.finish()
    }

    /// Waits for the consumer to exit on its own and returns exit code, lines and stderr.
    fn finish(mut self) -> (i32, Vec<String>, String) {
        let child = self.child.take().expect("running");
        let run = Run::finish(child, &["consume"]);
        self.seen.extend(run.stdout.lines().map(str::to_string));
        while let Ok(line) = self.lines.recv_timeout(POLL_PAUSE) {
            self.seen.push(line);
        }
        (run.code, std::mem::take(&mut self.seen), run.stderr)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until the consumers together printed `total` lines.
fn wait_for_total_lines(consumers: &mut [&mut Consumer], total: usize) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut seen = 0;
        for consumer in consumers.iter_mut() {
            while let Ok(line) = consumer.lines.try_recv() {
                consumer.seen.push(line);
            }
            seen += consumer.seen.len();
        }
        if seen >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumers printed {seen} of {total} lines"
        );
        std::thread::sleep(POLL_PAUSE);
    }
}

/// Polls `group describe --format json` until `ready` holds.
fn wait_for_group(broker: &Broker, group: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let run = broker.run(&["group", "describe", group, "--format", "json"]);
        if run.code == 0 {
            let value: Value = serde_json::from_str(&run.stdout).expect("describe JSON");
            if ready(&value) {
                return value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "group {group} did not settle: {}",
            run.describe()
        );
        std::thread::sleep(POLL_PAUSE);
    }
}

fn member_count(describe: &Value) -> usize {
    describe["members"].as_array().map_or(0, Vec::len)
}

fn assigned_partitions(describe: &Value) -> usize {
    describe["members"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["assignment"].as_array().cloned().unwrap_or_default())
        .map(|a| a["partitions"].as_array().map_or(0, Vec::len))
        .sum()
}

fn total_lag(describe: &Value) -> i64 {
    describe["total_lag"].as_i64().expect("total_lag")
}

fn committed_sum(describe: &Value) -> i64 {
    describe["offsets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["committed_offset"].as_i64())
        .sum()
}

/// `count` keyed lines `key-N:value-N`.
fn keyed_lines(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{prefix}-key-{i}:{prefix}-value-{i}\n"))
        .collect()
}

fn create_topic(broker: &Broker, topic: &str, partitions: &str) {
    broker.ok(&[
        "topic",
        "create",
        topic,
        "--partitions",
        partitions,
        "--replication-factor",
        "1",
    ]);
}

fn produce(broker: &Broker, topic: &str, input: &str) {
    let run = broker.run_with_input(
        &["produce", "--topic", topic, "--key-separator", ":"],
        input,
    );
    assert_eq!(run.code, 0, "produce failed:\n{}", run.describe());
}

fn consume_all(broker: &Broker, args: &[&str], expected: usize) -> Vec<String> {
    let mut all = vec!["consume", "--max-messages"];
    let max = expected.to_string();
    all.push(&max);
    all.extend(["--timeout-ms", CONSUMER_IDLE_MS]);
    all.extend(args);
    let run = broker.ok(&all);
    run.lines().iter().map(|l| l.to_string()).collect()
}

#[test]
fn produce_keys_land_on_java_partitions_and_consume_prints_fields() {
    let _serial = serial();
    let broker = Broker::start("produce");
    create_topic(&broker, "keys", "3");
    // Java: toPositive(murmur2(key)) % 3 is 1 for "kafka", 2 for "giberish123456789", 0 for "21".
    produce(
        &broker,
        "keys",
        "kafka:v1\ngiberish123456789:v2\n21:v3\nkafka:v4\n",
    );
    let lines = consume_all(
        &broker,
        &[
            "--topic",
            "keys",
            "--from-beginning",
            "--print",
            "partition,key",
        ],
        4,
    );
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "partition:0\tkey:21\tv3",
            "partition:1\tkey:kafka\tv1",
            "partition:1\tkey:kafka\tv4",
            "partition:2\tkey:giberish123456789\tv2",
        ]
    );

    // JSON lines carry every field.
    let lines = consume_all(
        &broker,
        &[
            "--topic",
            "keys",
            "--partition",
            "1",
            "--offset",
            "1",
            "--format",
            "json",
        ],
        1,
    );
    let record: Value = serde_json::from_str(&lines[0]).expect("JSON record");
    assert_eq!(record["topic"], "keys");
    assert_eq!(record["partition"], 1);
    assert_eq!(record["offset"], 1);
    assert_eq!(record["key"], "kafka");
    assert_eq!(record["value"], "v4");
    assert!(record["timestamp"].as_i64().expect("timestamp") > 0);
}

#[test]
fn produce_round_robin_codecs_and_per_line_errors() {
    let _serial = serial();
    let broker = Broker::start("codecs");
    create_topic(&broker, "rr", "3");
    let input: String = (0..6).map(|i| format!("line-{i}\n")).collect();
    let run = broker.run_with_input(
        &["produce", "--topic", "rr", "--partitioner", "round-robin"],
        &input,
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    let json = broker.json(&["topic", "describe", "rr"]);
    for partition in json["partitions"].as_array().expect("partitions") {
        assert_eq!(
            partition["log_end_offset"], 2,
            "round-robin spreads evenly: {json}"
        );
    }

    create_topic(&broker, "codecs", "1");
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let input = format!("{codec}-a\n{codec}-b\n");
        let args = [
            "produce",
            "--topic",
            "codecs",
            "--compression",
            codec,
            "--acks",
            "1",
            "--linger-ms",
            "20",
            "--batch-size",
            "16384",
        ];
        let run = broker.run_with_input(&args, &input);
        assert_eq!(run.code, 0, "{codec}: {}", run.describe());
    }
    let lines = consume_all(&broker, &["--topic", "codecs", "--from-beginning"], 10);
    assert_eq!(
        lines,
        [
            "none-a", "none-b", "gzip-a", "gzip-b", "snappy-a", "snappy-b", "lz4-a", "lz4-b",
            "zstd-a", "zstd-b"
        ]
    );

    // acks=0 still delivers.
    let run = broker.run_with_input(&["produce", "--topic", "codecs", "--acks", "0"], "fire\n");
    assert_eq!(run.code, 0, "{}", run.describe());

    // A line without the separator fails alone; the rest are delivered; exit is non-zero.
    let args = [
        "produce",
        "--topic",
        "codecs",
        "--key-separator",
        ":",
        "--format",
        "json",
    ];
    let run = broker.run_with_input(&args, "k:ok-1\nno separator here\nk:ok-2\n");
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains("line 2: no key separator ':'"),
        "{}",
        run.describe()
    );
    let summary: Value = serde_json::from_str(&run.stdout).expect("summary JSON");
    assert_eq!(summary["delivered"], 2);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["errors"][0]["line"], 2);

    // From a file.
    let file = broker.data_dir.with_extension("input.txt");
    std::fs::write(&file, "from-file\n").expect("write input file");
    let path = file.to_string_lossy().into_owned();
    broker.ok(&["produce", "--topic", "codecs", "--file", &path]);
    let lines = consume_all(
        &broker,
        &["--topic", "codecs", "--partition", "0", "--offset", "13"],
        1,
    );
    assert_eq!(lines, ["from-file"]);
}

#[test]
fn errors_have_clear_messages_and_documented_exit_codes() {
    let _serial = serial();
    let broker = Broker::start("errors");
    let unreachable_port = free_port().to_string();
    let unreachable = format!("127.0.0.1:{unreachable_port}");
    let output = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["topic", "list", "--bootstrap-server", &unreachable])
        .output()
        .expect("run shardlog");
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach a broker at {unreachable}")),
        "{stderr}"
    );

    let run = broker.run(&["consume", "--topic", "missing", "--max-messages", "1"]);
    assert_eq!(run.code, 4, "{}", run.describe());
    assert!(
        run.stderr.contains("unknown topic 'missing'"),
        "{}",
        run.describe()
    );

    // clap usage errors and our own argument checks both exit 2.
    assert_eq!(broker.run(&["topic", "create"]).code, 2);
    assert_eq!(
        broker
            .run(&["consume", "--topic", "t", "--offset", "5"])
            .code,
        2
    );
    assert_eq!(
        broker.run(&["produce", "--topic", "t", "--acks", "2"]).code,
        2
    );
    let run = broker.run(&[
        "group",
        "reset-offsets",
        "g",
        "--topic",
        "t",
        "--to-earliest",
    ]);
    assert_eq!(
        run.code,
        2,
        "reset needs --dry-run or --execute: {}",
        run.describe()
    );
    let run = broker.run(&["group", "reset-offsets", "g", "--topic", "t", "--dry-run"]);
    assert_eq!(run.code, 2, "reset needs a target: {}", run.describe());
    create_topic(&broker, "t", "1");
    let run = broker.run(&[
        "group",
        "reset-offsets",
        "g",
        "--topic",
        "t",
        "--to-datetime",
        "yesterday",
        "--dry-run",
    ]);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.stderr.contains("invalid date-time 'yesterday'"),
        "{}",
        run.describe()
    );

    let run = broker.run(&["group", "describe", "no-such-group"]);
    assert_eq!(run.code, 4, "{}", run.describe());
    assert!(
        run.stderr.contains("unknown group 'no-such-group'"),
        "{}",
        run.describe()
    );
}

/// The seeds' classic scenario.
#[test]
fn two_consumers_share_a_group_and_reset_to_earliest_rereads() {
    let _serial = serial();
    let broker = Broker::start("classic");
    create_topic(&broker, "events", "3");

    // Two console consumers in group g1 share the topic's three partitions.
    let consumer_args = ["--topic", "events", "--group", "g1", "--from-beginning"];
    let mut first = broker.spawn_consumer(&consumer_args);
    let mut second = broker.spawn_consumer(&consumer_args);
    wait_for_group(&broker, "g1", |d| {
        d["state"] == "Stable" && member_count(d) == 2 && assigned_partitions(d) == 3
    });
    produce(&broker, "events", &keyed_lines("e", 30));
    wait_for_total_lines(&mut [&mut first, &mut second], 30);
    // Ctrl-C both: each commits what it printed and leaves the group.
    let (code_first, lines_first, _) = first.interrupt();
    let (code_second, lines_second, _) = second.interrupt();
    assert_eq!((code_first, code_second), (0, 0));
    assert!(
        !lines_first.is_empty() && !lines_second.is_empty(),
        "both consumers got records"
    );
    let mut all: Vec<String> = lines_first.iter().chain(&lines_second).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        30,
        "each record read exactly once across the group"
    );
    assert_eq!(lines_first.len() + lines_second.len(), 30);

    // The group committed everything on the way out.
    let g1 = wait_for_group(&broker, "g1", |d| member_count(d) == 0);
    assert_eq!(total_lag(&g1), 0, "{g1}");
    assert_eq!(committed_sum(&g1), 30, "{g1}");

    // A second group reads from the beginning, independently; it stops after 20 of 30, so
    // describe lists all three partitions (one may have no commit yet) with 20 committed.
    let lines = consume_all(
        &broker,
        &["--topic", "events", "--group", "g2", "--from-beginning"],
        20,
    );
    assert_eq!(lines.len(), 20);
    let g2 = broker.json(&["group", "describe", "g2"]);
    assert_eq!(g2["offsets"].as_array().map(Vec::len), Some(3), "{g2}");
    assert_eq!(committed_sum(&g2), 20, "{g2}");
    let text = broker.ok(&["group", "describe", "g2"]);
    assert!(
        text.stdout.contains("Group: g2  State: Empty"),
        "{}",
        text.describe()
    );
    assert!(
        text.stdout.contains("CURRENT-OFFSET  LOG-END-OFFSET  LAG"),
        "{}",
        text.describe()
    );
    // It reads the other 10, then both groups show the lag of six new records.
    let args = ["--topic", "events", "--group", "g2", "--from-beginning"];
    let lines = consume_all(&broker, &args, 10);
    assert_eq!(lines.len(), 10);
    produce(&broker, "events", &keyed_lines("late", 6));
    assert_eq!(total_lag(&broker.json(&["group", "describe", "g1"])), 6);
    assert_eq!(total_lag(&broker.json(&["group", "describe", "g2"])), 6);

    // Reset g1 to earliest: the dry run changes nothing, the execution moves every partition.
    let reset = [
        "group",
        "reset-offsets",
        "g1",
        "--topic",
        "events",
        "--to-earliest",
    ];
    let dry = broker.ok(&[&reset[..], &["--dry-run"]].concat());
    assert!(dry.stdout.contains("NEW-OFFSET"), "{}", dry.describe());
    assert!(
        dry.stdout.contains("Dry run: nothing committed"),
        "{}",
        dry.describe()
    );
    assert_eq!(
        committed_sum(&broker.json(&["group", "describe", "g1"])),
        30
    );
    let plan = broker.json(&[&reset[..], &["--execute"]].concat());
    assert_eq!(plan["executed"], true);
    for partition in plan["partitions"].as_array().expect("plan") {
        assert_eq!(partition["new_offset"], 0, "{plan}");
    }
    let g1 = broker.json(&["group", "describe", "g1"]);
    assert_eq!(committed_sum(&g1), 0, "{g1}");
    assert_eq!(total_lag(&g1), 36, "{g1}");

    // The group re-reads everything.
    let lines = consume_all(&broker, &["--topic", "events", "--group", "g1"], 36);
    assert_eq!(lines.len(), 36);
    assert_eq!(total_lag(&broker.json(&["group", "describe", "g1"])), 0);
}

#[test]
fn ctrl_c_commits_and_reset_refuses_an_active_group() {
    let _serial = serial();
    let broker = Broker::start("signals");
    create_topic(&broker, "clicks", "2");
    produce(&broker, "clicks", &keyed_lines("c", 10));
    let mut consumer =
        broker.spawn_consumer(&["--topic", "clicks", "--group", "live", "--from-beginning"]);
    consumer.wait_for_lines(10);
    wait_for_group(&broker, "live", |d| member_count(d) == 1);

    // Resetting or deleting a group with an active member is refused; a dry run is allowed.
    let reset = [
        "group",
        "reset-offsets",
        "live",
        "--topic",
        "clicks",
        "--to-earliest",
    ];
    let run = broker.run(&[&reset[..], &["--execute"]].concat());
    assert_eq!(run.code, 5, "{}", run.describe());
    assert!(run.stderr.contains("active member"), "{}", run.describe());
    let run = broker.run(&[&reset[..], &["--dry-run"]].concat());
    assert_eq!(run.code, 0, "{}", run.describe());
    let run = broker.run(&["group", "delete", "live"]);
    assert_eq!(run.code, 5, "{}", run.describe());

    // Ctrl-C: the consumer commits what it printed, leaves the group and exits 0.
    let (code, lines, stderr) = consumer.interrupt();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 10);
    assert!(
        stderr.contains("Processed a total of 10 messages"),
        "{stderr}"
    );
    let live = wait_for_group(&broker, "live", |d| member_count(d) == 0);
    assert_eq!(committed_sum(&live), 10, "{live}");
    assert_eq!(total_lag(&live), 0, "{live}");

    let listed = broker.json(&["group", "list"]);
    assert!(
        listed
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["group"] == "live"),
        "{listed}"
    );
    let text = broker.ok(&["group", "list"]);
    assert!(text.lines()[0].starts_with("GROUP"), "{}", text.describe());

    broker.ok(&["group", "delete", "live"]);
    assert_eq!(broker.run(&["group", "describe", "live"]).code, 4);
}

#[test]
fn reset_offsets_to_offset_shift_latest_and_datetime() {
    let _serial = serial();
    let broker = Broker::start("reset");
    create_topic(&broker, "ledger", "1");
    produce(&broker, "ledger", &keyed_lines("l", 10));
    let lines = consume_all(
        &broker,
        &["--topic", "ledger", "--group", "acct", "--from-beginning"],
        4,
    );
    assert_eq!(lines.len(), 4);
    let reset = |target: &[&str]| -> i64 {
        let args = [
            &["group", "reset-offsets", "acct", "--topic", "ledger"][..],
            target,
            &["--execute"],
        ]
        .concat();
        let plan = broker.json(&args);
        plan["partitions"][0]["new_offset"]
            .as_i64()
            .expect("new offset")
    };
    assert_eq!(reset(&["--to-offset", "7"]), 7);
    assert_eq!(reset(&["--shift-by", "-2"]), 5);
    assert_eq!(reset(&["--shift-by", "100"]), 10, "clamped to the log end");
    assert_eq!(reset(&["--to-offset", "-5"]), 0, "clamped to the log start");
    assert_eq!(reset(&["--to-latest"]), 10);
    assert_eq!(reset(&["--to-datetime", "2000-01-01T00:00:00Z"]), 0);
    assert_eq!(
        reset(&["--to-datetime", "2999-01-01T00:00:00.000+01:00"]),
        10
    );
    let acct = broker.json(&["group", "describe", "acct"]);
    assert_eq!(committed_sum(&acct), 10, "{acct}");
}
