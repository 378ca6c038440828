//! A started broker's memory against its configured budgets (issue 14's memory ceiling):
//! VmRSS sampled on every tick of the load's phase clock (about every 100 ms), and the
//! budgets the broker reports on /metrics (`shardlog_memory_budget_bytes{shard,pool}`).
//!
//! Owns: `RssSamples` and the /metrics scrape (plain HTTP/1.1 over a `TcpStream`, so it
//! works without an HTTP client library). Imports: `result`, `wire`. Runs on the
//! coordinating thread.

use crate::result::MemoryReport;
use crate::wire;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const METRICS_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Hostile admin clients may still hold the admin port's slots for a moment after they
/// closed: retry this long.
const METRICS_RETRY_FOR: Duration = Duration::from_secs(20);
const METRICS_RETRY_PAUSE: Duration = Duration::from_millis(500);
const BUDGET_METRIC: &str = "shardlog_memory_budget_bytes";

/// VmRSS samples of one load, from the start of the warm-up to the end of the measure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RssSamples {
    pub count: u64,
    pub max_bytes: u64,
    pub first_bytes: u64,
    pub last_bytes: u64,
}

impl RssSamples {
    pub fn add(&mut self, bytes: u64) {
        if self.count == 0 {
            self.first_bytes = bytes;
        }
        self.count += 1;
        self.max_bytes = self.max_bytes.max(bytes);
        self.last_bytes = bytes;
    }

    /// The report, with the broker's lifetime peak and its budgets when known.
    pub fn report(&self, peak: Option<u64>, budget: Option<&MemoryBudget>) -> MemoryReport {
        MemoryReport {
            samples: self.count,
            rss_max_bytes: self.max_bytes,
            rss_start_bytes: self.first_bytes,
            rss_end_bytes: self.last_bytes,
            rss_peak_bytes: peak,
            budget_bytes: budget.map(MemoryBudget::total),
            budget_pools: budget.map(|b| b.pools.clone()).unwrap_or_default(),
        }
    }
}

/// The broker's memory budgets, summed over shards, per pool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryBudget {
    pub pools: BTreeMap<String, u64>,
}

impl MemoryBudget {
    pub fn total(&self) -> u64 {
        self.pools.values().sum()
    }

    /// Reads /metrics from the admin address, retrying while the port refuses (503) or
    /// fails, for up to `METRICS_RETRY_FOR`.
    pub fn scrape(admin_address: &str) -> anyhow::Result<MemoryBudget> {
        let deadline = Instant::now() + METRICS_RETRY_FOR;
        loop {
            let error = match http_get_body(admin_address, "/metrics") {
                Ok(body) => return MemoryBudget::parse(&body),
                Err(error) => error,
            };
            if Instant::now() > deadline {
                return Err(error.context(format!("GET http://{admin_address}/metrics")));
            }
            std::thread::sleep(METRICS_RETRY_PAUSE);
        }
    }

    /// Sums `shardlog_memory_budget_bytes{shard=..,pool=..} VALUE` lines per pool.
    pub fn parse(metrics: &str) -> anyhow::Result<MemoryBudget> {
        let mut pools = BTreeMap::new();
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix(BUDGET_METRIC) else {
                continue;
            };
            let Some((labels, value)) = rest.strip_prefix('{').and_then(|r| r.split_once('}'))
            else {
                continue; // HELP / TYPE lines, or the bare name
            };
            let pool = labels
                .split(',')
                .find_map(|label| label.trim().strip_prefix("pool="))
                .map(|quoted| quoted.trim_matches('"').to_string())
                .with_context(|| format!("{BUDGET_METRIC} line without a pool: {line:?}"))?;
            let value: f64 = value
                .trim()
                .parse()
                .with_context(|| format!("{BUDGET_METRIC} value in {line:?}"))?;
            *pools.entry(pool).or_insert(0) += value as u64;
        }
        if pools.is_empty() {
            bail!("/metrics has no {BUDGET_METRIC} (not a shardlog with memory budgets?)");
        }
        Ok(MemoryBudget { pools })
    }
}

/// The body of `GET path` (status 200 only), read until the server closes.
pub(crate) fn http_get_body(address: &str, path: &str) -> anyhow::Result<String> {
    let target = address
        .to_socket_addrs()?
        .next()
        .context("address resolves to nothing")?;
    let mut stream = TcpStream::connect_timeout(&target, METRICS_IO_TIMEOUT)?;
    stream.set_read_timeout(Some(METRICS_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(METRICS_IO_TIMEOUT))?;
    stream.write_all(&wire::http_get(address, path, true))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("HTTP response without a header end")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        bail!("HTTP status {status:?}");
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_samples_keep_first_last_and_max() {
        let mut samples = RssSamples::default();
        for bytes in [300, 900, 500] {
            samples.add(bytes);
        }
        assert_eq!(
            samples,
            RssSamples {
                count: 3,
                max_bytes: 900,
                first_bytes: 300,
                last_bytes: 500
            }
        );
        let budget = MemoryBudget {
            pools: BTreeMap::from([("request".into(), 1000), ("response".into(), 24)]),
        };
        let report = samples.report(Some(950), Some(&budget));
        assert_eq!(report.budget_bytes, Some(1024));
        assert_eq!(
            (report.rss_max_bytes, report.rss_peak_bytes),
            (900, Some(950))
        );
        assert_eq!(samples.report(None, None).budget_bytes, None);
    }

    #[test]
    fn budgets_are_summed_per_pool_over_shards() {
        let metrics = "\
# HELP shardlog_memory_budget_bytes Size of each enforced memory budget.
# TYPE shardlog_memory_budget_bytes gauge
shardlog_memory_budget_bytes{shard=\"0\",pool=\"request\"} 268435456
shardlog_memory_budget_bytes{shard=\"1\",pool=\"request\"} 268435456
shardlog_memory_budget_bytes{shard=\"0\",pool=\"write_buffer\"} 1.6777216e7
shardlog_memory_in_use_bytes{shard=\"0\",pool=\"request\"} 40
shardlog_memory_budget_bytes_other{shard=\"0\",pool=\"x\"} 1
";
        let budget = MemoryBudget::parse(metrics).unwrap();
        assert_eq!(budget.pools["request"], 536_870_912);
        assert_eq!(budget.pools["write_buffer"], 16_777_216);
        assert_eq!(budget.pools.len(), 2, "{budget:?}");
        assert_eq!(budget.total(), 536_870_912 + 16_777_216);
        let error = MemoryBudget::parse("up 1\n").unwrap_err().to_string();
        assert!(error.contains("no shardlog_memory_budget_bytes"), "{error}");
        assert!(MemoryBudget::parse("shardlog_memory_budget_bytes{shard=\"0\"} 1\n").is_err());
    }

    #[test]
    fn http_get_of_a_closed_port_fails() {
        let port = crate::broker::free_port().unwrap();
        let error = http_get_body(&format!("127.0.0.1:{port}"), "/metrics").unwrap_err();
        assert!(!error.to_string().is_empty());
    }
}
