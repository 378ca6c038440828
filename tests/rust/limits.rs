//! Contract: connection limits are enforced, not luck. The broker holds 1,000 idle client
//! connections and keeps answering on them; a connection beyond `connections_per_ip_max`
//! is closed at once and counted in /metrics; closing connections frees their slots; and a
//! client stream of garbage cannot take the broker down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BROKER_START_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const IDLE_CONNECTIONS: usize = 1000;

struct Broker {
    child: Child,
    port: u16,
    admin_port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_broker(name: &str, per_ip_max: usize) -> Broker {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("shardlog.toml");
    std::fs::write(
        &config,
        format!("[server]\nconnections_per_ip_max = {per_ip_max}\n"),
    )
    .expect("config");
    let port = free_port();
    // Two binds in a row may get the same ephemeral port back.
    let admin_port = std::iter::repeat_with(free_port)
        .find(|&p| p != port)
        .expect("a second free port");
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "2"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("broker.log")).expect("log"))
        .spawn()
        .expect("start shardlog");
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(POLL_INTERVAL);
    }
    // The probe connections above are closed; wait until the broker has released them.
    std::thread::sleep(Duration::from_millis(200));
    Broker {
        child,
        port,
        admin_port,
    }
}

/// ApiVersions v0 request frame with the given correlation id.
fn api_versions_request(correlation_id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Sends ApiVersions and reads the answer; Err if the broker closed the connection.
fn api_versions(stream: &mut TcpStream, correlation_id: i32) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(&api_versions_request(correlation_id))?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut response = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut response)?;
    assert_eq!(
        &response[0..4],
        &correlation_id.to_be_bytes(),
        "correlation id echoed"
    );
    Ok(())
}

fn metrics(broker: &Broker) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", broker.admin_port)).expect("admin port");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read metrics");
    text
}

/// Sum of a family's samples whose line starts with `prefix` and contains `label`.
fn sample_sum(text: &str, prefix: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn refused_total(text: &str) -> u64 {
    sample_sum(text, "shardlog_connections_refused_total{", "")
}

#[test]
fn a_thousand_idle_connections_and_the_per_ip_limit() {
    let broker = start_broker("idle", IDLE_CONNECTIONS);
    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(("127.0.0.1", broker.port)).expect("connect"))
        .collect();
    // Every held connection is served.
    for (index, stream) in idle.iter_mut().enumerate().step_by(50) {
        api_versions(stream, index as i32).expect("an idle connection still answers");
    }
    // One more from the same IP is over the limit: closed without an answer.
    let mut extra = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect extra");
    assert!(
        api_versions(&mut extra, 9999).is_err(),
        "the connection over the limit was served"
    );
    let text = metrics(&broker);
    assert!(refused_total(&text) >= 1, "refusal not counted in /metrics");
    let by_reason = sample_sum(
        &text,
        "shardlog_requests_rejected_total{",
        "reason=\"connection_limit_per_ip\"",
    );
    assert!(by_reason >= 1, "refusal not counted by reason in /metrics");
    // Closing connections frees their slots.
    idle.truncate(IDLE_CONNECTIONS - 10);
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut fresh = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect fresh");
        if api_versions(&mut fresh, 1).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "freed slots were never reused");
        std::thread::sleep(POLL_INTERVAL);
    }
    api_versions(&mut idle[0], 2).expect("old connections still served");
}

#[test]
fn garbage_streams_do_not_take_the_broker_down() {
    let broker = start_broker("garbage", 100);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..50 {
        let mut garbage = vec![0u8; 64 + (round * 37) % 4096];
        for byte in garbage.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        // Keep a plausible size prefix half of the time so the body reaches the decoder.
        if round % 2 == 0 {
            let size = (garbage.len() - 4) as i32;
            garbage[0..4].copy_from_slice(&size.to_be_bytes());
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", broker.port)) {
            let _ = stream.write_all(&garbage);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut [0u8; 16]);
        }
    }
    let mut client = TcpStream::connect(("127.0.0.1", broker.port)).expect("broker alive");
    api_versions(&mut client, 7).expect("broker still answers after garbage");
}
