//! Starting and stopping a local shardlog for a self-contained run (`--start-broker`).
//!
//! Owns: the broker child process, its fresh data directory under `target/`, its log file,
//! and the optional delaying proxy in front of it. Imports: `proxy`.
//! Invariant: the child is stopped (SIGTERM, then SIGKILL) and its data directory removed
//! when a `StartedBroker` is dropped, so an aborted run never leaves load or data behind.
//! This module builds nothing: the binary must already exist. With `config_overrides` it
//! writes the config file it passes (the `--config` file, if any, plus the overrides).

use crate::proxy::DelayProxy;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 20;

#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// The shardlog binary, normally target/release/shardlog.
    pub binary: PathBuf,
    /// `--shards`; None leaves the broker's default (config file or one per CPU).
    pub shards: Option<usize>,
    /// `--config FILE`, e.g. a profile from tuning/broker/.
    pub config: Option<PathBuf>,
    /// Parent of the per-run data directories (must not be tmpfs: O_DIRECT).
    pub data_root: PathBuf,
    /// Extra latency added to every read on either side of a proxy, microseconds.
    pub delay_us: u64,
    /// Keep the data directory after the run (for inspection).
    pub keep_data: bool,
    /// Stop the run when the broker's resident memory exceeds this many bytes (protects a
    /// shared machine from an unbounded broker); 0 = no limit.
    pub rss_max_bytes: u64,
    /// Dotted config keys (`storage.retention_check_interval_ms`) set on top of `config`.
    pub config_overrides: BTreeMap<String, toml::Value>,
    /// The listener name clients connect to (`PLAINTEXT`, `SSL`).
    pub listener: String,
    /// Extra `shardlog serve` arguments (TLS files).
    pub extra_args: Vec<String>,
}

pub struct StartedBroker {
    child: Child,
    /// What clients bootstrap to: the broker itself, or the delay proxy in front of it.
    pub bootstrap: String,
    /// The admin HTTP address (/metrics, /health), host:port.
    pub admin_address: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    keep_data: bool,
    rss_max_bytes: u64,
    /// Set when the broker died: its log is then kept for the post-mortem.
    exited_unexpectedly: bool,
    proxy: Option<DelayProxy>,
    description: String,
    /// The config file written for `config_overrides` (removed with the data).
    generated_config: Option<PathBuf>,
}

/// A port that was free a moment ago (the tiny race with other processes is acceptable)
/// and that this process has not handed out before: the kernel may return the same
/// ephemeral port to two binds in a row, and a broker whose admin port equals its Kafka
/// port refuses to start.
pub fn free_port() -> anyhow::Result<u16> {
    static ISSUED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut issued = ISSUED
            .lock()
            .map_err(|_| anyhow::anyhow!("port list poisoned"))?;
        if !issued.contains(&port) {
            issued.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no fresh free port after 100 tries")
}

impl StartedBroker {
    pub fn start(options: &BrokerOptions, run_name: &str) -> anyhow::Result<StartedBroker> {
        if !options.binary.is_file() {
            bail!(
                "broker binary {} not found: build it first with \
                 `cargo build --release --bin shardlog`",
                options.binary.display()
            );
        }
        let port = free_port()?;
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let data_dir = options.data_root.join(run_name);
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)?;
        }
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let log_path = options.data_root.join(format!("{run_name}.broker.log"));
        let log = std::fs::File::create(&log_path)?;

        let proxy = match options.delay_us {
            0 => None,
            delay => Some(DelayProxy::start(listen, Duration::from_micros(delay))?),
        };
        let advertised = proxy.as_ref().map_or(listen, |p| p.address);

        let mut command = Command::new(&options.binary);
        // Its own admin (/metrics) port: the default 9644 would collide with any other broker
        // on this machine, and shardlog refuses to start on a port in use.
        let admin = format!("127.0.0.1:{}", free_port()?);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("{}://{listen}", options.listener))
            .arg("--admin-listen")
            .arg(&admin)
            .arg("--advertised-listener")
            .arg(format!("{}://{advertised}", options.listener))
            .arg("--data-dir")
            .arg(&data_dir);
        if let Some(shards) = options.shards {
            command.arg("--shards").arg(shards.to_string());
        }
        command.args(&options.extra_args);
        let generated_config = if options.config_overrides.is_empty() {
            None
        } else {
            let path = options.data_root.join(format!("{run_name}.broker.toml"));
            let text = merged_config(options.config.as_deref(), &options.config_overrides)?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        };
        if let Some(config) = generated_config.as_ref().or(options.config.as_ref()) {
            command.arg("--config").arg(config);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", options.binary.display()))?;
        let description = format!(
            "started {} (shards {}, config {}, pid {}){}",
            options.binary.display(),
            options
                .shards
                .map_or("default".to_string(), |s| s.to_string()),
            options
                .config
                .as_ref()
                .map_or("none".to_string(), |c| c.display().to_string()),
            child.id(),
            proxy.as_ref().map_or(String::new(), |_| format!(
                " behind a {}us delay proxy",
                options.delay_us
            )),
        );
        let mut broker = StartedBroker {
            child,
            bootstrap: advertised.to_string(),
            admin_address: admin,
            data_dir,
            log_path,
            keep_data: options.keep_data,
            rss_max_bytes: options.rss_max_bytes,
            exited_unexpectedly: false,
            proxy,
            description,
            generated_config,
        };
        broker.wait_ready(listen)?;
        Ok(broker)
    }

    pub fn describe(&self) -> String {
        self.description.clone()
    }

    fn wait_ready(&mut self, listen: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "broker did not accept connections on {listen} within {READY_TIMEOUT:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Errors if the broker process has exited (it must live for the whole run) or has
    /// grown beyond the memory limit.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let rss = self.rss_bytes().unwrap_or(0);
        if self.rss_max_bytes > 0 && rss > self.rss_max_bytes {
            bail!(
                "broker resident memory {} MB exceeds --broker-rss-max {} MB: stopping the run \
                 (is storage keeping every record in memory?)",
                rss / 1_000_000,
                self.rss_max_bytes / 1_000_000
            );
        }
        if let Some(status) = self.child.try_wait()? {
            self.exited_unexpectedly = true;
            bail!(
                "broker exited unexpectedly ({status}); log {}:\n{}",
                self.log_path.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds used so far, from /proc.
    pub fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(self.child.id())
    }

    /// Peak resident set size so far (VmHWM), bytes.
    pub fn max_rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// Current resident set size (VmRSS), bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid(), "VmRSS:").map(|kib| kib * 1024)
    }

    fn stop_child(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StartedBroker {
    fn drop(&mut self) {
        self.stop_child();
        if let Some(proxy) = self.proxy.take() {
            proxy.stop();
        }
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
            if let Some(config) = &self.generated_config {
                let _ = std::fs::remove_file(config);
            }
            if !self.exited_unexpectedly {
                let _ = std::fs::remove_file(&self.log_path);
            }
        }
    }
}

/// The TOML of `base` (or an empty config) with each dotted key of `overrides` set.
pub fn merged_config(
    base: Option<&Path>,
    overrides: &BTreeMap<String, toml::Value>,
) -> anyhow::Result<String> {
    let mut config: toml::Table = match base {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?
        }
        None => toml::Table::new(),
    };
    for (key, value) in overrides {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, sections) = parts.split_last().context("empty config key")?;
        let mut table = &mut config;
        for section in sections {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(inner) => inner,
                _ => bail!("broker config override {key}: {section} is not a section"),
            };
        }
        table.insert(last.to_string(), value.clone());
    }
    Ok(toml::to_string(&config)?)
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Default memory limit for a started broker: 60% of this machine's memory.
pub fn default_rss_max_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    total_kib * 1024 / 10 * 6
}

pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks > 0.0).then(|| (utime + stime) / ticks)
}

/// `$CARGO_TARGET_DIR/release/shardlog` when that variable is set and the file exists (where
/// `cargo build --release` put it), else target/release/shardlog of the current directory if
/// that exists, else of the workspace this harness was built in.
pub fn default_broker_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let built = Path::new(&dir).join("release/shardlog");
        if built.is_file() {
            return built;
        }
    }
    let local = Path::new("target/release/shardlog");
    if local.is_file() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/shardlog")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_cpu_time_is_readable() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let seconds = process_cpu_seconds(std::process::id()).unwrap();
        assert!(seconds >= 0.0);
    }

    #[test]
    fn memory_limit_default_is_most_of_this_machine() {
        let limit = default_rss_max_bytes();
        assert!(limit > 0);
        assert!(proc_status_kib(std::process::id(), "VmRSS:").unwrap() > 0);
    }

    #[test]
    fn config_overrides_merge_into_the_base_file() {
        let base = std::env::temp_dir().join(format!("bench-base-{}.toml", std::process::id()));
        std::fs::write(
            &base,
            "[storage]\nsegment_bytes = 1048576\n[server]\nlisten = \"x\"\n",
        )
        .unwrap();
        let overrides = BTreeMap::from([
            (
                "storage.retention_check_interval_ms".to_string(),
                toml::Value::Integer(1000),
            ),
            ("shard.shards".to_string(), toml::Value::Integer(2)),
        ]);
        let merged: toml::Table =
            toml::from_str(&merged_config(Some(&base), &overrides).unwrap()).unwrap();
        let bad = BTreeMap::from([(
            "storage.segment_bytes.x".to_string(),
            toml::Value::Integer(1),
        )]);
        let error = merged_config(Some(&base), &bad).unwrap_err().to_string();
        let _ = std::fs::remove_file(&base);
        assert!(error.contains("not a section"), "{error}");
        assert_eq!(
            merged["storage"]["segment_bytes"].as_integer(),
            Some(1048576)
        );
        assert_eq!(
            merged["storage"]["retention_check_interval_ms"].as_integer(),
            Some(1000)
        );
        assert_eq!(merged["shard"]["shards"].as_integer(), Some(2));
        assert_eq!(merged["server"]["listen"].as_str(), Some("x"));
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let options = BrokerOptions {
            binary: PathBuf::from("/nonexistent/shardlog"),
            shards: None,
            config: None,
            data_root: std::env::temp_dir(),
            delay_us: 0,
            keep_data: false,
            rss_max_bytes: 0,
            config_overrides: BTreeMap::new(),
            listener: "PLAINTEXT".to_string(),
            extra_args: Vec::new(),
        };
        let error = StartedBroker::start(&options, "x")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("cargo build --release --bin shardlog"),
            "{error}"
        );
    }
}
